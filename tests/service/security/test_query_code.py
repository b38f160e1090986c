"""The query code (issue 15): 8 characters of an unambiguous alphabet (older 6-digit codes still work),
lookups limited per address across every replica (the gateway database), and a case number locked after
repeated wrong codes."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import update

from gateway.app import create_app
from gateway.cases import hash_code
from gateway.ratelimit import MAX_WRONG_CODES
from gateway.store import Case
from gateway.typedefs import progress_limiter_key, sessions_key
from services.common.clock import Clock
from tests.fakes import FakeDepartment, accepting_identity
from tests.service.gateway_support import TODAY, settings
from tests.service.test_gateway_cases import APPLICANT, VALID


async def gateway(aiohttp_client: Any, db_url: str) -> Any:
    departments = {
        "identity": accepting_identity(FakeDepartment("identity")),
        "residence": FakeDepartment("residence"),
        "permits": FakeDepartment("permits"),
    }
    app = create_app(settings(db_url), departments=departments, clock=Clock(TODAY), background=False)
    return await aiohttp_client(app)


async def test_codes_are_eight_unambiguous_characters_and_old_codes_still_work(
    aiohttp_client: Any, db_url: str
) -> None:
    client = await gateway(aiohttp_client, db_url)
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", body["query_code"]), body["query_code"]
    url = f"/api/v1/progress/{body['case_no']}"
    assert (await client.get(url, params={"code": body["query_code"].lower()})).status == 200
    async with client.app[sessions_key]() as session, session.begin():  # a case from before: 6 digits
        await session.execute(
            update(Case)
            .where(Case.case_no == body["case_no"])
            .values(query_code_hash=hash_code(body["case_no"], "042917"))
        )
    assert (await client.get(url, params={"code": "042917"})).status == 200


async def test_a_case_number_is_locked_after_repeated_wrong_codes(aiohttp_client: Any, db_url: str) -> None:
    client = await gateway(aiohttp_client, db_url)
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    url = f"/api/v1/progress/{body['case_no']}"
    assert (await client.get(url, params={"code": "WRONG234"})).status == 404
    assert (await client.get(url, params={"code": body["query_code"]})).status == 200  # a right code clears
    statuses = [(await client.get(url, params={"code": "WRONG234"})).status for _ in range(MAX_WRONG_CODES)]
    assert statuses == [404] * MAX_WRONG_CODES
    locked = await client.get(url, params={"code": body["query_code"]})  # even the right code now
    assert locked.status == 429
    assert locked.content_type == "application/problem+json"
    assert (await locked.json())["type"] == "/problems/case-locked"
    assert int(locked.headers["Retry-After"]) > 60
    withdraw = await client.post(
        f"/api/v1/cases/{body['case_no']}/withdraw", json={"code": body["query_code"]}
    )
    assert withdraw.status == 429


async def test_the_address_limit_is_shared_by_every_replica(aiohttp_client: Any, db_url: str) -> None:
    """Two gateway processes on one database: lookups from one address count against both."""
    first = await gateway(aiohttp_client, db_url)
    second = await gateway(aiohttp_client, db_url)
    for client in (first, second):
        guard = client.app[progress_limiter_key]
        guard.rate, guard.burst = 0.01, 4
    body = await (await first.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    url = f"/api/v1/progress/{body['case_no']}"
    code = {"code": body["query_code"]}
    statuses = [(await c.get(url, params=code)).status for c in (first, second, first, second, first, second)]
    assert statuses == [200, 200, 200, 200, 429, 429]
