"""The online affairs hall (``/hall/``): the catalogue, applying, my cases, my card, my access log, and
public progress by case number and query code."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from aiohttp import web

from gateway.quotes import public_matter
from gateway.typedefs import catalogue_key, clock_key, quotes_key
from gateway.web.common import application_routes, area_routes, matter_or_404, page_query
from gateway.web.i18n import translate
from gateway.web.pages import call, error_page, fail, language, page, problem_text, redirect, render
from gateway.web.session import Session

AREA = "hall"
FINAL = ("COMPLETED", "REJECTED", "WITHDRAWN")


@page(AREA, signed_in=False)
async def index(request: web.Request, session: Session) -> web.StreamResponse:
    quotes, today = request.app[quotes_key], request.app[clock_key].today()
    matters = [await public_matter(quotes, m, today) for m in request.app[catalogue_key].values()]
    return render(
        request, "hall/index.html", matters=matters, glance={m["id"]: _glance(request, m) for m in matters}
    )


def _glance(request: web.Request, matter: dict[str, Any]) -> dict[str, list[Any]]:
    """A matter at a glance for its card in the catalogue: its distinct time limits in words and its
    distinct fees (the details page names what each is for)."""
    lang = language(request)
    limits: list[str] = []
    for limit in matter.get("time_limits") or []:
        text = f"{limit['days']} {translate(lang, 'working_days' if limit.get('working_days') else 'days')}"
        if text not in limits:
            limits.append(text)
    fees = sorted({int(f["amount_fen"]) for f in matter.get("fees") or []})
    if fees == [0]:
        fees = []  # free of charge
    return {"limits": limits, "fees": fees}


@page(AREA, signed_in=False)
async def matter_page(request: web.Request, session: Session) -> web.StreamResponse:
    matter = matter_or_404(request)
    quoted = await public_matter(request.app[quotes_key], matter, request.app[clock_key].today())
    return render(request, "hall/matter.html", matter=quoted)


@page(AREA)
async def my_cases(request: web.Request, session: Session) -> web.StreamResponse:
    cases = await call(request, "GET", "/api/v1/me/cases", params=page_query(request, 20))
    if not cases.ok:
        return fail(request, cases)
    notes = await call(request, "GET", "/api/v1/me/notifications", params={"page_size": "10"})
    return render(
        request,
        "hall/cases.html",
        cases=cases.body.get("cases", []),
        next_token=cases.body.get("next_page_token", ""),
        notifications=notes.body.get("notifications", []) if notes.ok else [],
    )


async def _case(request: web.Request) -> tuple[str, dict[str, Any] | None, web.Response | None]:
    case_no = request.match_info["case_no"]
    answer = await call(request, "GET", f"/api/v1/cases/{urllib.parse.quote(case_no)}")
    if not answer.ok:
        return case_no, None, fail(request, answer)
    return case_no, answer.body, None


@page(AREA)
async def case_page(request: web.Request, session: Session) -> web.StreamResponse:
    return await _case_page(request, notice=request.query.get("notice", ""))


async def _case_page(
    request: web.Request, *, notice: str = "", errors: dict[str, list[str]] | None = None
) -> web.Response:
    """The case with its steps and results; the rating once completed; `errors` from a form on it."""
    case_no, case, failed = await _case(request)
    if failed is not None:
        return failed
    assert case is not None
    feedback = None
    if case["state"] == "COMPLETED":
        rated = await call(request, "GET", f"/api/v1/cases/{urllib.parse.quote(case_no)}/feedback")
        feedback = rated.body if rated.ok else None
    return render(
        request,
        "hall/case.html",
        status=400 if errors else 200,
        case=case,
        feedback=feedback,
        can_withdraw=case["state"] not in (*FINAL, "WITHDRAWING"),
        notice=notice,
        errors=errors or {},
    )


@page(AREA)
async def receipt_page(request: web.Request, session: Session) -> web.StreamResponse:
    case_no, case, failed = await _case(request)
    if failed is not None:
        return failed
    code = session.receipt.get("query_code") if session.receipt.get("case_no") == case_no else None
    return render(request, "receipt.html", case=case, query_code=code, receipt=None)


@page(AREA)
async def withdraw(request: web.Request, session: Session) -> web.StreamResponse:
    case_no = request.match_info["case_no"]
    form = await request.post()
    if form.get("confirm") != "yes":
        return await _case_page(request, errors={"confirm": [translate(language(request), "required")]})
    answer = await call(request, "POST", f"/api/v1/cases/{urllib.parse.quote(case_no)}/withdraw")
    if not answer.ok:
        return await _case_page(request, errors={"withdraw": [problem_text(answer)]})
    # 200: withdrawn; 202: the departments are still undoing their steps (the case page says which)
    notice = "withdrawn" if answer.status == 200 else "withdrawing"
    return redirect(f"/hall/cases/{urllib.parse.quote(case_no)}?notice={notice}")


@page(AREA)
async def rate(request: web.Request, session: Session) -> web.StreamResponse:
    case_no = request.match_info["case_no"]
    form = await request.post()
    raw = str(form.get("rating", ""))
    if raw not in ("1", "2", "3", "4", "5"):
        return await _case_page(request, errors={"rating": ["1–5"]})
    answer = await call(
        request,
        "POST",
        f"/api/v1/cases/{urllib.parse.quote(case_no)}/feedback",
        json_body={"rating": int(raw), "comment": str(form.get("comment", ""))[:500]},
    )
    if not answer.ok:
        errors = answer.field_errors(language(request))
        field = next(iter(errors), "rating")
        return await _case_page(request, errors={field: [problem_text(answer)]})
    return redirect(f"/hall/cases/{urllib.parse.quote(case_no)}?notice=rated")


@page(AREA)
async def card(request: web.Request, session: Session) -> web.StreamResponse:
    return await _card_page(request)


async def _card_page(
    request: web.Request,
    *,
    errors: dict[str, list[str]] | None = None,
    reported: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    current = await call(request, "GET", "/api/v1/me/card")
    found = await call(request, "GET", "/api/v1/me/found-cards", params={"page_size": "20"})
    return render(
        request,
        "hall/card.html",
        status=400 if errors else 200,
        card=current.body if current.ok else None,
        card_problem="" if current.ok else problem_text(current),
        found=found.body.get("found_cards", []) if found.ok else [],
        found_problem="" if found.ok else problem_text(found),
        errors=errors or {},
        reported=reported,
        values=values or {},
        request_id=str(uuid.uuid4()),  # the report is safe to send twice
    )


@page(AREA)
async def report_lost(request: web.Request, session: Session) -> web.StreamResponse:
    form = await request.post()
    values = {
        "name": str(form.get("name", "")),
        "station_region_code": str(form.get("station_region_code", "")),
    }
    answer = await call(
        request,
        "POST",
        "/api/v1/me/card/report-lost",
        json_body={**values, "request_id": str(form.get("request_id", "")) or None},
    )
    if answer.ok:
        return await _card_page(request, reported=answer.body)
    errors = answer.field_errors(language(request)) or {"": [problem_text(answer)]}
    return await _card_page(request, errors=errors, values=values)


@page(AREA)
async def access_log(request: web.Request, session: Session) -> web.StreamResponse:
    answer = await call(request, "GET", "/api/v1/me/access-log", params={"page_size": "50"})
    if not answer.ok:
        return fail(request, answer)
    return render(request, "hall/access_log.html", entries=answer.body.get("entries", []))


@page(AREA, signed_in=False)
async def progress(request: web.Request, session: Session) -> web.StreamResponse:
    """Public progress: the case number and query code are posted (never put in an address)."""
    if request.method == "GET":
        return render(request, "hall/progress.html", case=None, values={}, errors={})
    form = await request.post()
    case_no = str(form.get("case_no", "")).strip().upper()
    code = str(form.get("code", "")).strip()
    values = {"case_no": case_no}
    errors: dict[str, list[str]] = {}
    lang = language(request)
    if not case_no:
        errors["case_no"] = [translate(lang, "required")]
    if not code:
        errors["code"] = [translate(lang, "required")]
    if errors:
        return render(request, "hall/progress.html", status=400, case=None, values=values, errors=errors)
    answer = await call(
        request, "GET", f"/api/v1/progress/{urllib.parse.quote(case_no)}", params={"code": code}
    )
    if answer.status == 404:
        errors["code"] = [translate(lang, "no_such_case")]
        return render(request, "hall/progress.html", status=404, case=None, values=values, errors=errors)
    if answer.status == 429:
        return error_page(request, 429, problem_text(answer))
    if not answer.ok:
        return fail(request, answer)
    return render(request, "hall/progress.html", case=answer.body, values=values, errors={})


routes = [
    *area_routes(AREA),
    web.get("/hall/", index),
    web.get("/hall/matters/{matter_id}", matter_page),
    *application_routes(AREA, "apply", "/api/v1/cases"),
    web.get("/hall/cases", my_cases),
    web.get("/hall/cases/{case_no}", case_page),
    web.get("/hall/cases/{case_no}/receipt", receipt_page),
    web.post("/hall/cases/{case_no}/withdraw", withdraw),
    web.post("/hall/cases/{case_no}/feedback", rate),
    web.get("/hall/card", card),
    web.post("/hall/card/report-lost", report_lost),
    web.get("/hall/access-log", access_log),
    web.get("/hall/progress", progress),
    web.post("/hall/progress", progress),
]
