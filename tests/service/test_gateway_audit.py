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


async def test_the_recorded_purpose_is_the_routes_or_a_staff_choice_never_a_citizens_header(
    client: TestClient,
) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    path = f"/api/v1/cases/{body['case_no']}"
    forged = {"X-Govhub-Purpose": "the person asked me to E98765432"}
    assert (await client.get(path, headers={**OTHER, **forged})).status == 404  # a denied look
    assert (await client.get(path, headers={**APPLICANT, **forged})).status == 200
    staff = counter("310104")
    assert (await client.get(path, headers={**staff, "X-Govhub-Purpose": "identity-check"})).status == 200
    refused = await client.get(path, headers={**staff, "X-Govhub-Purpose": "curiosity"})
    assert refused.status == 400
    assert (await refused.json())["errors"][0]["field"] == "X-Govhub-Purpose"
    assert (await client.get(path, headers=staff)).status == 200
    looks = [
        (r.actor_role, r.purpose) for r in await entries(client) if r.method == "GET /api/v1/cases/{case_no}"
    ]
    assert looks == [
        ("citizen", "the person's own request"),
        ("citizen", "the person's own request"),
        ("counter", "checking the applicant's identity at the counter"),
        ("counter", "case handling"),
    ]


async def test_the_access_log_pages_past_any_number_of_entries(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    for _ in range(23):
        await client.get(f"/api/v1/cases/{body['case_no']}", headers=counter("310104"))
    key = client.app[trail_key].keys.id_number("11010519491231002X")
    before = [r for r in await entries(client) if r.record_key == key]  # paging adds entries of its own
    seen: list[str] = []
    token = ""
    for _ in range(10):
        params = {"page_size": "5", **({"page_token": token} if token else {})}
        page = await (await client.get("/api/v1/me/access-log", headers=APPLICANT, params=params)).json()
        assert len(page["entries"]) <= 5
        seen += [e["time"] for e in page["entries"] if e["department"] == "gateway"]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(before) >= 23  # every entry once, across pages, newest first
    assert seen == sorted(seen, reverse=True)
    bad = await client.get("/api/v1/me/access-log", headers=APPLICANT, params={"page_token": "xyz"})
    assert bad.status == 400
