"""Back office (for department staff without a gRPC client), staff replies to feedback, and the admin's
follow-up list.

Department staff see and decide only their own department's steps (the token's ``dept``); a step of
another department does not exist for them (404). A decision calls the department's own RPC with the
staff member's identity forwarded; the department emits its event and the saga moves the case on."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway import models
from gateway.api.common import department_problem, invalid, next_token, page, read_body, reply, visible_case
from gateway.auth import Principal, allow, require
from gateway.calls import call_as, derived_request_id
from gateway.clients import CallContext, DepartmentError, Refused
from gateway.departments import ACTIONS, FOLLOW_UPS
from gateway.departments.base import Rpc
from gateway.feedback import feedback_view
from gateway.problems import Problem
from gateway.regions import region_name
from gateway.saga.model import StepState as A
from gateway.store import Case, CaseStep, Feedback
from gateway.typedefs import clock_key, departments_key, sessions_key, settings_key

routes = web.RouteTableDef()
STEP_STATES = (A.PENDING, A.RUNNING, A.ACCEPTED, A.APPROVED, A.READY, A.DONE, A.REFUSED, A.NEEDS_ATTENTION)


@routes.get("/api/v1/backoffice/steps")
@allow("department")
async def department_steps(request: web.Request) -> web.Response:
    """My department's steps, by default those waiting for a decision (ACCEPTED), oldest first."""
    who = require(request)
    size, offset = page(request)
    state = request.query.get("state", A.ACCEPTED)
    if state not in STEP_STATES:
        raise invalid("state", "NOT_ALLOWED", ", ".join(STEP_STATES))
    async with request.app[sessions_key]() as session:
        rows = (
            await session.execute(
                select(CaseStep, Case.case_no, Case.matter, Case.submitted_on)
                .join(Case, Case.id == CaseStep.case_id)
                .where(CaseStep.department == who.department, CaseStep.state == state)
                .order_by(Case.created_at, Case.case_no, CaseStep.position)
                .offset(offset)
                .limit(size + 1)
            )
        ).all()
    items = [
        models.DepartmentStep(
            case_no=case_no,
            matter=matter,
            step=step.step_key,
            state=A(step.state),
            department_state=step.department_state,
            statutory_deadline=step.statutory_deadline.isoformat() if step.statutory_deadline else None,
            submitted_on=submitted.isoformat(),
            decisions=decisions_open(step),
        )
        for step, case_no, matter, submitted in rows[:size]
    ]
    return reply(models.DepartmentStepPage(steps=items, next_page_token=next_token(offset, size, len(rows))))


async def _department_step(request: web.Request, who: Principal) -> tuple[Case, CaseStep]:
    case, steps = await visible_case(request, who)
    key = request.match_info["step_key"]
    step = next((s for s in steps if s.step_key == key and s.department == who.department), None)
    if step is None:
        raise Problem(404, "not-found", "No such step of your department")
    return case, step


def decisions_open(step: CaseStep) -> list[str]:
    """The decisions my department may take on `step` now, by route word (what the back office offers)."""
    decision = ACTIONS[step.action].decision
    if decision is None or not step.resource_id:
        return []
    if step.state == A.ACCEPTED:
        return ["approve", "reject"]
    if step.state != A.APPROVED:
        return []
    return [word for word, f in decision.follow_ups.items() if step.department_state in f.after]


async def _send(
    request: web.Request,
    who: Principal,
    case: Case,
    step: CaseStep,
    word: str,
    rpc: Rpc[Any, Any],
    message: Any,
) -> Any:
    ctx = CallContext(
        request_id=message.request_id, case_no=case.case_no, timeout=request.app[settings_key].call_timeout
    )
    try:
        return await call_as(request.app[departments_key][step.department], rpc, message, ctx, who)
    except Refused as exc:
        if exc.reason == "ILLEGAL_TRANSITION":
            raise Problem(
                409, "nothing-to-decide", f"The department's record is not waiting for this decision ({word})"
            ) from None
        raise department_problem(exc) from None
    except DepartmentError as exc:
        raise department_problem(exc) from None


async def _decide(request: web.Request, approve: bool) -> web.Response:
    who = require(request)
    case, step = await _department_step(request, who)
    reasons: list[str] = []
    reason_codes: list[str] = []
    if not approve:
        body = await read_body(request, models.StepRejection)
        if body.reason_codes and len(body.reason_codes) != len(body.reasons):
            raise invalid("reason_codes", "COUNT_MISMATCH", "one code for each reason, in the same order")
        reasons = [r.strip() for r in body.reasons]
        reason_codes = [c.strip() for c in body.reason_codes]
    decision = ACTIONS[step.action].decision
    if decision is None or "approve" not in decisions_open(step):
        raise Problem(409, "nothing-to-decide", "This step is not waiting for a decision", state=step.state)
    purpose = "approve" if approve else "reject"
    request_id = derived_request_id(step.request_id, purpose)
    message: Any = (
        decision.approve(step.resource_id or "", request_id)
        if approve
        else decision.reject(step.resource_id or "", request_id, reasons, reason_codes)
    )
    rpc = decision.approve_rpc if approve else decision.reject_rpc
    answer = await _send(request, who, case, step, purpose, rpc, message)
    return reply(
        models.Decided(
            case_no=case.case_no,
            step=step.step_key,
            decision="approved" if approve else "rejected",
            department_state=decision.state_of(answer),
        ),
        202,
    )


@routes.post("/api/v1/backoffice/cases/{case_no}/steps/{step_key}/approve")
@allow("department")
async def approve_step(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


@routes.post("/api/v1/backoffice/cases/{case_no}/steps/{step_key}/reject")
@allow("department")
async def reject_step(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


def _follow_up_route(word: str) -> None:
    """One route per decision the adapters declare after an approval (``FOLLOW_UPS``): the card produced,
    ready for pickup, the permit issued. Open only while the step's department state allows it."""

    @routes.post(f"/api/v1/backoffice/cases/{{case_no}}/steps/{{step_key}}/{word}")
    @allow("department")
    async def follow_up(request: web.Request) -> web.Response:
        who = require(request)
        case, step = await _department_step(request, who)
        decision = ACTIONS[step.action].decision
        if decision is None or word not in decision.follow_ups:
            raise Problem(409, "not-this-steps-decision", f"This step takes no '{word}' decision")
        if word not in decisions_open(step):
            raise Problem(
                409,
                "nothing-to-decide",
                f"This step is not waiting for this decision ({word})",
                state=step.state,
                department_state=step.department_state,
            )
        chosen = decision.follow_ups[word]
        message = chosen.build(step.resource_id or "", derived_request_id(step.request_id, word))
        answer = await _send(request, who, case, step, word, chosen.rpc, message)
        return reply(
            models.Decided(
                case_no=case.case_no,
                step=step.step_key,
                decision=word,
                department_state=decision.state_of(answer),
            ),
            202,
        )


for _word in FOLLOW_UPS:
    _follow_up_route(_word)


async def _feedback_row(request: web.Request, who: Principal) -> tuple[Case, Feedback]:
    case, _ = await visible_case(request, who)
    async with request.app[sessions_key]() as session:
        row = await session.get(Feedback, case.id)
    if row is None:
        raise Problem(404, "not-found", "This case has not been rated")
    return case, row


@routes.get("/api/v1/cases/{case_no}/feedback")
@allow("citizen", "counter", "department", "admin")
async def get_feedback(request: web.Request) -> web.Response:
    case, row = await _feedback_row(request, require(request))
    return web.json_response({"case_no": case.case_no, **feedback_view(row)})


@routes.post("/api/v1/cases/{case_no}/feedback/replies")
@allow("counter", "department", "admin")
async def reply_feedback(request: web.Request) -> web.Response:
    """Staff answer a rating (the staff of the case's hall or of a department taking part, or an admin)."""
    who = require(request)
    case, _ = await _feedback_row(request, who)
    body = await read_body(request, models.Reply)
    async with request.app[sessions_key]() as session:
        row = await session.get_one(Feedback, case.id)
        entry = {
            "by": who.subject,
            "role": who.role,
            "text": body.text.strip(),
            "at": request.app[clock_key].now().isoformat(),
        }
        row.replies = [*(row.replies or []), entry]
        await session.commit()
    return web.json_response({"case_no": case.case_no, **feedback_view(row)}, status=201)


@routes.get("/api/v1/admin/feedback")
@allow("admin")
async def flagged_feedback(request: web.Request) -> web.Response:
    """Ratings to follow up (2 or less), newest first; ``flagged=false`` lists every rating."""
    size, offset = page(request)
    flagged = request.query.get("flagged", "true")
    if flagged not in ("true", "false"):
        raise invalid("flagged", "NOT_A_BOOLEAN", "true or false")
    stmt = select(Feedback, Case.case_no).join(Case, Case.id == Feedback.case_id)
    if flagged == "true":
        stmt = stmt.where(Feedback.flagged.is_(True))
    async with request.app[sessions_key]() as session:
        rows = (
            await session.execute(
                stmt.order_by(Feedback.created_at.desc(), Case.case_no).offset(offset).limit(size + 1)
            )
        ).all()
    items = [
        {
            "case_no": case_no,
            "matter": row.matter,
            "hall": row.hall,
            **(
                {"hall_name": region_name(row.hall, "en"), "hall_name_zh": region_name(row.hall, "zh")}
                if row.hall
                else {}
            ),
            **feedback_view(row),
        }
        for row, case_no in rows[:size]
    ]
    return web.json_response({"feedback": items, "next_page_token": next_token(offset, size, len(rows))})
