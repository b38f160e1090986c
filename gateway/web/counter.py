"""The counter (``/counter/``) and the back office (``/backoffice/``): the hall's queue, a case opened for
the person present, materials checked, the receipt, hand-over at pickup; a department's steps waiting for
its decision."""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from gateway.departments import FOLLOW_UPS
from gateway.typedefs import catalogue_key
from gateway.web.common import application_routes, area_routes, page_query
from gateway.web.i18n import translate
from gateway.web.pages import call, fail, language, page, problem_text, redirect, render
from gateway.web.session import Session

CASE_STATES = (
    "RECEIVED",
    "IN_REVIEW",
    "AWAITING_APPLICANT",
    "APPROVED",
    "READY_FOR_PICKUP",
    "COMPLETED",
    "REJECTED",
    "WITHDRAWING",
    "WITHDRAWN",
    "NEEDS_ATTENTION",
)


def _q(case_no: str) -> str:
    return urllib.parse.quote(case_no)


@page("counter")
async def queue(request: web.Request, session: Session) -> web.StreamResponse:
    state = request.query.get("state", "")
    params = page_query(request, 30, **({"state": state} if state in CASE_STATES else {}))
    answer = await call(request, "GET", "/api/v1/counter/queue", params=params)
    if not answer.ok:
        return fail(request, answer)
    return render(
        request,
        "counter/queue.html",
        cases=answer.body.get("cases", []),
        next_token=answer.body.get("next_page_token", ""),
        state=state,
        states=CASE_STATES,
        matters=[m.public() for m in request.app[catalogue_key].values()],
    )


async def _counter_case(
    request: web.Request, *, errors: dict[str, list[str]] | None = None, notice: str = ""
) -> web.Response:
    case_no = request.match_info["case_no"]
    case = await call(request, "GET", f"/api/v1/cases/{_q(case_no)}")
    if not case.ok:
        return fail(request, case)
    receipt = await call(request, "GET", f"/api/v1/counter/cases/{_q(case_no)}/receipt")
    matter = request.app[catalogue_key].get(case.body["matter"])
    in_person = [m for m in matter.materials if not m.upload] if matter else []
    received = {m["key"] for m in (receipt.body.get("materials_received", []) if receipt.ok else [])}
    return render(
        request,
        "counter/case.html",
        status=400 if errors else 200,
        case=case.body,
        receipt=receipt.body if receipt.ok else None,
        in_person=in_person,
        received=received,
        errors=errors or {},
        notice=notice or request.query.get("notice", ""),
    )


@page("counter")
async def counter_case(request: web.Request, session: Session) -> web.StreamResponse:
    return await _counter_case(request)


@page("counter")
async def counter_receipt(request: web.Request, session: Session) -> web.StreamResponse:
    case_no = request.match_info["case_no"]
    case = await call(request, "GET", f"/api/v1/cases/{_q(case_no)}")
    if not case.ok:
        return fail(request, case)
    receipt = await call(request, "GET", f"/api/v1/counter/cases/{_q(case_no)}/receipt")
    if not receipt.ok:
        return fail(request, receipt)
    code = session.receipt.get("query_code") if session.receipt.get("case_no") == case_no else None
    return render(request, "receipt.html", case=case.body, receipt=receipt.body, query_code=code)


@page("counter")
async def materials_checked(request: web.Request, session: Session) -> web.StreamResponse:
    case_no = request.match_info["case_no"]
    form = await request.post()
    kinds = [str(k) for k in form.getall("materials", [])]
    if not kinds:
        return await _counter_case(request, errors={"materials": [translate(language(request), "required")]})
    answer = await call(
        request,
        "POST",
        f"/api/v1/counter/cases/{_q(case_no)}/materials-checked",
        json_body={"materials": kinds},
    )
    if not answer.ok:
        return await _counter_case(request, errors={"materials": [problem_text(answer)]})
    return redirect(f"/counter/cases/{_q(case_no)}?notice=checked")


@page("counter")
async def pickup(request: web.Request, session: Session) -> web.StreamResponse:
    case_no = request.match_info["case_no"]
    form = await request.post()
    answer = await call(
        request,
        "POST",
        f"/api/v1/counter/cases/{_q(case_no)}/pickup",
        json_body={"old_card_surrendered": form.get("old_card_surrendered") == "true"},
    )
    if not answer.ok:
        return await _counter_case(request, errors={"pickup": [problem_text(answer)]})
    return redirect(f"/counter/cases/{_q(case_no)}?notice=handed_over")


# -- back office -----------------------------------------------------------------------------------------

# the decisions the API's step list may offer (the buttons come from each step's ``decisions``)
DECISION_WORDS = ("approve", "reject", *FOLLOW_UPS)
STEP_STATES = ("ACCEPTED", "PENDING", "RUNNING", "APPROVED", "READY", "DONE", "REFUSED", "NEEDS_ATTENTION")


async def _steps_page(
    request: web.Request, *, errors: dict[str, list[str]] | None = None, notice: str = ""
) -> web.Response:
    state = request.query.get("state", "ACCEPTED")
    params = page_query(request, 30, state=state if state in STEP_STATES else "ACCEPTED")
    answer = await call(request, "GET", "/api/v1/backoffice/steps", params=params)
    if not answer.ok:
        return fail(request, answer)
    return render(
        request,
        "backoffice/steps.html",
        status=400 if errors else 200,
        steps=answer.body.get("steps", []),
        next_token=answer.body.get("next_page_token", ""),
        state=params["state"],
        states=STEP_STATES,
        errors=errors or {},
        notice=notice,
    )


@page("backoffice")
async def steps(request: web.Request, session: Session) -> web.StreamResponse:
    notice = ""
    if request.query.get("done") in DECISION_WORDS:
        lang = language(request)
        q = request.query
        notice = translate(
            lang,
            "decided",
            case=q.get("case", ""),
            step=q.get("step", ""),
            decision=translate(lang, q["done"]),
        )
    return await _steps_page(request, notice=notice)


@page("backoffice")
async def decide(request: web.Request, session: Session) -> web.StreamResponse:
    case_no, step = request.match_info["case_no"], request.match_info["step_key"]
    decision = request.match_info["decision"]
    form = await request.post()
    body = None
    where = f"{case_no}/{step}"
    if decision == "reject":
        reasons = [line.strip() for line in str(form.get("reasons", "")).splitlines() if line.strip()]
        if not reasons:
            return await _steps_page(request, errors={where: [translate(language(request), "required")]})
        body = {"reasons": reasons}
    answer = await call(
        request,
        "POST",
        f"/api/v1/backoffice/cases/{_q(case_no)}/steps/{urllib.parse.quote(step)}/{decision}",
        json_body=body,
    )
    if not answer.ok:
        return await _steps_page(request, errors={where: [problem_text(answer)]})
    done = {"done": decision, "case": case_no, "step": step}
    return redirect("/backoffice/?" + urllib.parse.urlencode(done))


@page("backoffice")
async def backoffice_case(request: web.Request, session: Session) -> web.StreamResponse:
    case = await call(request, "GET", f"/api/v1/cases/{_q(request.match_info['case_no'])}")
    if not case.ok:
        return fail(request, case)
    return render(request, "backoffice/case.html", case=case.body)


routes = [
    *area_routes("counter"),
    web.get("/counter/", queue),
    *application_routes("counter", "open", "/api/v1/counter/cases"),
    web.get("/counter/cases/{case_no}", counter_case),
    web.get("/counter/cases/{case_no}/receipt", counter_receipt),
    web.post("/counter/cases/{case_no}/materials-checked", materials_checked),
    web.post("/counter/cases/{case_no}/pickup", pickup),
    *area_routes("backoffice"),
    web.get("/backoffice/", steps),
    web.get("/backoffice/cases/{case_no}", backoffice_case),
    web.post(
        "/backoffice/cases/{case_no}/steps/{step_key}/{decision:" + "|".join(DECISION_WORDS) + "}", decide
    ),
]
