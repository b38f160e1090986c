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


async def test_lost_card_reports_with_the_replacement_then_bridges_with_a_temporary_card(
    client: TestClient, departments: Any
) -> None:
    resp = await client.post("/api/v1/cases", json=LOST, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    steps = {s["key"]: s for s in body["steps"]}
    assert set(steps) == {"replacement", "temporary_card"}  # the loss is reported with the replacement
    assert steps["replacement"]["state"] == A.ACCEPTED
    assert steps["temporary_card"]["state"] == A.DONE  # started once the replacement was accepted
    assert body["state"] == "IN_REVIEW"
    assert body["fee_fen"] == 3000  # 20 (fake replacement fee) + 10 (temporary card)
    identity = departments["identity"]
    order = [m for m, _, _ in identity.calls]
    assert order == ["CreateCardApplication", "IssueTemporaryCard"]  # no ReportCardLost of its own
    [(replacement, _)] = identity.calls_to("CreateCardApplication")
    assert replacement.kind == 3  # REPLACEMENT
    assert replacement.report_loss  # filed with it, or the earlier report taken
    assert replacement.accepting_region_code == "310104"


async def test_a_loss_reported_earlier_is_taken_and_shown_with_its_date(
    client: TestClient, departments: Any
) -> None:
    from govhub.common.v1 import common_pb2
    from govhub.identity.v1 import identity_pb2

    def create(request: Any) -> Any:
        return identity_pb2.CreateCardApplicationResponse(
            card_application=identity_pb2.CardApplication(
                id="app-1",
                state=identity_pb2.CARD_APPLICATION_STATE_ACCEPTED,
                fee_fen=4000,
                loss_already_reported=True,
                loss_report=identity_pb2.LossReport(
                    id="lr-1", reported_on=common_pb2.Date(year=2016, month=9, day=1)
                ),
            )
        )

    departments["identity"].handlers["CreateCardApplication"] = create
    no_temp = {**LOST, "data": {**LOST["data"], "temporary_card": False}}
    body = await (await client.post("/api/v1/cases", json=no_temp, headers=APPLICANT)).json()
    own = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    [replacement] = [s for s in own["steps"] if s["key"] == "replacement"]
    assert replacement["results"]["loss_report"] == {"already_reported": True, "reported_on": "2016-09-01"}
    assert replacement["results"]["fee_fen"] == 4000


async def test_an_optional_step_not_asked_for_is_skipped(client: TestClient, departments: Any) -> None:
    no_temp = {**LOST, "data": {**LOST["data"], "temporary_card": False}}
    body = await (await client.post("/api/v1/cases", json=no_temp, headers=APPLICANT)).json()
    steps = {s["key"]: s["state"] for s in body["steps"]}
    assert steps == {"replacement": A.ACCEPTED, "temporary_card": A.SKIPPED}
    assert not departments["identity"].calls_to("IssueTemporaryCard")


async def test_a_counter_acts_only_for_its_own_hall(client: TestClient, departments: Any) -> None:
    from tests.service.gateway_support import counter

    elsewhere = {**LOST, "data": {**LOST["data"], "station_region_code": "310115"}}
    resp = await client.post("/api/v1/counter/cases", json=elsewhere, headers=counter("310104"))
    assert resp.status == 403
    problem = await resp.json()
    assert [(e["field"], e["reason"]) for e in problem["errors"]] == [
        ("data.station_region_code", "NOT_THIS_HALL")
    ]
    assert departments["identity"].calls == []  # nothing sent
    own_hall = await client.post("/api/v1/counter/cases", json=LOST, headers=counter("310104"))
    assert own_hall.status == 201, await own_hall.text()


async def test_fees_and_days_come_from_identitys_quote(client: TestClient, departments: Any) -> None:
    matter = await (await client.get("/api/v1/matters/id-card-renewal-cross-province")).json()
    fees = {f["item"]: f["amount_fen"] for f in matter["fees"]}
    assert fees["ID card renewal: serious damage"] == 4000  # as identity charges it
    assert fees["ID card renewal: expiry"] == 2000
    assert [t["days"] for t in matter["time_limits"]] == [60]
    quoted = departments["identity"].calls_to("QuoteCardApplication")
    assert {q.renewal_reason for q, _ in quoted} == {1, 2, 3, 4, 5}
    lost = await (await client.get("/api/v1/matters/id-card-lost")).json()
    assert [(f["amount_fen"], f.get("only_when")) for f in lost["fees"]] == [
        (4000, None),
        (1000, "temporary_card"),
    ]


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
