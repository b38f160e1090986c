"""Routes anyone may call: health, metrics, the OpenAPI document, the matter catalogue, statistics, and
progress for whoever holds a case number and its query code (no personal data, rate-limited per client
address). Also the two routes shared by citizens and the counter: uploading materials and submitting."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from gateway import saga
from gateway.api.common import can_see, json_body, read_body, reply, visible_case
from gateway.auth import allow, principal, public, require
from gateway.cache import reads_key, views_key
from gateway.cases import case_view, code_matches, drive_for, load_case, public_progress
from gateway.materials import SIGNATURES, MaterialTooLarge, MaterialTypeNotAllowed
from gateway.models import Blocker, Health, Withdrawal
from gateway.models import Material as MaterialBody
from gateway.problems import Problem
from gateway.quotes import public_matter
from gateway.ratelimit import CodeGuard, Locked, client_address, retry_after
from gateway.saga.model import StepState
from gateway.store import Case, CaseStep, Material
from gateway.submission import Opening, submit
from gateway.typedefs import (
    catalogue_key,
    clock_key,
    consumers_key,
    health_key,
    material_files_key,
    metrics_key,
    progress_limiter_key,
    quotes_key,
    runner_key,
    sessions_key,
    settings_key,
    stats_key,
)
from services.common.errors import FieldViolation

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return reply(Health(status="ok"))


@routes.get("/readyz")
@public
async def readyz(request: web.Request) -> web.Response:
    """Ready: the gateway itself can serve — its database answers and its event consumers run. A
    department being down is not the gateway's unreadiness (its matters wait; see /api/v1/status)."""
    app = request.app
    timeout = app[settings_key].call_timeout
    try:
        async with asyncio.timeout(timeout), app[sessions_key]() as session:
            await session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unavailable"
    consumers = {
        c.department.name: "stopped" if c.task is not None and c.task.done() else c.state
        for c in app[consumers_key]
    }
    ready = database == "ok" and "stopped" not in consumers.values()
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "database": database, "event_consumers": consumers},
        status=200 if ready else 503,
    )


@routes.get("/api/v1/status")
@allow("counter", "department", "admin")
async def status(request: web.Request) -> web.Response:
    """For staff: each department's last health check and its event stream, and the steps waiting on it."""
    app = request.app
    consumers = {c.department.name: c for c in app[consumers_key]}
    async with app[sessions_key]() as session:
        rows = await session.execute(
            select(CaseStep.department, func.count())
            .where(CaseStep.state == StepState.NEEDS_ATTENTION)
            .group_by(CaseStep.department)
        )
        attention = {department: count for department, count in rows.all()}
    departments = {}
    for name, health in app[health_key].status.items():
        consumer = consumers.get(name)
        departments[name] = {
            **health,
            "events": consumer.state if consumer is not None else "not consumed",
            **(
                {"last_event_at": consumer.last_seen.isoformat()}
                if consumer is not None and consumer.last_seen
                else {}
            ),
            "steps_needing_attention": attention.get(name, 0),
        }
    return web.json_response({"departments": departments})


@routes.get("/metrics")
@public
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: requests, latencies, cases and steps by state, saga retries."""
    collected = request.app[metrics_key]
    await collected.refresh(request.app[sessions_key])
    return collected.render()


@routes.get("/api/v1/openapi.json")
@public
async def openapi(request: web.Request) -> web.Response:
    from gateway.openapi import document

    return web.json_response(document(request.app))


@routes.get("/api/v1/matters")
@public
async def list_matters(request: web.Request) -> web.Response:
    catalogue, quotes = request.app[catalogue_key], request.app[quotes_key]
    today = request.app[clock_key].today()
    return web.json_response({"matters": [await public_matter(quotes, m, today) for m in catalogue.values()]})


@routes.get("/api/v1/matters/{matter_id}")
@public
async def get_matter(request: web.Request) -> web.Response:
    matter = request.app[catalogue_key].get(request.match_info["matter_id"])
    if matter is None:
        raise Problem(404, "not-found", "No such matter")
    today = request.app[clock_key].today()
    return web.json_response(await public_matter(request.app[quotes_key], matter, today))


@routes.get("/api/v1/stats")
@public
async def stats(request: web.Request) -> web.Response:
    """Cases by matter and state, on-time rate, average working days, satisfaction (own tables only)."""
    return web.json_response(await request.app[stats_key].get())


async def _limit(request: web.Request) -> None:
    """The per-address limit of lookups by query code (shared by every replica), before anything else."""
    guard: CodeGuard = request.app[progress_limiter_key]
    wait = await guard.admit(client_address(request))
    if wait > 0:
        raise Problem(
            429,
            "too-many-requests",
            "Too many progress lookups from this address",
            headers={"Retry-After": retry_after(wait)},
        )


async def _by_code(request: web.Request, code: Any) -> tuple[Case, list[CaseStep]]:
    """The case named in the path if `code` is its query code. A case number given MAX_WRONG_CODES
    wrong codes in a row is locked for a while, whatever code comes next (429 with Retry-After)."""
    case_no = request.match_info["case_no"][:32]
    guard: CodeGuard = request.app[progress_limiter_key]
    wrong_before = await _unlocked(guard, case_no)
    loaded = await load_case(request.app[sessions_key], case_no)
    given = code.strip().upper() if isinstance(code, str) else ""
    if loaded is None or not given or not code_matches(loaded[0], given):
        if loaded is not None:
            await guard.failed(case_no)
        raise Problem(404, "not-found", "No case with this number and query code")
    if wrong_before:
        await guard.succeeded(case_no)
    return loaded


async def _unlocked(guard: CodeGuard, case_no: str) -> bool:
    """429 while the case number is locked; otherwise whether wrong codes are on record for it."""
    try:
        return await guard.check(case_no)
    except Locked as locked:
        raise _locked(locked) from None


def _locked(locked: Locked) -> Problem:
    return Problem(
        429,
        "case-locked",
        "Too many wrong query codes for this case number; try again later",
        headers={"Retry-After": retry_after(locked.wait)},
    )


@routes.get("/api/v1/progress/{case_no}")
@public
async def progress(request: web.Request) -> web.Response:
    """Public progress for whoever holds the case number and its query code: no personal data."""
    await _limit(request)
    app, case_no = request.app, request.match_info["case_no"][:32]
    code = request.query.get("code", "").strip().upper()
    if not code:  # said before any lookup, so it tells nothing of whether the number exists
        raise Problem(
            400,
            "invalid-request",
            "The query code is required",
            errors=[FieldViolation("code", "REQUIRED", "the query code given with the case number")],
        )
    try:
        found = await public_progress(
            app[reads_key], app[views_key], case_no, code, app[catalogue_key], app[clock_key]
        )
    except Locked as locked:
        raise _locked(locked) from None
    guard = app[progress_limiter_key]
    if found.body is None:
        if found.exists:  # a wrong code, counted
            await guard.failed(case_no)
        raise Problem(404, "not-found", "No case with this number and query code")
    if found.wrong_before:
        await guard.succeeded(case_no)
    return web.Response(body=found.body, content_type="application/json", charset="utf-8")


@routes.get("/api/v1/cases/{case_no}")
@public
async def get_case(request: web.Request) -> web.Response:
    """With the query code: the public status. With a bearer token of someone who may see the case (its
    applicant, the staff of its hall or of a department taking part, an admin): the details."""
    who = principal(request)
    app = request.app
    if who is not None and "code" not in request.query:
        case, steps = await visible_case(request, who)
        view = case_view(case, steps, app[catalogue_key], app[clock_key], personal=True)
        if who.role != "citizen":
            view["opened_by"] = case.opened_by
        return web.json_response(view)
    await _limit(request)
    case, steps = await _by_code(request, request.query.get("code", ""))
    return web.json_response(case_view(case, steps, app[catalogue_key], app[clock_key], personal=False))


@routes.post("/api/v1/cases")
@allow("citizen")
async def create_case(request: web.Request) -> web.Response:
    """A citizen applies online, for themselves: validated whole, stored, then run across the departments."""
    body = await json_body(request)
    return await submit(request, body, Opening(require(request)))


@routes.post("/api/v1/cases/{case_no}/withdraw")
@public
async def withdraw_case(request: web.Request) -> web.Response:
    """The applicant withdraws — with a bearer token as the applicant, or with the query code. Steps not
    yet sent are cancelled; the departments' records are cancelled in reverse order (compensation)."""
    who = principal(request)
    as_applicant = who is not None and who.role == "citizen"
    if not as_applicant:
        await _limit(request)  # before the body is read: a flood of bodies costs the caller its lookups
    body = await read_body(request, Withdrawal, required=not as_applicant)
    app = request.app
    if as_applicant and body.code is None:
        loaded = await load_case(app[sessions_key], request.match_info["case_no"])
        if loaded is None or not can_see(who, *loaded):
            raise Problem(404, "not-found", "No such case")
    else:
        if as_applicant:
            await _limit(request)
        loaded = await _by_code(request, body.code)
    case, _ = loaded
    if case.state in saga.CASE_FINAL:
        raise Problem(409, "case-closed", f"The case is already {case.state.lower()}", state=case.state)
    runner = app[runner_key]
    blockers = await runner.withdraw(case.id)
    if blockers:
        raise Problem(
            409,
            "withdrawal-refused",
            "The application can no longer be withdrawn",
            "; ".join(f"{b.step_key}: {saga.BLOCKER_REASONS[b.reason]}" for b in blockers),
            state=case.state,
            steps=msgspec.to_builtins(
                [
                    Blocker(
                        key=b.step_key,
                        reason=b.reason,
                        state=b.state,
                        department_state=b.department_state,
                        detail=saga.BLOCKER_REASONS[b.reason],
                    )
                    for b in blockers
                ]
            ),
        )
    await drive_for(runner, case.id, app[settings_key].submit_wait)
    case, steps = await load_case(app[sessions_key], case.case_no) or loaded
    view = case_view(case, steps, app[catalogue_key], app[clock_key], personal=False)
    return web.json_response(view, status=202 if case.state != saga.WITHDRAWN else 200)


@routes.post("/api/v1/materials")
@allow("citizen", "counter")
async def upload_material(request: web.Request) -> web.Response:
    """Upload one document (multipart/form-data, field ``file``). The same content is stored once."""
    if not request.content_type.startswith("multipart/"):
        raise Problem(415, "unsupported-media-type", "Upload the document as multipart/form-data")
    files = request.app[material_files_key]
    try:
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
            part = await reader.next()
    except (ValueError, AssertionError, HttpProcessingError):
        raise Problem(400, "invalid-upload", "The multipart body is malformed") from None
    if part is None:
        raise Problem(
            400,
            "invalid-upload",
            "No file",
            errors=[FieldViolation("file", "REQUIRED", "send the document as 'file'")],
        )
    try:
        stored = await files.save(part)
    except (ValueError, HttpProcessingError):
        raise Problem(400, "invalid-upload", "The multipart body is malformed") from None
    except MaterialTooLarge:
        raise Problem(
            413, "payload-too-large", f"A document may be at most {files.max_bytes} bytes"
        ) from None
    except MaterialTypeNotAllowed:
        raise Problem(
            415,
            "unsupported-media-type",
            "Only these document types are accepted: " + ", ".join(SIGNATURES),
            errors=[FieldViolation("file", "TYPE_NOT_ALLOWED", "PDF, JPEG or PNG")],
        ) from None
    created = True
    async with request.app[sessions_key]() as session:
        if await session.get(Material, stored.sha256) is None:
            session.add(
                Material(
                    sha256=stored.sha256,
                    media_type=stored.media_type,
                    size_bytes=stored.size_bytes,
                    created_at=request.app[clock_key].now(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                created = False
        else:
            created = False
    body = MaterialBody(sha256=stored.sha256, media_type=stored.media_type, size_bytes=stored.size_bytes)
    return reply(body, 201 if created else 200)
