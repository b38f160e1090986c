"""The service hall's counter (受理窗口): open a case for the person at the window, the hall's queue,
in-person materials checked, pickup, and the receipt. Counter staff act only on cases of their own hall
(the token's ``hall``); another hall's case does not exist for them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import exists, select

from gateway import models, saga
from gateway.api.common import (
    department_problem,
    invalid,
    json_body,
    next_token,
    page,
    read_body,
    visible_case,
)
from gateway.auth import Principal, allow, require
from gateway.calls import call_as, derived_request_id
from gateway.cases import expected_date, load_case, materials_received
from gateway.catalogue import Matter
from gateway.clients import CallContext, DepartmentError
from gateway.departments import ACTIONS
from gateway.problems import Problem
from gateway.regions import region_name
from gateway.saga.model import StepState as A
from gateway.store import Case, CaseStep
from gateway.submission import Opening, submit
from gateway.typedefs import catalogue_key, clock_key, departments_key, runner_key, sessions_key, settings_key

routes = web.RouteTableDef()
CASE_STATES = (
    saga.RECEIVED,
    saga.IN_REVIEW,
    saga.AWAITING_APPLICANT,
    saga.APPROVED,
    saga.READY_FOR_PICKUP,
    saga.COMPLETED,
    saga.REJECTED,
    saga.WITHDRAWING,
    saga.WITHDRAWN,
    saga.NEEDS_ATTENTION,
)
DEPARTMENTS = ("identity", "residence", "permits")


def receipt(
    case: Case, steps: list[CaseStep], matter: Matter | None, *, query_code: str | None = None
) -> dict[str, Any]:
    """受理回执: case number, materials received, fees, the expected date (the latest statutory deadline)."""
    charged = [s.result.get("fee_fen") for s in steps if isinstance(s.result.get("fee_fen"), int)]
    titles = {spec.key: spec.title for spec in matter.steps} if matter else {}
    # what each department charges on this case, as it answered (fees fixed on approval appear then)
    fees = [
        {"item": titles.get(s.step_key, s.step_key), "amount_fen": s.result["fee_fen"]}
        for s in steps
        if isinstance(s.result.get("fee_fen"), int) and s.result["fee_fen"] > 0
    ]
    body: dict[str, Any] = {
        "case_no": case.case_no,
        "matter": case.matter,
        "matter_title_zh": matter.title_zh if matter else case.matter,
        "state": case.state,
        "hall": case.hall,
        "hall_name": region_name(case.hall, "en") if case.hall else None,
        "hall_name_zh": region_name(case.hall, "zh") if case.hall else None,
        "opened_by": case.opened_by,
        "submitted_on": case.submitted_on.isoformat(),
        "materials_received": materials_received(case, matter) if matter else [],
        "fees": fees,
        "fee_fen": sum(charged) if charged else None,
        "expected_date": expected_date(steps),
    }
    if query_code is not None:
        body["query_code"] = query_code  # only once, at creation
    return body


@routes.post("/api/v1/counter/cases")
@allow("counter")
async def open_at_counter(request: web.Request) -> web.Response:
    """Open a case for the person present: the same submission as online, recorded with who served them
    and the hall; answers the receipt with the query code (given only now)."""
    who = require(request)
    body = await json_body(request)
    response = await submit(request, body, Opening(who, hall=who.hall, opened_by=who.subject))
    if response.status != 201:
        return response
    created = json.loads(response.text or "{}")
    loaded = await load_case(request.app[sessions_key], created["case_no"])
    assert loaded is not None
    case, steps = loaded
    matter = request.app[catalogue_key].get(case.matter)
    return web.json_response(
        {**created, "receipt": receipt(case, steps, matter, query_code=created["query_code"])},
        status=201,
        headers={"Location": f"/api/v1/cases/{case.case_no}"},
    )


@routes.get("/api/v1/counter/queue")
@allow("counter")
async def queue(request: web.Request) -> web.Response:
    """The hall's cases, oldest first, optionally of one department's steps and in one state."""
    who = require(request)
    size, offset = page(request)
    department, state = request.query.get("department"), request.query.get("state")
    if department is not None and department not in DEPARTMENTS:
        raise invalid("department", "NOT_ALLOWED", ", ".join(DEPARTMENTS))
    if state is not None and state not in CASE_STATES:
        raise invalid("state", "NOT_ALLOWED", ", ".join(CASE_STATES))
    stmt = select(Case).where(Case.hall == who.hall)
    if state is not None:
        stmt = stmt.where(Case.state == state)
    if department is not None:
        stmt = stmt.where(
            exists().where(
                CaseStep.case_id == Case.id, CaseStep.department == department, CaseStep.state != A.SKIPPED
            )
        )
    async with request.app[sessions_key]() as session:
        cases = list(
            await session.scalars(stmt.order_by(Case.created_at, Case.case_no).offset(offset).limit(size + 1))
        )
    items = [
        {
            "case_no": c.case_no,
            "matter": c.matter,
            "state": c.state,
            "submitted_on": c.submitted_on.isoformat(),
            "opened_by": c.opened_by,
        }
        for c in cases[:size]
    ]
    return web.json_response({"cases": items, "next_page_token": next_token(offset, size, len(cases))})


@routes.post("/api/v1/counter/cases/{case_no}/materials-checked")
@allow("counter")
async def materials_checked(request: web.Request) -> web.Response:
    """Record the in-person materials (``upload = false`` in the matter) checked at the window."""
    who = require(request)
    case, steps = await visible_case(request, who)
    kinds = (await read_body(request, models.MaterialsChecked)).materials
    matter = request.app[catalogue_key].get(case.matter)
    in_person = {m.key for m in matter.materials if not m.upload} if matter else set()
    unknown = [k for k in kinds if k not in in_person]
    if unknown:
        raise invalid(f"materials.{unknown[0]}", "NOT_AN_IN_PERSON_MATERIAL", ", ".join(sorted(in_person)))
    today = request.app[clock_key].today().isoformat()
    async with request.app[sessions_key]() as session:
        fresh = await session.get_one(Case, case.id)
        checked = dict(fresh.checked_materials or {})
        for kind in kinds:
            checked.setdefault(kind, {"by": who.subject, "on": today})
        fresh.checked_materials = checked
        await session.commit()
        case = fresh
    return web.json_response(receipt(case, steps, matter))


@routes.get("/api/v1/counter/cases/{case_no}/receipt")
@allow("counter")
async def get_receipt(request: web.Request) -> web.Response:
    """The receipt again (without the query code, which is given only once)."""
    who = require(request)
    case, steps = await visible_case(request, who)
    return web.json_response(receipt(case, steps, request.app[catalogue_key].get(case.matter)))


@routes.post("/api/v1/counter/cases/{case_no}/pickup")
@allow("counter")
async def pickup(request: web.Request) -> web.Response:
    """Hand every certificate over: ID cards through identity's IssueCard (old card surrendered or not),
    permits recorded as handed over. The case completes once every step is done."""
    who = require(request)
    case, steps = await visible_case(request, who)
    surrendered = (await read_body(request, models.Pickup, required=False)).old_card_surrendered
    if case.state != saga.READY_FOR_PICKUP:
        raise Problem(
            409, "not-ready-for-pickup", "Not every certificate of this case is ready", state=case.state
        )
    ready = [s for s in steps if s.state == A.READY]
    results: dict[str, dict[str, Any]] = {}
    for step in ready:
        if ACTIONS[step.action].handover is not None:
            results[step.id] = await _issue_card(request, case, step, who, surrendered)
    app = request.app
    case = await app[runner_key].hand_over(case.id, {s.id for s in ready}, who.subject, results)
    loaded = await load_case(app[sessions_key], case.case_no)
    assert loaded is not None
    return web.json_response(receipt(*loaded, app[catalogue_key].get(case.matter)))


async def _issue_card(
    request: web.Request, case: Case, step: CaseStep, who: Principal, surrendered: bool
) -> dict[str, Any]:
    request_id = derived_request_id(step.request_id, f"issue:{surrendered}")
    ctx = CallContext(
        request_id=request_id, case_no=case.case_no, timeout=request.app[settings_key].call_timeout
    )
    action = ACTIONS[step.action]
    assert action.handover is not None and action.handover_rpc is not None
    try:
        reply = await call_as(
            request.app[departments_key][step.department],
            action.handover_rpc,
            action.handover(step.resource_id or "", request_id, surrendered),
            ctx,
            who,
        )
    except DepartmentError as exc:
        raise department_problem(exc) from None
    return {"card_number": reply.card.card_number} if reply.card.card_number else {}
