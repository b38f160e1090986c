"""HTTP routes of the one window."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from typing import Any

from aiohttp import BodyPartReader, web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway import saga
from gateway.cases import case_view, code_matches, drive_for, load_case, open_case
from gateway.catalogue import validate_materials, validate_submission
from gateway.materials import SIGNATURES, MaterialTooLarge, MaterialTypeNotAllowed
from gateway.problems import Problem
from gateway.store import IdempotencyKey, Material
from gateway.typedefs import (
    catalogue_key,
    clock_key,
    departments_key,
    material_files_key,
    runner_key,
    sessions_key,
    settings_key,
)
from services.common.errors import FieldViolation, InvalidArgument

routes = web.RouteTableDef()

MAX_KEY_LENGTH = 128
MAX_JSON_BYTES = 256 * 1024
KEY_TTL = dt.timedelta(hours=24)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: every department answers its health check."""
    departments = request.app[departments_key]
    timeout = request.app[settings_key].call_timeout
    checks = await asyncio.gather(*(getattr(d, "ready", _always)(timeout) for d in departments.values()))
    status = {name: "ok" if ok else "unavailable" for name, ok in zip(departments, checks, strict=True)}
    ready = all(checks)
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "departments": status}, status=200 if ready else 503
    )


async def _always(_timeout: float) -> bool:
    return True


@routes.get("/api/v1/matters")
async def list_matters(request: web.Request) -> web.Response:
    catalogue = request.app[catalogue_key]
    return web.json_response({"matters": [m.public() for m in catalogue.values()]})


@routes.get("/api/v1/matters/{matter_id}")
async def get_matter(request: web.Request) -> web.Response:
    matter = request.app[catalogue_key].get(request.match_info["matter_id"])
    if matter is None:
        raise Problem(404, "not-found", "No such matter")
    return web.json_response(matter.public())


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Send the application as application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise Problem(413, "payload-too-large", f"A JSON body may be at most {MAX_JSON_BYTES} bytes")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Problem(400, "malformed-json", "The body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "malformed-json", "The body must be a JSON object")
    return body


def _invalid(exc: InvalidArgument) -> Problem:
    return Problem(
        400,
        "invalid-submission",
        "The application has invalid or missing fields",
        errors=list(exc.violations),
    )


@routes.post("/api/v1/cases")
async def create_case(request: web.Request) -> web.Response:
    """One application for one matter: validated whole, stored, then run across the departments."""
    app = request.app
    body = await _json_body(request)
    matter_id = body.get("matter")
    catalogue = app[catalogue_key]
    if not isinstance(matter_id, str) or matter_id not in catalogue:
        raise Problem(
            400,
            "invalid-submission",
            "Unknown matter",
            errors=[FieldViolation("matter", "UNKNOWN_MATTER", f"one of: {', '.join(sorted(catalogue))}")],
        )
    matter = catalogue[matter_id]
    violations: list[FieldViolation] = []
    data: dict[str, Any] = {}
    try:
        data = validate_submission(matter, body.get("data"), app[clock_key].today())
    except InvalidArgument as exc:
        violations.extend(exc.violations)
    chosen, problems = validate_materials(matter, body.get("materials"))
    violations.extend(problems)
    materials = await _uploaded(request, chosen, violations)
    if violations:
        raise _invalid(InvalidArgument(violations))

    key = request.headers.get("Idempotency-Key", "").strip()
    if key:
        if len(key) > MAX_KEY_LENGTH:
            raise Problem(400, "invalid-idempotency-key", f"Idempotency-Key is longer than {MAX_KEY_LENGTH}")
        replay = await _claim_key(request, key, body)
        if replay is not None:
            return replay
    try:
        status, payload = await _submit(request, matter, data, materials)
    except BaseException:
        if key:
            await _release_key(request, key)
        raise
    if key:
        await _finish_key(request, key, status, payload)
    return _answer(status, payload)


def _answer(status: int, payload: dict[str, Any]) -> web.Response:
    if status >= 400:
        from gateway.problems import problem_response

        return problem_response(status, payload)
    return web.json_response(
        payload, status=status, headers={"Location": f"/api/v1/cases/{payload['case_no']}"}
    )


async def _uploaded(
    request: web.Request, chosen: dict[str, str], violations: list[FieldViolation]
) -> dict[str, dict[str, Any]]:
    """The references of the chosen materials; a sha256 nobody uploaded is a violation."""
    if not chosen:
        return {}
    async with request.app[sessions_key]() as session:
        rows = {
            m.sha256: m
            for m in await session.scalars(select(Material).where(Material.sha256.in_(set(chosen.values()))))
        }
    references = {}
    for kind, sha in chosen.items():
        row = rows.get(sha)
        if row is None:
            violations.append(FieldViolation(f"materials.{kind}", "NOT_UPLOADED", "upload it first"))
            continue
        references[kind] = {
            "kind": kind,
            "sha256": sha,
            "media_type": row.media_type,
            "size_bytes": row.size_bytes,
        }
    return references


async def _submit(
    request: web.Request, matter: Any, data: dict[str, Any], materials: dict[str, dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    app = request.app
    sessions, clock, runner = app[sessions_key], app[clock_key], app[runner_key]
    case, code = await open_case(sessions, clock, matter, data, materials)
    await drive_for(runner, case.id, app[settings_key].submit_wait)
    loaded = await load_case(sessions, case.case_no)
    assert loaded is not None
    case, steps = loaded
    view = case_view(case, steps, app[catalogue_key], clock, personal=False)
    if case.state == saga.REJECTED:
        refused = next((s for s in steps if s.reason), None)
        violations = (refused.result.get("violations") if refused else None) or []
        if violations:
            return 400, {
                "type": "/problems/invalid-submission",
                "title": "A department found invalid fields",
                "status": 400,
                "errors": [
                    {"field": f"{refused.step_key}.{v['field']}", "reason": v["reason"]} for v in violations
                ],
                "case_no": case.case_no,
            }
        return 422, {
            "type": "/problems/refused",
            "title": "The application was refused",
            "status": 422,
            "detail": refused.message if refused else "",
            "reason": case.outcome.get("reason", "REFUSED"),
            "step": refused.step_key if refused else None,
            "case_no": case.case_no,
            "instance": request.path,
        }
    return 201, {**view, "query_code": code}


def _body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def _claim_key(request: web.Request, key: str, body: dict[str, Any]) -> web.Response | None:
    """Claim an Idempotency-Key: None when this request may proceed, else the answer to give."""
    sessions, clock = request.app[sessions_key], request.app[clock_key]
    digest = _body_hash(body)
    now = clock.now()
    async with sessions() as session:
        session.add(
            IdempotencyKey(key=key, body_hash=digest, state="RUNNING", status=0, response={}, created_at=now)
        )
        try:
            await session.commit()
            return None
        except IntegrityError:
            await session.rollback()
        existing = await session.get(IdempotencyKey, key)
        if existing is None:  # released in between
            raise Problem(409, "idempotency-conflict", "Retry the request", headers={"Retry-After": "1"})
        if existing.created_at < now - KEY_TTL:
            await session.delete(existing)
            await session.commit()
            return await _claim_key(request, key, body)
    if existing.body_hash != digest:
        raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used with a different body")
    if existing.state == "RUNNING":
        raise Problem(
            409,
            "idempotency-conflict",
            "A request with this Idempotency-Key is still running",
            headers={"Retry-After": "1"},
        )
    return _answer(existing.status, existing.response)


async def _finish_key(request: web.Request, key: str, status: int, payload: dict[str, Any]) -> None:
    async with request.app[sessions_key]() as session:
        row = await session.get(IdempotencyKey, key)
        if row is not None:
            row.state, row.status, row.response = "DONE", status, payload
            await session.commit()


async def _release_key(request: web.Request, key: str) -> None:
    async with request.app[sessions_key]() as session:
        row = await session.get(IdempotencyKey, key)
        if row is not None and row.state == "RUNNING":
            await session.delete(row)
            await session.commit()


@routes.get("/api/v1/cases/{case_no}")
async def get_case(request: web.Request) -> web.Response:
    """The case's one status for whoever holds its query code (no personal data)."""
    loaded = await load_case(request.app[sessions_key], request.match_info["case_no"])
    code = request.query.get("code", "")
    if loaded is None or not code or not code_matches(loaded[0], code):
        raise Problem(404, "not-found", "No case with this number and query code")
    case, steps = loaded
    return web.json_response(
        case_view(case, steps, request.app[catalogue_key], request.app[clock_key], personal=False)
    )


@routes.post("/api/v1/materials")
async def upload_material(request: web.Request) -> web.Response:
    """Upload one document (multipart/form-data, field ``file``). The same content is stored once."""
    if not request.content_type.startswith("multipart/"):
        raise Problem(415, "unsupported-media-type", "Upload the document as multipart/form-data")
    files = request.app[material_files_key]
    reader = await request.multipart()
    part = await reader.next()
    while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
        part = await reader.next()
    if part is None:
        raise Problem(
            400,
            "invalid-upload",
            "No file",
            errors=[FieldViolation("file", "REQUIRED", "send the document as 'file'")],
        )
    try:
        stored = await files.save(part)
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
    body = {"sha256": stored.sha256, "media_type": stored.media_type, "size_bytes": stored.size_bytes}
    return web.json_response(body, status=201 if created else 200)


@routes.get("/api/v1/progress/{case_no}")
async def progress(request: web.Request) -> web.Response:
    """Public progress for whoever holds the case number and its query code: no personal data."""
    return await get_case(request)


@routes.post("/api/v1/cases/{case_no}/withdraw")
async def withdraw_case(request: web.Request) -> web.Response:
    """The applicant withdraws: steps not yet sent are cancelled, the departments' records are
    cancelled in reverse order (compensation)."""
    body = await _json_body(request)
    loaded = await load_case(request.app[sessions_key], request.match_info["case_no"])
    code = body.get("code")
    if loaded is None or not isinstance(code, str) or not code_matches(loaded[0], code):
        raise Problem(404, "not-found", "No case with this number and query code")
    case, _ = loaded
    if case.state in saga.CASE_FINAL:
        raise Problem(409, "case-closed", f"The case is already {case.state.lower()}", state=case.state)
    runner = request.app[runner_key]
    await runner.withdraw(case.id)
    await drive_for(runner, case.id, request.app[settings_key].submit_wait)
    case, steps = await load_case(request.app[sessions_key], case.case_no) or loaded
    view = case_view(case, steps, request.app[catalogue_key], request.app[clock_key], personal=False)
    return web.json_response(view, status=202 if case.state != saga.WITHDRAWN else 200)
