"""The three kinds of users at their windows, with fake departments: the counter (open, queue, materials
checked, pickup, receipt), the back office (approve / reject their department's steps), the online hall
(my cases, card, found cards, household, loss report) — each tried across two citizens, two halls and two
departments — plus feedback, statistics and milestone notifications."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient

from gateway import models
from gateway.clients import Refused
from gateway.saga.model import StepState as A
from gateway.store import Notification
from gateway.typedefs import notifier_key, runner_key, sessions_key, stats_key
from govhub.identity.v1 import identity_pb2
from govhub.residence.v1 import residence_pb2
from tests.fakes import FakeDepartment
from tests.service.gateway_fakes import deciding_identity, household_residence
from tests.service.gateway_support import bearer, citizen, counter, department
from tests.service.test_gateway_cases import APPLICANT, VALID

OTHER = citizen("310104197811300337")  # a second citizen
HALL = counter("310104", "staff-007")  # the hall the renewal names (accepting_region_code)
OTHER_HALL = counter("310115", "staff-115")
ADMIN = bearer("admin", "admin-1")


@pytest.fixture
def identity(departments: Any) -> Any:
    return deciding_identity(departments["identity"])


async def submit(client: TestClient) -> dict[str, Any]:
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def event(
    client: TestClient,
    department_name: str,
    event_type: str,
    resource: str,
    data: dict[str, Any] | None = None,
) -> None:
    runner = client.app[runner_key]
    async with client.app[sessions_key]() as session:
        assert await runner.apply_event(session, department_name, event_type, resource, data=data)
        await session.commit()


def card_id(identity: Any) -> str:
    """The card application of the latest submission."""
    answers = [
        a for a in identity.answers.values() if isinstance(a, identity_pb2.CreateCardApplicationResponse)
    ]
    return answers[-1].card_application.id


async def test_my_cases_are_mine_only(client: TestClient) -> None:
    body = await submit(client)
    mine = await (await client.get("/api/v1/me/cases", headers=APPLICANT)).json()
    assert [c["case_no"] for c in mine["cases"]] == [body["case_no"]]
    # each case with its steps in short, as the case itself shows them to its applicant
    case = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    [listed] = mine["cases"][0]["steps"]
    [step] = case["steps"]
    assert {k: listed[k] for k in ("key", "title", "title_zh", "department", "state")} == {
        k: step[k] for k in ("key", "title", "title_zh", "department", "state")
    }
    assert listed.get("results") == step.get("results")
    theirs = await (await client.get("/api/v1/me/cases", headers=OTHER)).json()
    assert theirs == {"cases": [], "next_page_token": ""}
    # withdrawal by token works for the owner only; the other citizen is told the case does not exist
    assert (await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", headers=OTHER)).status == 404
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", headers=APPLICANT)
    assert resp.status == 200
    assert (await resp.json())["state"] == "WITHDRAWN"


async def test_my_cases_list_the_steps_of_a_page_in_one_statement(client: TestClient) -> None:
    from sqlalchemy import event

    for _ in range(3):
        resp = await client.post(
            "/api/v1/cases", json=VALID, headers={**APPLICANT, "Idempotency-Key": str(uuid.uuid4())}
        )
        assert resp.status in (201, 409), await resp.text()
    statements: list[str] = []
    engine = client.app[sessions_key].kw["bind"].sync_engine

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = await (await client.get("/api/v1/me/cases?page_size=2", headers=APPLICANT)).json()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(page["cases"]) == 2 and all(c["steps"] for c in page["cases"])
    assert len([s for s in statements if "FROM case_steps" in s]) == 1


async def test_page_size_is_limited(client: TestClient) -> None:
    assert (await client.get("/api/v1/me/cases?page_size=101", headers=APPLICANT)).status == 400
    assert (await client.get("/api/v1/me/cases?page_size=0", headers=APPLICANT)).status == 400
    assert (await client.get("/api/v1/me/cases?page_token=zzz", headers=APPLICANT)).status == 400
    assert (await client.get("/api/v1/me/cases?page_size=100", headers=APPLICANT)).status == 200


async def test_department_staff_decide_only_their_departments_steps(
    client: TestClient, identity: Any
) -> None:
    body = await submit(client)
    case_no = body["case_no"]
    # permits staff: the case (identity only) does not exist for them
    resp = await client.post(
        f"/api/v1/backoffice/cases/{case_no}/steps/card/approve", headers=department("permits")
    )
    assert resp.status == 404
    listed = await (await client.get("/api/v1/backoffice/steps", headers=department("permits"))).json()
    assert listed["steps"] == []
    listed = await (await client.get("/api/v1/backoffice/steps", headers=department("identity"))).json()
    assert [(s["case_no"], s["step"]) for s in listed["steps"]] == [(case_no, "card")]
    # a reject needs reasons
    resp = await client.post(
        f"/api/v1/backoffice/cases/{case_no}/steps/card/reject",
        json={"reasons": []},
        headers=department("identity"),
    )
    assert resp.status == 400
    resp = await client.post(
        f"/api/v1/backoffice/cases/{case_no}/steps/card/approve", headers=department("identity", "officer-42")
    )
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["department_state"] == "APPROVED"
    [(approve, ctx)] = identity.calls_to("ApproveCardApplication")
    assert approve.id == card_id(identity)
    assert ctx.case_no == case_no
    assert ("ApproveCardApplication", {"x-govhub-actor": "officer-42", "x-govhub-actor-role": "officer"}) in (
        identity.metadata
    )
    # the department emits its event; the saga moves the case (nothing changed by the back office itself)
    view = await (await client.get(f"/api/v1/cases/{case_no}", headers=APPLICANT)).json()
    assert view["state"] == "IN_REVIEW"
    await event(client, "identity", "CardApplicationApproved", approve.id)
    view = await (await client.get(f"/api/v1/cases/{case_no}", headers=APPLICANT)).json()
    assert view["state"] == "APPROVED"
    again = await client.post(
        f"/api/v1/backoffice/cases/{case_no}/steps/card/approve", headers=department("identity")
    )
    assert again.status == 409


async def test_a_rejection_carries_its_reasons(client: TestClient, identity: Any) -> None:
    body = await submit(client)
    resp = await client.post(
        f"/api/v1/backoffice/cases/{body['case_no']}/steps/card/reject",
        json={"reasons": ["照片不符合要求", "请重新采集"]},
        headers=department("identity"),
    )
    assert resp.status == 202
    [(reject, _)] = identity.calls_to("RejectCardApplication")
    assert reject.reason == "照片不符合要求; 请重新采集"


async def test_counter_opens_checks_materials_hands_over_and_completes(
    client: TestClient, identity: Any
) -> None:
    resp = await client.post("/api/v1/counter/cases", json=VALID, headers=HALL)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    receipt = body["receipt"]
    case_no = body["case_no"]
    assert receipt["query_code"] == body["query_code"]
    assert receipt["opened_by"] == "staff-007" and receipt["hall"] == "310104"
    assert receipt["expected_date"] == "2016-11-14"
    # what identity charged on this case (its answer), not a schedule copied into the matter
    assert receipt["fees"] == [{"item": "ID card renewal (hukou PSB decides)", "amount_fen": 2000}]

    # another hall does not see it; a citizen who is not the applicant neither
    assert (await client.get(f"/api/v1/counter/cases/{case_no}/receipt", headers=OTHER_HALL)).status == 404
    assert (await client.get(f"/api/v1/cases/{case_no}", headers=OTHER)).status == 404
    queue = await (await client.get("/api/v1/counter/queue?department=identity", headers=HALL)).json()
    assert [c["case_no"] for c in queue["cases"]] == [case_no]
    assert (await (await client.get("/api/v1/counter/queue", headers=OTHER_HALL)).json())["cases"] == []
    assert (await (await client.get("/api/v1/counter/queue?department=permits", headers=HALL)).json())[
        "cases"
    ] == []

    resp = await client.post(
        f"/api/v1/counter/cases/{case_no}/materials-checked", json={"materials": ["selfie"]}, headers=HALL
    )
    assert resp.status == 400
    resp = await client.post(
        f"/api/v1/counter/cases/{case_no}/materials-checked",
        json={"materials": ["old_id_card", "residence_permit", "photo_receipt"]},
        headers=HALL,
    )
    assert resp.status == 200
    again = await (await client.get(f"/api/v1/counter/cases/{case_no}/receipt", headers=HALL)).json()
    assert [m["key"] for m in again["materials_received"]] == [
        "old_id_card",
        "residence_permit",
        "photo_receipt",
    ]
    assert "query_code" not in again  # given only once

    assert (await client.post(f"/api/v1/counter/cases/{case_no}/pickup", json={}, headers=HALL)).status == 409
    resource = card_id(identity)
    for kind in ("CardApplicationApproved", "CardProduced", "CardReadyForPickup"):
        await event(client, "identity", kind, resource)
    refused = await client.post(f"/api/v1/counter/cases/{case_no}/pickup", json={}, headers=HALL)
    assert refused.status == 422
    assert (await refused.json())["reason"] == "OLD_CARD_NOT_SURRENDERED"
    resp = await client.post(
        f"/api/v1/counter/cases/{case_no}/pickup", json={"old_card_surrendered": True}, headers=HALL
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "COMPLETED"
    issued = identity.calls_to("IssueCard")
    assert issued[-1][0].old_card_surrendered is True and issued[-1][0].id == resource
    # the department's CardIssued event arriving afterwards changes nothing
    async with client.app[sessions_key]() as session:
        assert not await client.app[runner_key].apply_event(session, "identity", "CardIssued", resource)
    view = await (await client.get(f"/api/v1/cases/{case_no}", headers=APPLICANT)).json()
    assert view["state"] == "COMPLETED"
    assert view["steps"][0]["state"] == A.DONE


async def completed_case(client: TestClient, identity: Any) -> str:
    body = await (await client.post("/api/v1/counter/cases", json=VALID, headers=HALL)).json()
    for kind in ("CardApplicationApproved", "CardReadyForPickup"):
        await event(client, "identity", kind, card_id(identity))
    resp = await client.post(
        f"/api/v1/counter/cases/{body['case_no']}/pickup", json={"old_card_surrendered": True}, headers=HALL
    )
    assert (await resp.json())["state"] == "COMPLETED"
    return body["case_no"]


async def test_feedback_once_by_the_applicant_replies_by_staff_and_stats(
    client: TestClient, identity: Any, departments: dict[str, FakeDepartment]
) -> None:
    open_case = await submit(client)
    resp = await client.post(
        f"/api/v1/cases/{open_case['case_no']}/feedback", json={"rating": 5}, headers=APPLICANT
    )
    assert resp.status == 409  # not completed yet
    await client.post(f"/api/v1/cases/{open_case['case_no']}/withdraw", headers=APPLICANT)

    case_no = await completed_case(client, identity)
    url = f"/api/v1/cases/{case_no}/feedback"
    assert (await client.post(url, json={"rating": 1}, headers=OTHER)).status == 404
    assert (await client.post(url, json={"rating": 6}, headers=APPLICANT)).status == 400
    resp = await client.post(url, json={"rating": 2, "comment": "等了很久"}, headers=APPLICANT)
    assert resp.status == 201
    assert (await resp.json())["flagged"] is True
    assert (await client.post(url, json={"rating": 5}, headers=APPLICANT)).status == 409  # once
    flagged = await (await client.get("/api/v1/admin/feedback", headers=ADMIN)).json()
    assert [f["case_no"] for f in flagged["feedback"]] == [case_no]
    assert (await client.get("/api/v1/admin/feedback", headers=HALL)).status == 403

    reply = {"text": "抱歉，已改进排队安排"}
    assert (await client.post(f"{url}/replies", json=reply, headers=OTHER_HALL)).status == 404
    assert (await client.post(f"{url}/replies", json=reply, headers=department("permits"))).status == 404
    resp = await client.post(f"{url}/replies", json=reply, headers=HALL)
    assert resp.status == 201
    seen = await (await client.get(url, headers=APPLICANT)).json()
    assert seen["replies"][0]["text"] == reply["text"]

    stats = await (await client.get("/api/v1/stats")).json()
    renewal = stats["cases"]["by_matter"]["id-card-renewal-cross-province"]
    assert renewal["by_state"] == {"WITHDRAWN": 1, "COMPLETED": 1}
    assert stats["satisfaction"] == {"ratings": 1, "satisfied": 0, "rate": 0.0, "average": 2.0}
    assert stats["working_days"]["completed_cases"] == 1
    assert stats["working_days"]["average"] == 0  # completed the day it was submitted
    assert "unavailable" not in stats["working_days"]
    [(asked, _)] = departments["permits"].calls_to("CountWorkingDays")  # permits keeps the calendar
    assert len(asked.spans) == 1 and asked.spans[0].start_date == asked.spans[0].end_date
    assert stats["on_time"]["rate"] == 1.0


async def test_stats_say_when_permits_cannot_count_working_days(
    client: TestClient, identity: Any, departments: dict[str, FakeDepartment]
) -> None:
    await completed_case(client, identity)

    def not_covered(_request: Any) -> Any:
        raise Refused(
            "permits", "CALENDAR_NOT_COVERED", "no holiday notice for 2027 yet", "FAILED_PRECONDITION"
        )

    departments["permits"].handlers["CountWorkingDays"] = not_covered
    stats = await (await client.get("/api/v1/stats")).json()
    assert stats["working_days"] == {
        "completed_cases": 1,
        "average": None,
        "unavailable": "no holiday notice for 2027 yet",
    }
    client.app[stats_key].invalidate()
    departments["permits"].down = True
    stats = await (await client.get("/api/v1/stats")).json()
    assert stats["working_days"]["average"] is None
    assert stats["working_days"]["unavailable"] == "the permits department did not answer"
    assert stats["cases"]["total"] == 1  # the rest of the statistics still answer


async def test_my_card_found_cards_and_loss_report(client: TestClient, identity: Any) -> None:
    card = await (await client.get("/api/v1/me/card", headers=APPLICANT)).json()
    assert card["status"] == "VALID" and card["card_number"] == "C-OLD"
    [(asked, _)] = identity.calls_to("GetCurrentCard")
    assert asked.id_number == "11010519491231002X"  # always the token's person, never a parameter
    assert (
        "GetCurrentCard",
        {"x-govhub-actor": "citizen-002X", "x-govhub-actor-role": "citizen"},
    ) in identity.metadata
    assert (await client.get("/api/v1/me/card", headers=OTHER)).status == 404
    found = await (await client.get("/api/v1/me/found-cards", headers=OTHER)).json()
    assert found["found_cards"][0]["status"] == "AWAITING_OWNER"
    assert identity.calls_to("SearchFoundCards")[0][0].id_number == "310104197811300337"
    resp = await client.post(
        "/api/v1/me/card/report-lost", json={"name": "陈沪明", "station_region_code": "310104"}, headers=OTHER
    )
    assert resp.status == 201
    assert identity.calls_to("ReportCardLost")[0][0].id_number == "310104197811300337"
    foreigner = citizen("E12345678")
    assert (await client.get("/api/v1/me/card", headers=foreigner)).status == 404


async def test_my_household(client: TestClient, departments: Any) -> None:
    residence = household_residence(departments["residence"])
    body = await (await client.get("/api/v1/me/household", headers=OTHER)).json()
    assert body["household"]["number"] == "310104-0001"
    assert body["members"] == [{"name": "陈沪明", "relationship_code": "02", "status": "UNSPECIFIED"}]
    assert residence.calls_to("GetPerson")[0][0].id_number == "310104197811300337"
    residence.down = True
    resp = await client.get("/api/v1/me/household", headers=OTHER)
    assert resp.status == 503 and resp.headers["Retry-After"]


async def test_each_milestone_is_notified_once(client: TestClient, identity: Any) -> None:
    contact = {"phone": "13800138000", "language": "en"}
    resp = await client.post("/api/v1/cases", json={**VALID, "contact": contact}, headers=APPLICANT)
    body = await resp.json()
    notifier = client.app[notifier_key]
    sent: list[Any] = []

    class Recorder:
        async def send(self, message: Any) -> None:
            sent.append(message)

    notifier.sender = Recorder()
    assert await notifier.run_once() == 1
    assert await notifier.run_once() == 0  # nothing changed
    resource = card_id(identity)
    await event(client, "identity", "CardApplicationApproved", resource)
    await event(client, "identity", "CardReadyForPickup", resource)
    assert await notifier.run_once() == 1  # only the state it is in now: ready for pickup
    assert [m.milestone for m in sent] == ["received", "ready_for_pickup"]
    assert sent[0].channel == "sms" and sent[0].recipient == "13800138000"
    assert sent[0].masked_recipient == "138****8000"
    assert body["case_no"] in sent[1].text and "ready" in sent[1].text
    mine = await (await client.get("/api/v1/me/notifications", headers=APPLICANT)).json()
    assert [n["milestone"] for n in mine["notifications"]] == ["ready_for_pickup", "received"]
    assert (await (await client.get("/api/v1/me/notifications", headers=OTHER)).json())["notifications"] == []
    async with client.app[sessions_key]() as session:
        from sqlalchemy import select

        rows = list(await session.scalars(select(Notification)))
    assert {r.recipient for r in rows} == {"138****8000"}  # stored masked


async def test_one_pass_tells_each_case_of_its_own_milestone(client: TestClient, identity: Any) -> None:
    """Cases in different situations in one pass: a new one told it was received, one moved on told its
    new state, and one told by another replica meanwhile (still due here) not told again."""
    from sqlalchemy import update

    from gateway.store import Case

    notifier = client.app[notifier_key]
    first = await submit(client)
    await notifier.run_once()
    approved = card_id(identity)
    await event(client, "identity", "CardApplicationApproved", approved)  # first: due, APPROVED
    others = [await submit(client), await submit(client)]  # due, IN_REVIEW, never told
    async with client.app[sessions_key]() as session:
        # the second case was told of IN_REVIEW by another replica meanwhile (still flagged due here)
        await session.execute(
            update(Case).where(Case.case_no == others[0]["case_no"]).values(notified_state="IN_REVIEW")
        )
        await session.commit()
    sent: list[Any] = []

    class Recorder:
        async def send(self, message: Any) -> None:
            sent.append(message)

    notifier.sender = Recorder()
    assert await notifier.run_once() == 2
    assert sorted((m.case_no, m.milestone) for m in sent) == sorted(
        [(first["case_no"], "approved"), (others[1]["case_no"], "received")]
    )
    async with client.app[sessions_key]() as session:
        from sqlalchemy import select

        due = list(await session.scalars(select(Case.case_no).where(Case.notify_due.is_(True))))
        rows = list(await session.scalars(select(Notification.milestone)))
    assert due == []
    assert sorted(rows) == ["approved", "received", "received"]


async def test_chinese_by_default_and_rejections_are_told(client: TestClient, identity: Any) -> None:
    body = await submit(client)
    resp = await client.post(
        f"/api/v1/backoffice/cases/{body['case_no']}/steps/card/reject",
        json={"reasons": ["材料不全"]},
        headers=department("identity"),
    )
    assert resp.status == 202
    words = "照片不符合要求，请联系 13800138000"
    facts = {"rejection_reason": words, "rejection_code": "PHOTO_NOT_COMPLIANT", "state": "REJECTED"}
    await event(client, "identity", "CardApplicationRejected", card_id(identity), facts)
    notifier = client.app[notifier_key]
    await notifier.run_once()
    mine = await (await client.get("/api/v1/me/notifications", headers=APPLICANT)).json()
    assert [n["milestone"] for n in mine["notifications"]] == ["rejected"]  # the first look saw it rejected
    text = mine["notifications"][0]["text"]
    assert "未获批准" in text and "照片不符合要求" in text and "13800138000" not in text
    assert mine["notifications"][0]["channel"] == "record"
    own = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    assert own["rejection"] == {"reasons": [words], "codes": ["PHOTO_NOT_COMPLIANT"]}
    assert own["steps"][0]["rejection"] == own["rejection"]
    progress = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    public = (await progress.json())["rejection"]
    assert public["codes"] == ["PHOTO_NOT_COMPLIANT"]
    assert "照片不符合要求" in public["reasons"][0] and "13800138000" not in public["reasons"][0]


async def test_progress_lookups_are_rate_limited_per_address(client: TestClient) -> None:
    from gateway.typedefs import progress_limiter_key

    body = await submit(client)
    limiter = client.app[progress_limiter_key]
    limiter.rate, limiter.burst = 0.5, 3
    url = f"/api/v1/progress/{body['case_no']}?code={body['query_code']}"
    statuses = [(await client.get(url)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = await client.get(url)
    assert resp.content_type == "application/problem+json"
    assert int(resp.headers["Retry-After"]) >= 1


async def test_pages_forward_the_browsers_address_only_with_the_process_secret(client: TestClient) -> None:
    """The pages call the API over the loopback: with this process's secret the limit counts each browser's
    address; a forged address without the secret counts against the caller's own."""
    from gateway.ratelimit import PAGE_CLIENT_HEADER, PAGE_SECRET_HEADER
    from gateway.typedefs import page_secret_key, progress_limiter_key

    body = await submit(client)
    limiter = client.app[progress_limiter_key]
    limiter.rate, limiter.burst = 0.01, 2
    url = f"/api/v1/progress/{body['case_no']}?code={body['query_code']}"
    secret = client.app[page_secret_key]

    def page(browser: str) -> dict[str, str]:
        return {PAGE_CLIENT_HEADER: browser, PAGE_SECRET_HEADER: secret}

    first = [(await client.get(url, headers=page("198.51.100.7"))).status for _ in range(3)]
    other = [(await client.get(url, headers=page("198.51.100.8"))).status for _ in range(2)]
    assert first == [200, 200, 429] and other == [200, 200]
    forged = {PAGE_CLIENT_HEADER: "198.51.100.9", PAGE_SECRET_HEADER: "guess"}
    own = [(await client.get(url, headers=forged)).status for _ in range(3)]
    assert own == [200, 200, 429]  # counted as the caller itself, not as the address it named


async def test_request_bodies_are_limited(client: TestClient) -> None:
    big = {"matter": "x", "data": {"pad": "x" * 300_000}}
    resp = await client.post("/api/v1/cases", json=big, headers=APPLICANT)
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_metrics_count_requests_cases_and_retries(client: TestClient, departments: Any) -> None:
    departments["identity"].down = True
    await submit(client)
    await client.get("/api/v1/matters")
    text = await (await client.get("/metrics")).text()
    assert 'govhub_http_requests_total{method="GET",route="/api/v1/matters",status="200"} 1.0' in text
    assert (
        'govhub_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/cases"}' in text
    )
    assert 'govhub_cases{state="RECEIVED"} 1.0' in text
    assert "govhub_saga_retries" in text


def test_request_ids_are_uuids() -> None:
    from gateway.calls import derived_request_id

    base = str(uuid.uuid4())
    assert derived_request_id(base, "approve") == derived_request_id(base, "approve")
    assert derived_request_id(base, "approve") != derived_request_id(base, "reject")


async def test_a_card_application_approved_cannot_be_withdrawn_and_says_why(
    client: TestClient, identity: Any
) -> None:
    body = await submit(client)
    await event(client, "identity", "CardApplicationApproved", card_id(identity))
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", headers=APPLICANT)
    assert resp.status == 409, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"] == "/problems/withdrawal-refused"
    assert [(s["key"], s["reason"], s["department_state"]) for s in problem["steps"]] == [
        ("card", "ALREADY_DECIDED", "APPROVED")
    ]
    assert "card" in problem["detail"]
    assert identity.calls_to("CancelCardApplication") == []
    view = await (await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)).json()
    assert view["state"] == "APPROVED" and view["steps"][0]["state"] == A.APPROVED
    # both answers are what the OpenAPI document says they are (its schemas are these structs)
    assert msgspec.convert(problem, models.WithdrawalRefused).steps[0].reason == "ALREADY_DECIDED"
    assert msgspec.convert(view, models.Case).steps[0].state == A.APPROVED


async def test_an_undo_the_department_refuses_is_never_shown_as_compensated(
    client: TestClient, identity: Any
) -> None:
    body = await submit(client)

    def refuse_cancel(request: Any) -> Any:
        raise Refused("identity", "ILLEGAL_TRANSITION", "the application is approved", "FAILED_PRECONDITION")

    identity.handlers["CancelCardApplication"] = refuse_cancel
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", headers=APPLICANT)
    assert resp.status == 202  # accepted, not done
    view = await resp.json()
    assert view["steps"][0]["state"] == A.NEEDS_ATTENTION
    assert view["steps"][0]["reason"] == "UNDO_REFUSED"
    assert view["state"] == "NEEDS_ATTENTION"  # not WITHDRAWN while identity holds the application
    assert len(identity.calls_to("CancelCardApplication")) == 1


async def test_a_recorded_name_change_is_withdrawn_whole_or_not_at_all(
    client: TestClient, departments: Any
) -> None:
    residence, identity = departments["residence"], departments["identity"]
    residence.handlers["ChangeName"] = lambda request: residence_pb2.ChangeNameResponse(
        person=residence_pb2.Person(id="person-1", hukou_region_code="310106")
    )
    identity.down = True  # the card renewal waits: the register already holds the new name
    content = b"%PDF-1.4\n% name change reason\n%%EOF\n"
    form = aiohttp.FormData()
    form.add_field("file", content, filename="reason.pdf", content_type="application/pdf")
    assert (await client.post("/api/v1/materials", data=form, headers=APPLICANT)).status == 201
    body = {
        "matter": "name-change",
        "data": {
            "applicant": {"id_number": "11010519491231002X", "name": "测试甲"},
            "new_name": "测试乙",
            "station_region_code": "310106",
        },
        "materials": {"name_change_reason": hashlib.sha256(content).hexdigest()},
    }
    resp = await client.post("/api/v1/cases", json=body, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    case = await resp.json()
    assert {s["key"]: s["state"] for s in case["steps"]}["name_change"] == A.DONE
    resp = await client.post(f"/api/v1/cases/{case['case_no']}/withdraw", headers=APPLICANT)
    assert resp.status == 409, await resp.text()
    problem = await resp.json()
    assert [(s["key"], s["reason"]) for s in problem["steps"]] == [("name_change", "NOT_UNDOABLE")]
    view = await (await client.get(f"/api/v1/cases/{case['case_no']}", headers=APPLICANT)).json()
    card = {s["key"]: s["state"] for s in view["steps"]}["card_renewal"]
    assert card not in (A.CANCELLED, A.COMPENSATED)  # the renewal the law requires goes on
    assert view["state"] != "WITHDRAWN"
