"""The gateway's case window with fake departments: validation, submission, status, events,
Idempotency-Key and retries."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from gateway.audit import trail_key
from gateway.clients import Refused
from gateway.saga.model import StepState as A
from gateway.store import AuditEntry, Case, IdempotencyKey, Notification
from gateway.typedefs import clock_key, engine_key, health_key, notifier_key, runner_key, sessions_key
from tests.fakes import accepting_identity
from tests.service.gateway_support import bearer, citizen

VALID = {
    "matter": "id-card-renewal-cross-province",
    "data": {
        "applicant": {"id_number": "11010519491231002X", "name": "测试甲"},
        "renewal_reason": "EXPIRY",
        "accepting_region_code": "310104",
        "residence_permit": {"number": "SH310104201600001", "valid_until": "2017-06-30"},
    },
}
APPLICANT = citizen("11010519491231002X")  # the applicant's bearer token: online, one applies for oneself


async def case_count(client: TestClient) -> int:
    async with client.app[sessions_key]() as session:
        return await session.scalar(select(func.count()).select_from(Case)) or 0


async def retry_due_steps(client: TestClient) -> None:
    """Past the (tiny) retry backoff, run what is due, as the background loop would."""
    await asyncio.sleep(0.05)
    await client.app[runner_key].drive()


async def case_by_code(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": body["query_code"]})
    return cast("dict[str, Any]", await resp.json())


async def test_submission_opens_a_case_and_sends_the_step_once(client: TestClient, departments: Any) -> None:
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["case_no"].startswith("GH20160915")
    assert len(body["query_code"]) == 8
    assert body["state"] == "IN_REVIEW"
    assert [s["state"] for s in body["steps"]] == [A.ACCEPTED]
    assert body["steps"][0]["statutory_deadline"] == "2016-11-14"
    assert body["fee_fen"] == 2000
    assert "applicant" not in body  # no personal data for the holder of a query code
    [(request, ctx)] = departments["identity"].calls_to("CreateCardApplication")
    assert request.id_number == "11010519491231002X"
    assert request.accepting_region_code == "310104"
    assert ctx.case_no == body["case_no"]
    assert ctx.request_id == request.request_id

    status = await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": body["query_code"]})
    assert status.status == 200
    view = await status.json()
    assert view["state"] == "IN_REVIEW"
    assert "11010519491231002X" not in await status.text()


async def test_wrong_query_code_is_not_found(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    wrong = "000000" if body["query_code"] != "000000" else "111111"
    resp = await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": wrong})
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


async def test_progress_without_a_code_names_it_alike_for_every_number(client: TestClient) -> None:
    """A lookup with no query code is told the code is required, the same for a number that exists and
    one that does not, and nothing is counted against the case."""
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    answers = []
    for number in (body["case_no"], "GH20160101NOSUCH"):
        resp = await client.get(f"/api/v1/progress/{number}")
        answers.append((resp.status, (await resp.json())["errors"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 400 and [(e["field"], e["reason"]) for e in answers[0][1]] == [
        ("code", "REQUIRED")
    ]
    for _ in range(6):  # more than the lockout allows: none of them counted
        await client.get(f"/api/v1/progress/{body['case_no']}")
    ok = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    assert ok.status == 200


async def test_bad_check_digit_is_a_400_naming_the_field_and_nothing_is_sent(
    client: TestClient, departments: Any
) -> None:
    bad = {
        **VALID,
        "data": {**VALID["data"], "applicant": {"id_number": "440308199901101513", "name": "测试乙"}},
    }
    resp = await client.post("/api/v1/cases", json=bad, headers=APPLICANT)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["errors"] == [
        {
            "field": "data.applicant.id_number",
            "reason": "BAD_CHECK_DIGIT",
            "detail": problem["errors"][0]["detail"],
        }
    ]
    assert departments["identity"].calls == []
    assert await case_count(client) == 0


async def test_every_missing_field_is_listed_at_once(client: TestClient) -> None:
    resp = await client.post(
        "/api/v1/cases", json={"matter": "id-card-renewal-cross-province", "data": {}}, headers=APPLICANT
    )
    assert resp.status == 400
    fields = {e["field"] for e in (await resp.json())["errors"]}
    assert fields == {
        "data.applicant.id_number",
        "data.applicant.name",
        "data.renewal_reason",
        "data.accepting_region_code",
        "data.residence_permit.number",
        "data.residence_permit.valid_until",
    }


async def test_unknown_matter_and_malformed_bodies(client: TestClient) -> None:
    resp = await client.post(
        "/api/v1/cases", json={"matter": "no-such-matter", "data": {}}, headers=APPLICANT
    )
    assert resp.status == 400
    [error] = (await resp.json())["errors"]
    assert (error["field"], error["reason"]) == (
        "matter",
        "UNKNOWN_MATTER",
    ) and "newborn-registration" in error["detail"]
    for body, field, reason in [
        ({"data": {}}, "matter", "REQUIRED"),
        ({"matter": 7, "data": {}}, "matter", "NOT_A_STRING"),
        ({"matter": VALID["matter"]}, "data", "REQUIRED"),
        ({"matter": VALID["matter"], "data": "x"}, "data", "NOT_AN_OBJECT"),
    ]:
        resp = await client.post("/api/v1/cases", json=body, headers=APPLICANT)
        assert resp.status == 400
        assert [(e["field"], e["reason"]) for e in (await resp.json())["errors"]] == [(field, reason)], body
    resp = await client.post(
        "/api/v1/cases", data=b"{not json", headers={"Content-Type": "application/json", **APPLICANT}
    )
    assert resp.status == 400
    resp = await client.post("/api/v1/cases", data=b"x", headers={"Content-Type": "text/plain", **APPLICANT})
    assert resp.status == 415


async def test_department_refusal_is_a_422_with_its_reason_and_leaves_no_case(
    client: TestClient, departments: Any
) -> None:
    accepting_identity(departments["identity"], refuse="PROVINCE_NOT_YET_ACCEPTED")
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["reason"] == "PROVINCE_NOT_YET_ACCEPTED"
    assert "errors" not in problem  # a rule about the whole application names no field
    assert problem["type"] == "/problems/refused"
    assert "case_no" not in problem
    assert await case_count(client) == 0


async def test_a_refusal_about_one_submitted_field_names_it(client: TestClient, departments: Any) -> None:
    accepting_identity(departments["identity"], refuse="RESIDENCE_PERMIT_EXPIRED")
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["reason"] == "RESIDENCE_PERMIT_EXPIRED"
    assert problem["errors"] == [
        {
            "field": "data.residence_permit.valid_until",
            "reason": "RESIDENCE_PERMIT_EXPIRED",
            "detail": "refused by the rules",
        }
    ]
    assert await case_count(client) == 0


async def test_an_open_application_at_the_department_is_a_409_leaving_no_case_nor_notification(
    client: TestClient, departments: Any
) -> None:
    def exists(request: Any) -> Any:
        raise Refused("identity", "OPEN_APPLICATION_EXISTS", "one is open", "ALREADY_EXISTS")

    departments["identity"].handlers["CreateCardApplication"] = exists
    resp = await client.post(
        "/api/v1/cases", json={**VALID, "contact": {"phone": "13800138000"}}, headers=APPLICANT
    )
    assert resp.status == 409, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["reason"] == "OPEN_APPLICATION_EXISTS" and problem["step"] == "card"
    assert await case_count(client) == 0
    assert await client.app[notifier_key].run_once() == 0
    async with client.app[sessions_key]() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
        attempts = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.method == "POST /api/v1/cases"))
        )
    assert [(a.outcome, a.status) for a in attempts] == [("failed", "409")]
    assert attempts[0].record_key == client.app[trail_key].keys.id_number("11010519491231002X")


async def test_unavailable_department_is_retried_until_it_answers(
    client: TestClient, departments: Any
) -> None:
    departments["identity"].down = True
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 201
    body = await resp.json()
    assert body["state"] == "RECEIVED"
    assert body["steps"][0]["state"] == A.PENDING
    departments["identity"].down = False
    await retry_due_steps(client)
    view = await case_by_code(client, body)
    assert view["state"] == "IN_REVIEW"
    calls = departments["identity"].calls_to("CreateCardApplication")
    assert len({ctx.request_id for _, ctx in calls}) == 1  # every attempt carries the same request_id


async def test_retries_exhausted_needs_attention(client: TestClient, departments: Any) -> None:
    departments["identity"].down = True
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    for _ in range(5):
        await retry_due_steps(client)
    view = await case_by_code(client, body)
    assert view["state"] == "NEEDS_ATTENTION"
    assert view["steps"][0]["state"] == A.NEEDS_ATTENTION
    assert len(departments["identity"].calls_to("CreateCardApplication")) == 3


async def test_department_events_move_the_case_and_repeats_are_ignored(
    client: TestClient, departments: Any
) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    [(_, _)] = departments["identity"].calls_to("CreateCardApplication")
    resource = next(iter(departments["identity"].answers.values())).card_application.id
    runner = client.app[runner_key]
    async with client.app[sessions_key]() as session:
        assert await runner.apply_event(session, "identity", "CardApplicationApproved", resource)
        await session.commit()
    async with client.app[sessions_key]() as session:
        assert not await runner.apply_event(session, "identity", "CardApplicationApproved", resource)
        assert not await runner.apply_event(session, "identity", "CardApplicationApproved", "someone-else")
        await session.commit()
    view = await (
        await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": body["query_code"]})
    ).json()
    assert view["state"] == "APPROVED"
    async with client.app[sessions_key]() as session:
        assert await runner.apply_event(session, "identity", "CardReadyForPickup", resource)
        await session.commit()
    view = await (
        await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": body["query_code"]})
    ).json()
    assert view["state"] == "READY_FOR_PICKUP"


async def test_department_rejection_event_rejects_the_case(client: TestClient, departments: Any) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    resource = next(iter(departments["identity"].answers.values())).card_application.id
    async with client.app[sessions_key]() as session:
        assert await client.app[runner_key].apply_event(
            session, "identity", "CardApplicationRejected", resource
        )
        await session.commit()
    view = await (
        await client.get(f"/api/v1/cases/{body['case_no']}", params={"code": body["query_code"]})
    ).json()
    assert view["state"] == "REJECTED"
    assert view["steps"][0]["state"] == A.REFUSED


async def test_idempotency_key_replays_and_refuses_another_body(client: TestClient) -> None:
    headers = {"Idempotency-Key": "key-1", **APPLICANT}
    first = await client.post("/api/v1/cases", json=VALID, headers=headers)
    again = await client.post("/api/v1/cases", json=VALID, headers=headers)
    assert first.status == again.status == 201
    assert (await first.json())["case_no"] == (await again.json())["case_no"]
    other = {**VALID, "data": {**VALID["data"], "renewal_reason": "SERIOUS_DAMAGE"}}
    resp = await client.post("/api/v1/cases", json=other, headers=headers)
    assert resp.status == 422
    assert await case_count(client) == 1


async def test_a_replayed_answer_carries_a_new_query_code_and_none_is_stored_in_clear(
    client: TestClient,
) -> None:
    """The query code is kept only as a hash: the answer stored for a retry does not hold it, so a
    retry is given the case as it stands with a new code, which works, and the first stops working."""
    headers = {"Idempotency-Key": "key-code", **APPLICANT}
    first = await (await client.post("/api/v1/cases", json=VALID, headers=headers)).json()
    async with client.app[sessions_key]() as session:
        stored = [row.response for row in await session.scalars(select(IdempotencyKey))]
    assert stored and all("query_code" not in response for response in stored)
    assert all(first["query_code"] not in str(response) for response in stored)
    async with client.app[sessions_key]() as session:  # the case moves on meanwhile
        await session.execute(update(Case).where(Case.case_no == first["case_no"]).values(state="APPROVED"))
        await session.commit()
    again = await (await client.post("/api/v1/cases", json=VALID, headers=headers)).json()
    assert again["case_no"] == first["case_no"] and again["query_code"] != first["query_code"]
    assert again["state"] == "APPROVED"  # as it stands now, not as it stood then
    progress = f"/api/v1/progress/{first['case_no']}"
    assert (await client.get(progress, params={"code": again["query_code"]})).status == 200
    assert (await client.get(progress, params={"code": first["query_code"]})).status == 404


async def test_twenty_parallel_posts_with_one_key_make_one_case(client: TestClient) -> None:
    headers = {"Idempotency-Key": "parallel-key", **APPLICANT}
    responses = await asyncio.gather(
        *(client.post("/api/v1/cases", json=VALID, headers=headers) for _ in range(20))
    )
    statuses = sorted(r.status for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    numbers = {(await r.json())["case_no"] for r in responses if r.status == 201}
    assert len(numbers) == 1
    assert await case_count(client) == 1


async def test_matters_are_public(client: TestClient) -> None:
    resp = await client.get("/api/v1/matters")
    assert resp.status == 200
    matters = {m["id"]: m for m in (await resp.json())["matters"]}
    renewal = matters["id-card-renewal-cross-province"]
    assert {m["key"] for m in renewal["materials"]} == {"old_id_card", "residence_permit", "photo_receipt"}
    assert (await client.get("/api/v1/matters/nope")).status == 404


async def test_a_department_down_leaves_the_gateway_ready_and_shows_on_status_and_metrics(
    client: TestClient, departments: Any
) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    departments["permits"].down = True
    await client.app[health_key].check(client.app[clock_key].now)
    resp = await client.get("/readyz")
    assert resp.status == 200  # the gateway serves identity's matters and every progress lookup
    assert (await resp.json())["database"] == "ok"
    assert (await client.get("/api/v1/status")).status == 401  # staff only
    assert (await client.get("/api/v1/status", headers=citizen("11010519491231002X"))).status == 403
    status = await (await client.get("/api/v1/status", headers=bearer("admin", "admin-1"))).json()
    assert status["departments"]["permits"]["status"] == "down"
    assert status["departments"]["identity"]["status"] == "up"
    metrics = await (await client.get("/metrics")).text()
    assert 'govhub_department_up{department="permits"} 0.0' in metrics
    assert 'govhub_department_up{department="identity"} 1.0' in metrics


async def test_readiness_fails_when_the_gateway_database_does_not_answer(client: TestClient) -> None:
    await client.app[engine_key].dispose()
    client.app[sessions_key].kw["bind"] = None  # every session now fails to connect
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["database"] == "unavailable"


async def test_withdrawal_cancels_the_department_record(client: TestClient, departments: Any) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    resource = next(iter(departments["identity"].answers.values())).card_application.id
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", json={"code": body["query_code"]})
    assert resp.status == 200
    view = await resp.json()
    assert view["state"] == "WITHDRAWN"
    assert view["steps"][0]["state"] == A.COMPENSATED
    [(cancel, ctx)] = departments["identity"].calls_to("CancelCardApplication")
    assert cancel.id == resource
    assert ctx.request_id != departments["identity"].calls_to("CreateCardApplication")[0][1].request_id
    again = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", json={"code": body["query_code"]})
    assert again.status == 409
    progress = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    assert (await progress.json())["state"] == "WITHDRAWN"


async def test_a_withdrawal_the_department_has_not_yet_undone_is_withdrawing_not_withdrawn(
    client: TestClient, departments: Any
) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    assert body["steps"][0]["state"] == A.ACCEPTED
    departments["identity"].down = True  # the cancellation cannot reach identity yet
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", json={"code": body["query_code"]})
    assert resp.status == 202
    view = await resp.json()
    assert view["state"] == "WITHDRAWING" and view["steps"][0]["state"] == A.COMPENSATING
    progress = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    assert (await progress.json())["state"] == "WITHDRAWING"
    departments["identity"].down = False
    await retry_due_steps(client)
    view = await case_by_code(client, body)
    assert view["state"] == "WITHDRAWN" and view["steps"][0]["state"] == A.COMPENSATED
    assert len(departments["identity"].calls_to("CancelCardApplication")) >= 1


async def test_withdrawal_needs_the_query_code(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    resp = await client.post(f"/api/v1/cases/{body['case_no']}/withdraw", json={"code": "12345"})
    assert resp.status == 404
