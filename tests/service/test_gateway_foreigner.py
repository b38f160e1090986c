"""foreigner-employment through the saga with a fake permits department: materials once, the residence
permit after the work permit's approval, both handed over together, compensation on refusal."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.clients import Invalid, Refused
from gateway.saga.model import StepState as A
from gateway.typedefs import quotes_key, runner_key, sessions_key
from govhub.permits.v1 import permits_pb2
from services.common.clock import Clock
from tests.fakes import FakeDepartment, accepting_permits, accepting_residence
from tests.service.gateway_support import citizen, settings

# The matter is available from the 2016 pilot of the merged work permit (2016-10-01), within 30 days of
# this applicant's entry (2016-09-10).
TODAY = dt.date(2016, 10, 8)


@pytest.fixture
async def client(aiohttp_client: Any, db_url: str, departments: dict[str, FakeDepartment]) -> TestClient:
    app = create_app(settings(db_url), departments=departments, clock=Clock(TODAY), background=False)
    return await aiohttp_client(app)


MATERIALS = [
    "passport",
    "photo",
    "health_certificate",
    "contract",
    "wp_application_form",
    "work_experience_proof",
    "degree_certificate",
    "no_criminal_record",
    "entry_stamp",
    "rp_application_form",
    "employer_letter",
    "employer_licence_copy",
]
DATA = {
    "applicant": {
        "passport_number": "e 1234 5678",
        "nationality": "GBR",
        "surname": "Testperson",
        "given_names": "Alex",
        "birth_date": "1985-04-02",
        "sex": "MALE",
    },
    "employer_uscc": "91310000MA1FL0000X",
    "position": "Engineer",
    "work_region": "310115",
    "contract": {"start_date": "2016-10-01", "end_date": "2018-09-30"},
    "annual_salary_yuan": 400000,
    "education": "MASTER",
    "experience_years": 6,
    "entry_date": "2016-09-10",
    "accommodation": {
        "address": "上海市浦东新区测试路1号",
        "police_station_code": "310115001",
        "host_kind": "HOTEL",
        "host_name": "测试酒店",
        "host_identifier": "HOTEL-0001",
        "arrived_at": "2016-09-10T21:00:00+08:00",
        "from_date": "2016-09-10",
        "to_date": "2016-12-31",
    },
}


APPLICANT = citizen("E12345678")  # a foreigner's token names the passport number


async def upload_all(client: TestClient, kinds: list[str] = MATERIALS) -> dict[str, str]:
    shas = {}
    for kind in kinds:
        content = b"%PDF-1.4\n% " + kind.encode() + b"\n%%EOF\n"
        form = aiohttp.FormData()
        form.add_field("file", content, filename=f"{kind}.pdf", content_type="application/pdf")
        resp = await client.post("/api/v1/materials", data=form, headers=APPLICANT)
        assert resp.status == 201
        shas[kind] = hashlib.sha256(content).hexdigest()
    return shas


async def event(
    client: TestClient, department: str, event_type: str, resource: str, data: dict[str, Any] | None = None
) -> None:
    runner = client.app[runner_key]
    async with client.app[sessions_key]() as session:
        assert await runner.apply_event(session, department, event_type, resource, data=data)
        await session.commit()
    await runner.drive()


def work_permit_id(permits: FakeDepartment) -> str:
    return next(
        a.work_permit_application.id
        for a in permits.answers.values()
        if a.DESCRIPTOR.name == "CreateWorkPermitApplicationResponse"
    )


async def view(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    return await resp.json()


@pytest.fixture
def permits(departments: Any) -> Any:
    accepting_residence(departments["residence"])
    return accepting_permits(departments["permits"])


async def test_one_application_two_permits_handed_over_together(client: TestClient, permits: Any) -> None:
    shas = await upload_all(client)
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    steps = {s["key"]: s for s in body["steps"]}
    assert steps["work_permit"]["state"] == A.ACCEPTED
    assert steps["work_permit"]["department_state"] == "UNDER_REVIEW"
    # lodged at submission, right after the work permit (permits decides it after the work permit, the
    # days from entry counted to today's application)
    assert steps["residence_permit"]["state"] == A.ACCEPTED
    assert steps["accommodation"]["state"] == A.DONE  # in parallel, done at once

    [(wp_request, _)] = permits.calls_to("CreateWorkPermitApplication")
    assert wp_request.applicant.passport_number == "E12345678"
    assert wp_request.annual_salary_fen == 40_000_000
    sent = {m.kind: m.sha256 for m in wp_request.materials}
    assert sent["z_or_r_visa_with_entry_stamp"] == shas["entry_stamp"]
    assert "employer_letter" not in sent  # only what this department's checklist needs
    assert len(sent) == 9

    wp_id = work_permit_id(permits)
    [(rp_request, _)] = permits.calls_to("CreateResidencePermitApplication")
    assert rp_request.work_permit_id == wp_id
    assert (rp_request.entry_date.year, rp_request.entry_date.month, rp_request.entry_date.day) == (
        2016,
        9,
        10,
    )
    rp_sent = {m.kind: m.sha256 for m in rp_request.materials}
    assert rp_sent["passport_and_visa"] == shas["passport"]  # one passport, two checklists
    rp_id = next(
        a.residence_permit_application.id
        for a in permits.answers.values()
        if a.DESCRIPTOR.name == "CreateResidencePermitApplicationResponse"
    )
    await event(client, "permits", "WorkPermitAwaitingMaterials", wp_id)
    assert (await view(client, body))["state"] == "AWAITING_APPLICANT"
    await event(client, "permits", "WorkPermitUnderReview", wp_id)
    await event(client, "permits", "WorkPermitApproved", wp_id)
    assert len(permits.calls_to("CreateResidencePermitApplication")) == 1  # not lodged a second time

    await event(client, "permits", "WorkPermitIssued", wp_id)
    current = await view(client, body)
    assert current["state"] == "IN_REVIEW"  # one certificate ready is not enough
    await event(client, "permits", "ResidencePermitApproved", rp_id, {"fee_fen": 80000, "fee_yuan": 800})
    assert (await view(client, body))["fee_fen"] == 80000  # the fee fixed on approval shows on the case
    await event(
        client,
        "permits",
        "ResidencePermitIssued",
        rp_id,
        {"permit_number": "RP-310000-0001", "valid_from": "2016-10-20", "valid_until": "2018-09-30"},
    )
    current = await view(client, body)
    assert current["state"] == "READY_FOR_PICKUP"
    assert "results" not in next(s for s in current["steps"] if s["key"] == "residence_permit")
    own = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    results = next(s for s in own["steps"] if s["key"] == "residence_permit")["results"]
    assert results == {
        "fee_fen": 80000,
        "permit_number": "RP-310000-0001",
        "valid_from": "2016-10-20",
        "valid_until": "2018-09-30",
    }
    assert {s["key"]: s["state"] for s in current["steps"]} == {
        "work_permit": A.READY,
        "residence_permit": A.READY,
        "accommodation": A.DONE,
    }


async def test_a_refused_residence_permit_cancels_the_work_permit_and_leaves_the_stay_registered(
    client: TestClient, departments: Any
) -> None:
    """The work permit exists for the case's sake and is undone; where the person stays stands on its
    own: residence is never asked to cancel it, and the case says it stays in force."""
    permits = accepting_permits(departments["permits"], refuse_residence="APPLICATION_TOO_LATE")
    residence = accepting_residence(departments["residence"])
    shas = await upload_all(client)
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status in (409, 422), await resp.text()
    assert (await resp.json())["reason"] == "APPLICATION_TOO_LATE"
    wp_id = work_permit_id(permits)
    for _ in range(3):
        await client.app[runner_key].drive()
    [(cancel, _)] = permits.calls_to("CancelWorkPermitApplication")
    assert cancel.id == wp_id
    [(registered, _)] = residence.calls_to("RegisterAccommodation")
    assert registered.passport_number == "E12345678"
    assert residence.calls_to("CancelAccommodationRegistration") == []
    # the case is kept (residence holds its registration) and named in the refusal, to be followed
    case_no = (await resp.json())["case_no"]
    view = await (await client.get(f"/api/v1/cases/{case_no}", headers=APPLICANT)).json()
    assert view["state"] == "REJECTED" and view["in_force"] == ["accommodation"]
    steps = {s["key"]: s for s in view["steps"]}
    assert steps["work_permit"]["state"] == A.COMPENSATED
    assert steps["accommodation"]["state"] == A.DONE and steps["accommodation"]["in_force"] is True
    assert "in_force" not in steps["work_permit"]


async def test_fields_permits_finds_invalid_are_named_where_they_were_submitted(
    client: TestClient, departments: Any
) -> None:
    """A field the work permit's request took as is from the submission is named by its submitted path
    (``data.employer_uscc``); one permits names its own way stays under the step."""
    permits = accepting_permits(departments["permits"])
    accepting_residence(departments["residence"])

    def invalid(_request: Any) -> Any:
        raise Invalid(
            "permits",
            "invalid fields",
            [
                ("employer_uscc", "BAD_CHECK_CHARACTER", "the check character does not match"),
                ("annual_salary_fen", "TOO_LOW", "below the minimum"),
            ],
        )

    permits.handlers["CreateWorkPermitApplication"] = invalid
    shas = await upload_all(client)
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
        headers=APPLICANT,
    )
    body = await resp.json()
    assert resp.status == 400, body
    assert body["errors"] == [
        {"field": "data.employer_uscc", "reason": "BAD_CHECK_CHARACTER"},
        {"field": "work_permit.annual_salary_fen", "reason": "TOO_LOW"},
    ]
    assert body["instance"] == "/api/v1/cases" and body["detail"]


async def test_rules_the_window_can_check_are_checked_before_anything_is_sent(
    client: TestClient, permits: Any, departments: Any
) -> None:
    shas = await upload_all(client)
    late = {
        **DATA,
        "entry_date": "2016-08-31",  # 38 days before today's application: permits quotes 30
        "contract": {"start_date": "2016-10-01", "end_date": "2016-09-30"},
        "accommodation": {**DATA["accommodation"], "to_date": "2016-09-01"},
    }
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": late, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 400
    fields = {e["field"]: e["reason"] for e in (await resp.json())["errors"]}
    assert fields == {
        "data.entry_date": "TOO_LONG_AFTER_ENTRY",
        "data.contract.end_date": "BEFORE_START",
        "data.accommodation.to_date": "BEFORE_START",
    }
    assert [m for m, *_ in permits.calls] == ["QuotePermits"]  # only the rule was asked for
    assert departments["residence"].calls == []


async def test_a_job_change_inside_china_names_the_permit_held_and_all_category_inputs_reach_permits(
    client: TestClient, permits: Any
) -> None:
    shas = await upload_all(client)
    data = {k: v for k, v in DATA.items() if k != "entry_date"}
    data["held_residence_permit_number"] = "RP-310000-0042"
    data["category"] = {"special_criteria": ["TALENT_PROGRAMME"], "top_university_or_fortune500": True}
    # a claim needs its evidence: refused naming the material, before anything is sent
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": data, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 400
    assert {(e["field"], e["reason"]) for e in (await resp.json())["errors"]} == {
        ("materials.talent_evidence", "EVIDENCE_REQUIRED"),
        ("materials.top_university_or_fortune500_proof", "EVIDENCE_REQUIRED"),
    }
    assert not permits.calls_to("CreateWorkPermitApplication")
    shas |= await upload_all(client, ["talent_evidence", "top_university_or_fortune500_proof"])
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": data, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 201, await resp.text()
    [(rp_request, _)] = permits.calls_to("CreateResidencePermitApplication")
    assert rp_request.held_residence_permit_number == "RP-310000-0042"
    assert not rp_request.HasField("entry_date")
    [(wp_request, _)] = permits.calls_to("CreateWorkPermitApplication")
    assert list(wp_request.special_criteria) == [permits_pb2.SPECIAL_CRITERION_TALENT_PROGRAMME]
    assert wp_request.top_university_or_fortune500


async def test_the_matter_shows_the_fees_and_days_permits_quotes(client: TestClient, permits: Any) -> None:
    matter = await (await client.get("/api/v1/matters/foreigner-employment")).json()
    assert [f["amount_fen"] for f in matter["fees"]] == [40000, 80000, 100000]
    assert [(t["days"], t["working_days"]) for t in matter["time_limits"]] == [(20, True), (15, False)]
    [(quote, _)] = permits.calls_to("QuotePermits")
    assert (quote.on.year, quote.on.month, quote.on.day) == (2016, 10, 8)
    await client.get("/api/v1/matters/foreigner-employment")
    assert len(permits.calls_to("QuotePermits")) == 1  # kept briefly per matter and date
    permits.handlers["QuotePermits"] = lambda _r: (_ for _ in ()).throw(
        Refused("permits", "CALENDAR_NOT_COVERED", "the calendar ends in 2026", "FAILED_PRECONDITION")
    )
    client.app[quotes_key]._cache.clear()
    unquoted = await (await client.get("/api/v1/matters/foreigner-employment")).json()
    assert unquoted["fees"] is None and unquoted["quote_unavailable"] == "permits"


async def test_missing_and_unknown_materials_are_listed_at_once(client: TestClient, permits: Any) -> None:
    shas = await upload_all(client)
    shas.pop("photo")
    shas["passport"] = "0" * 64  # never uploaded
    shas["selfie"] = "1" * 64
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 400
    errors = {(e["field"], e["reason"]) for e in (await resp.json())["errors"]}
    assert errors == {
        ("materials.photo", "REQUIRED"),
        ("materials.selfie", "UNKNOWN_MATERIAL"),
        ("materials.passport", "NOT_UPLOADED"),
    }
    assert [m for m, *_ in permits.calls] == ["QuotePermits"]  # a rule asked for; nothing applied for


async def test_bad_foreigner_fields_are_named(client: TestClient, permits: Any) -> None:
    shas = await upload_all(client)
    bad = {
        **DATA,
        "applicant": {**DATA["applicant"], "passport_number": "??", "nationality": "XXX"},
        "annual_salary_yuan": -5,
    }
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": bad, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 400
    fields = {e["field"]: e["reason"] for e in (await resp.json())["errors"]}
    assert fields == {
        "data.applicant.passport_number": "BAD_FORMAT",
        "data.applicant.nationality": "UNKNOWN_COUNTRY_CODE",
        "data.annual_salary_yuan": "TOO_SMALL",
    }


async def test_before_the_pilot_the_matter_cannot_be_applied_for(
    aiohttp_client: Any, db_url: str, departments: dict[str, FakeDepartment]
) -> None:
    app = create_app(
        settings(db_url), departments=departments, clock=Clock(dt.date(2016, 9, 30)), background=False
    )
    client = await aiohttp_client(app)
    matter = await (await client.get("/api/v1/matters/foreigner-employment")).json()
    assert (matter["available_from"], matter["available_until"]) == ("2016-10-01", None)
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA},
        headers=citizen(DATA["applicant"]["passport_number"]),
    )
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"] == "/problems/matter-not-available"
    assert (problem["available_from"], problem["available_until"], problem["today"]) == (
        "2016-10-01",
        None,
        "2016-09-30",
    )
    assert "from 2016-10-01" in problem["detail"]
    assert not [
        m for m, *_ in departments["permits"].calls if not m.startswith("Quote")
    ]  # nothing applied for


async def test_with_permits_down_identity_matters_go_on_and_foreign_cases_resume_when_it_returns(
    client: TestClient, permits: Any, departments: Any
) -> None:
    from gateway.typedefs import clock_key, health_key
    from tests.fakes import accepting_identity
    from tests.service.test_gateway_cases import APPLICANT as RENEWAL_APPLICANT
    from tests.service.test_gateway_cases import VALID as RENEWAL

    accepting_identity(departments["identity"])
    app = client.app
    permits.down = True
    await app[health_key].check(app[clock_key].now)
    assert (await client.get("/readyz")).status == 200

    shas = await upload_all(client)
    foreign = await (
        await client.post(
            "/api/v1/cases",
            json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
            headers=APPLICANT,
        )
    ).json()
    renewal = await (await client.post("/api/v1/cases", json=RENEWAL, headers=RENEWAL_APPLICANT)).json()
    assert renewal["state"] == "IN_REVIEW"

    # the renewal runs to its end while permits is down
    card = next(
        a.card_application.id
        for a in departments["identity"].answers.values()
        if a.DESCRIPTOR.name == "CreateCardApplicationResponse"
    )
    for event_type in ("CardApplicationApproved", "CardProduced", "CardReadyForPickup", "CardIssued"):
        await event(client, "identity", event_type, card)
    assert (await view(client, renewal))["state"] == "COMPLETED"

    # the foreign employee's case waits (delayed, never refused), its progress still answers
    for _ in range(4):
        await asyncio.sleep(0.05)
        await app[runner_key].drive()
    waiting = await view(client, foreign)
    steps = {s["key"]: s for s in waiting["steps"]}
    assert waiting["state"] == "NEEDS_ATTENTION"
    assert steps["work_permit"]["state"] == A.NEEDS_ATTENTION
    assert steps["work_permit"]["message"].startswith("Delayed")
    assert steps["accommodation"]["state"] == A.DONE

    # permits returns: the health check notices and the steps are taken up again (by the runner's loop,
    # which this test app drives by hand)
    permits.down = False
    await app[health_key].check(app[clock_key].now)
    async with asyncio.timeout(30):  # generous: the retry's backoff is short, a loaded machine is slow
        while True:
            await asyncio.sleep(0.05)
            await app[runner_key].drive()
            if (await view(client, foreign))["state"] == "IN_REVIEW":
                break
    resumed = {s["key"]: s for s in (await view(client, foreign))["steps"]}
    assert resumed["work_permit"]["state"] == A.ACCEPTED
    assert len(permits.calls_to("CreateWorkPermitApplication")) >= 2
    assert len({c.request_id for _, c in permits.calls_to("CreateWorkPermitApplication")}) == 1
