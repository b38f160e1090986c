"""The one window's own audit trail and a citizen's view of who looked at their records."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.audit import trail_key
from gateway.store import AuditEntry
from gateway.typedefs import sessions_key
from services.common.audit import verify_chain
from tests.service.gateway_support import citizen, counter
from tests.service.test_gateway_cases import APPLICANT, VALID

OTHER = citizen("310104197811300337")


async def entries(client: TestClient) -> list[AuditEntry]:
    async with client.app[sessions_key]() as session:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.sequence)))


async def test_looks_at_a_case_are_audited_allowed_and_denied_without_raw_numbers(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    assert (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).status == 200
    assert (await client.get(f"/api/v1/cases/{body['case_no']}", headers=OTHER)).status == 404
    assert (await client.get(f"/api/v1/cases/{body['case_no']}", headers=counter("310104"))).status == 200
    rows = await entries(client)
    key = client.app[trail_key].keys.id_number("11010519491231002X")
    looks = [(r.actor_role, r.outcome, r.status) for r in rows if r.method == "GET /api/v1/cases/{case_no}"]
    assert looks == [
        ("citizen", "allowed", "200"),
        ("citizen", "denied", "404"),
        ("counter", "allowed", "200"),
    ]
    assert all(
        r.record_key == key and r.resource == body["case_no"] for r in rows if r.method.startswith("GET")
    )
    for row in rows:
        assert "11010519491231002X" not in repr(vars(row))
    assert verify_chain(rows).finding is None


async def test_a_citizen_sees_who_looked_at_their_records(client: TestClient, departments: Any) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    await client.get(f"/api/v1/cases/{body['case_no']}", headers=counter("310104"))
    resp = await client.get("/api/v1/me/access-log", headers=APPLICANT)
    assert resp.status == 200
    log = (await resp.json())["entries"]
    looked = [e for e in log if e["department"] == "gateway" and e["role"] == "counter"]
    assert (
        looked and looked[0]["action"] == "GET /api/v1/cases/{case_no}" and looked[0]["outcome"] == "allowed"
    )
    assert all("actor" not in e for e in log)  # no staff personal details
    asked = [r for _, r, _ in departments["identity"].calls if type(r).__name__ == "ListAccessEntriesRequest"]
    assert asked and asked[0].id_number == "11010519491231002X"
    other = await (await client.get("/api/v1/me/access-log", headers=OTHER)).json()
    assert not any(e["role"] == "counter" for e in other["entries"])
