"""The departments' issue-13 answers as the window uses them: rejection codes sent, results shown to
those entitled (the newborn's ID number, a card's pickup date and place), a matter that does not apply
refused before anything else is sent, and a department's calendar gap an operator's fault (delayed),
never the applicant's."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.clients import Refused
from gateway.saga.model import StepState as A
from gateway.typedefs import runner_key, sessions_key
from govhub.residence.v1 import residence_pb2
from tests.service.gateway_fakes import deciding_identity
from tests.service.gateway_support import citizen, department
from tests.service.test_gateway_cases import APPLICANT, VALID


@pytest.fixture
def identity(departments: Any) -> Any:
    return deciding_identity(departments["identity"])


async def submit(client: TestClient, body: dict[str, Any] = VALID, who: Any = APPLICANT) -> dict[str, Any]:
    resp = await client.post("/api/v1/cases", json=body, headers=who)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def event(client: TestClient, dept: str, event_type: str, resource: str, data: dict[str, Any]) -> None:
    runner = client.app[runner_key]
    async with client.app[sessions_key]() as session:
        await runner.apply_event(session, dept, event_type, resource, data=data)
        await session.commit()
    await runner.drive()


def card_id(identity: Any) -> str:
    return next(
        a.card_application.id
        for a in identity.answers.values()
        if a.DESCRIPTOR.name == "CreateCardApplicationResponse"
    )


async def test_a_rejection_sends_its_machine_code(client: TestClient, identity: Any) -> None:
    body = await submit(client)
    url = f"/api/v1/backoffice/cases/{body['case_no']}/steps/card/reject"
    mismatched = await client.post(
        url, json={"reasons": ["照片不符合要求"], "reason_codes": ["A", "B"]}, headers=department("identity")
    )
    assert mismatched.status == 400
    assert (await mismatched.json())["errors"][0]["field"] == "reason_codes"
    resp = await client.post(
        url,
        json={"reasons": ["照片不符合要求"], "reason_codes": ["PHOTO_NOT_COMPLIANT"]},
        headers=department("identity"),
    )
    assert resp.status == 202, await resp.text()
    [(reject, _)] = identity.calls_to("RejectCardApplication")
    assert (reject.reason, reject.reason_code) == ("照片不符合要求", "PHOTO_NOT_COMPLIANT")


async def test_pickup_date_and_place_show_on_the_applicants_case_only(
    client: TestClient, identity: Any
) -> None:
    body = await submit(client)
    app_id = card_id(identity)
    await event(client, "identity", "CardApplicationApproved", app_id, {"fee_fen": 2000})
    await event(client, "identity", "CardProduced", app_id, {"card_number": "C-0001"})
    await event(
        client,
        "identity",
        "CardReadyForPickup",
        app_id,
        {"ready_on": "2016-10-20", "collect_at_region_code": "310104", "fee_fen": 2000},
    )
    own = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    [card] = own["steps"]
    assert card["state"] == A.READY
    assert card["results"]["ready_on"] == "2016-10-20"
    assert card["results"]["collect_at_region_code"] == "310104"
    public = await (
        await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    ).json()
    assert "results" not in public["steps"][0]  # the query code shows no personal results


async def test_a_shanghai_hukou_on_the_cross_province_renewal_is_refused_and_nothing_else_sent(
    client: TestClient, departments: Any
) -> None:
    identity = departments["identity"]

    def refuse_local(request: Any) -> Any:
        assert request.require_cross_province
        raise Refused("identity", "NOT_CROSS_PROVINCE", "the hukou is in Shanghai", "FAILED_PRECONDITION")

    identity.handlers["CreateCardApplication"] = refuse_local
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status in (409, 422)
    assert (await resp.json())["reason"] == "NOT_CROSS_PROVINCE"
    assert [m for m, *_ in identity.calls] == ["CreateCardApplication"]


async def test_a_calendar_gap_delays_the_case_and_is_never_a_rejection(
    client: TestClient, departments: Any
) -> None:
    identity = departments["identity"]

    def uncovered(_request: Any) -> Any:
        raise Refused("identity", "CALENDAR_NOT_COVERED", "the calendar ends in 2015", "FAILED_PRECONDITION")

    identity.handlers["CreateCardApplication"] = uncovered
    body = await submit(client)
    assert body["state"] == "NEEDS_ATTENTION"
    [card] = body["steps"]
    assert card["state"] == A.NEEDS_ATTENTION
    assert card["message"].startswith("Delayed")


NEWBORN = {
    "matter": "newborn-registration",
    "data": {
        "guardian": {"id_number": "11010519491231002X", "name": "测试甲"},
        "household_number": "310104000001",
        "newborn": {
            "name": "测试乙",
            "sex": "FEMALE",
            "birth_date": "2016-09-01",
            "birth_place": "上海市徐汇区",
            "ethnicity": "汉",
            "native_place": "上海",
        },
        "relationship_code": "31",
        "mother_id_number": "11010519491231002X",
        "station_region_code": "310104",
    },
}


async def test_the_newborns_id_number_shows_on_the_guardians_case(
    client: TestClient, departments: Any
) -> None:
    residence = departments["residence"]

    def register(request: Any) -> Any:
        return residence_pb2.RegisterBirthResponse(
            person=residence_pb2.Person(id="p-1", name=request.person.name, hukou_region_code="310104"),
            id_number="310104201609010021",
        )

    residence.handlers["RegisterBirth"] = register
    guardian = citizen("11010519491231002X")
    content = b"%PDF-1.4\n% birth certificate\n%%EOF\n"
    form = aiohttp.FormData()
    form.add_field("file", content, filename="birth.pdf", content_type="application/pdf")
    assert (await client.post("/api/v1/materials", data=form, headers=guardian)).status == 201
    materials = {"birth_certificate": hashlib.sha256(content).hexdigest()}
    body = await submit(client, {**NEWBORN, "materials": materials}, guardian)
    [(sent, _)] = residence.calls_to("RegisterBirth")
    assert sent.declarant_id_number == "11010519491231002X"
    assert sent.mother_id_number == "11010519491231002X"
    own = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=guardian)).json()
    birth = next(s for s in own["steps"] if s["key"] == "birth")
    assert birth["results"]["id_number"] == "310104201609010021"

    in_law = {
        **NEWBORN,
        "materials": materials,
        "data": {**NEWBORN["data"], "relationship_code": "28"},
    }  # 女婿
    resp = await client.post("/api/v1/cases", json=in_law, headers=guardian)
    assert resp.status == 400
    assert [(e["field"], e["reason"]) for e in (await resp.json())["errors"]] == [
        ("data.relationship_code", "NOT_ALLOWED")
    ]
    assert len(residence.calls_to("RegisterBirth")) == 1
