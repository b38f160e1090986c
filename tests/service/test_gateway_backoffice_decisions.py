"""The back office takes every decision a department takes in a matter over HTTP, not only approve /
reject: an identity clerk marks the card produced, then ready for pickup, each open only in its turn and
only to that department's staff; the call carries the clerk's identity; the saga moves on the event."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.clients import Refused
from gateway.store import AuditEntry
from gateway.typedefs import sessions_key
from tests.service.gateway_fakes import deciding_identity
from tests.service.gateway_support import department
from tests.service.test_gateway_cases import APPLICANT
from tests.service.test_gateway_windows import card_id, event, submit

IDENTITY = department("identity", "officer-7")


@pytest.fixture
def identity(departments: Any) -> Any:
    return deciding_identity(departments["identity"])


def url(case_no: str, decision: str, step: str = "card") -> str:
    return f"/api/v1/backoffice/cases/{case_no}/steps/{step}/{decision}"


async def listed(client: TestClient, state: str) -> list[tuple[str, list[str]]]:
    body = await (await client.get(f"/api/v1/backoffice/steps?state={state}", headers=IDENTITY)).json()
    return [(s["case_no"], s["decisions"]) for s in body["steps"]]


async def test_a_card_is_produced_then_ready_for_pickup_each_in_its_turn(
    client: TestClient, identity: Any
) -> None:
    case_no = (await submit(client))["case_no"]
    assert await listed(client, "ACCEPTED") == [(case_no, ["approve", "reject"])]
    # not yet approved: neither later decision is open, and nothing reaches the department
    for decision in ("produced", "ready-for-pickup"):
        early = await client.post(url(case_no, decision), headers=IDENTITY)
        assert early.status == 409
        assert (await early.json())["state"] == "ACCEPTED"
    assert identity.calls_to("MarkCardProduced") == []

    assert (await client.post(url(case_no, "approve"), headers=IDENTITY)).status == 202
    await event(client, "identity", "CardApplicationApproved", card_id(identity))
    assert await listed(client, "APPROVED") == [(case_no, ["produced"])]
    assert (await client.post(url(case_no, "ready-for-pickup"), headers=IDENTITY)).status == 409

    resp = await client.post(url(case_no, "produced"), headers=IDENTITY)
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {
        "case_no": case_no,
        "step": "card",
        "decision": "produced",
        "department_state": "CARD_PRODUCED",
    }
    [(produced, ctx)] = identity.calls_to("MarkCardProduced")
    assert produced.id == card_id(identity) and ctx.case_no == case_no
    assert ("MarkCardProduced", {"x-govhub-actor": "officer-7", "x-govhub-actor-role": "officer"}) in (
        identity.metadata
    )
    async with client.app[sessions_key]() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.sequence)))
    assert [(r.actor, r.outcome, r.status, r.resource) for r in rows if r.method.endswith("/produced")] == [
        ("officer-7", "failed", "409", case_no),
        ("officer-7", "allowed", "202", case_no),
    ]
    await event(client, "identity", "CardProduced", produced.id)
    assert await listed(client, "APPROVED") == [(case_no, ["ready-for-pickup"])]

    resp = await client.post(url(case_no, "ready-for-pickup"), headers=IDENTITY)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["department_state"] == "READY_FOR_PICKUP"
    [(ready, _)] = identity.calls_to("MarkCardReadyForPickup")
    assert ready.id == produced.id
    await event(client, "identity", "CardReadyForPickup", ready.id)
    view = await (await client.get(f"/api/v1/cases/{case_no}", headers=APPLICANT)).json()
    assert view["state"] == "READY_FOR_PICKUP"
    # handed over at the counter, not by the back office
    assert await listed(client, "READY") == [(case_no, [])]
    assert (await client.post(url(case_no, "ready-for-pickup"), headers=IDENTITY)).status == 409


async def test_only_the_departments_own_staff_decide(client: TestClient, identity: Any) -> None:
    case_no = (await submit(client))["case_no"]
    await client.post(url(case_no, "approve"), headers=IDENTITY)
    await event(client, "identity", "CardApplicationApproved", card_id(identity))
    assert (await client.post(url(case_no, "produced"), headers=department("permits"))).status == 404
    assert (await client.post(url(case_no, "produced"), headers=APPLICANT)).status == 403
    assert (await client.post(url(case_no, "produced"))).status == 401
    assert (await client.post(url(case_no, "produced", step="nope"), headers=IDENTITY)).status == 404
    # a permit's decision is not a card's
    wrong = await client.post(url(case_no, "issue"), headers=IDENTITY)
    assert wrong.status == 409
    assert (await wrong.json())["type"].endswith("/not-this-steps-decision")
    assert identity.calls_to("MarkCardProduced") == []
    # the looks at the case by another department's clerk and at a step that does not exist are audited
    async with client.app[sessions_key]() as session:
        rows = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.sequence)))
    tried = [
        (r.actor_role, r.outcome, r.status)
        for r in rows
        if r.method == "POST /api/v1/backoffice/cases/{case_no}/steps/{step_key}/produced"
    ]
    assert tried == [("department", "denied", "404"), ("department", "denied", "404")]
    assert all(r.resource == case_no for r in rows if r.method.endswith("/produced"))


async def test_the_departments_refusal_is_a_conflict(client: TestClient, identity: Any) -> None:
    case_no = (await submit(client))["case_no"]
    await client.post(url(case_no, "approve"), headers=IDENTITY)
    await event(client, "identity", "CardApplicationApproved", card_id(identity))

    def refuse(request: Any) -> Any:
        raise Refused("identity", "ILLEGAL_TRANSITION", "already produced", "FAILED_PRECONDITION")

    identity.handlers["MarkCardProduced"] = refuse
    resp = await client.post(url(case_no, "produced"), headers=IDENTITY)
    assert resp.status == 409
    body = await resp.json()
    assert "produced" in body["title"] and "Traceback" not in str(body)
