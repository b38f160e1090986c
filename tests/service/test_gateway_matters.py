"""Multi-step matters through the saga runner, with fake departments."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.saga.model import StepState as A
from tests.service.gateway_support import citizen

LOST = {
    "matter": "id-card-lost",
    "data": {
        "applicant": {"id_number": "310104197811300337", "name": "陈沪明"},
        "station_region_code": "310104",
        "temporary_card": True,
    },
}
APPLICANT = citizen("310104197811300337")


async def test_lost_card_reports_then_replaces_then_bridges_with_a_temporary_card(
    client: TestClient, departments: Any
) -> None:
    resp = await client.post("/api/v1/cases", json=LOST, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    steps = {s["key"]: s for s in body["steps"]}
    assert steps["loss_report"]["state"] == A.DONE
    assert steps["replacement"]["state"] == A.ACCEPTED
    assert steps["temporary_card"]["state"] == A.DONE  # started once the replacement was accepted
    assert body["state"] == "IN_REVIEW"
    assert body["fee_fen"] == 3000  # 20 (fake replacement fee) + 10 (temporary card)
    identity = departments["identity"]
    order = [m for m, _, _ in identity.calls]
    assert order == ["ReportCardLost", "CreateCardApplication", "IssueTemporaryCard"]
    [(replacement, _)] = identity.calls_to("CreateCardApplication")
    assert replacement.kind == 3  # REPLACEMENT
    assert replacement.accepting_region_code == "310104"


async def test_an_optional_step_not_asked_for_is_skipped(client: TestClient, departments: Any) -> None:
    no_temp = {**LOST, "data": {**LOST["data"], "temporary_card": False}}
    body = await (await client.post("/api/v1/cases", json=no_temp, headers=APPLICANT)).json()
    steps = {s["key"]: s["state"] for s in body["steps"]}
    assert steps == {"loss_report": A.DONE, "replacement": A.ACCEPTED, "temporary_card": A.SKIPPED}
    assert not departments["identity"].calls_to("IssueTemporaryCard")


async def test_a_refused_replacement_keeps_the_loss_report(client: TestClient, departments: Any) -> None:
    from gateway.clients import Refused

    def refuse(_request: Any) -> Any:
        raise Refused("identity", "LOSS_NOT_REPORTED", "no", "FAILED_PRECONDITION")

    departments["identity"].handlers["CreateCardApplication"] = refuse
    resp = await client.post("/api/v1/cases", json=LOST, headers=APPLICANT)
    assert resp.status == 422
    assert (await resp.json())["reason"] == "LOSS_NOT_REPORTED"
    assert not departments["identity"].calls_to("IssueTemporaryCard")
    assert not departments["identity"].calls_to("CancelCardApplication")
