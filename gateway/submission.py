"""Submitting one application: validated whole, stored, then run across the departments — for a citizen
online (the applicant must be the token's person) and for counter staff on behalf of a person present
(who served them and the hall are recorded). A retried POST with the same ``Idempotency-Key`` (per caller)
and body returns the first answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import saga
from gateway.audit import note_applicant
from gateway.auth import Principal
from gateway.cache import reads_key, views_key
from gateway.cases import (
    applicant_key,
    case_view,
    drive_for,
    keep_public,
    new_query_code_for,
    open_case,
    settle_submission,
)
from gateway.catalogue import Matter, get_value, validate_materials, validate_submission
from gateway.departments import ACTIONS
from gateway.problems import Problem, problem_response
from gateway.quotes import QuoteUnavailable
from gateway.saga.runner import read_case
from gateway.store import CaseStep, IdempotencyKey, Material
from gateway.typedefs import catalogue_key, clock_key, quotes_key, runner_key, sessions_key, settings_key
from services.common.errors import FieldViolation, InvalidArgument

MAX_KEY_LENGTH = 128
KEY_TTL_HOURS = 24
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Opening:
    """Who opens the case: a citizen for themselves, or counter staff at their hall."""

    who: Principal
    hall: str | None = None
    opened_by: str | None = None


def _invalid(violations: list[FieldViolation]) -> Problem:
    return Problem(
        400, "invalid-submission", "The application has invalid or missing fields", errors=violations
    )


def _contact(raw: Any, violations: list[FieldViolation]) -> dict[str, Any]:
    """Optional ``contact``: where milestones are sent (``phone``, ``email``) and in which ``language``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        violations.append(FieldViolation("contact", "NOT_AN_OBJECT", "phone, email, language"))
        return {}
    contact: dict[str, Any] = {}
    for key in raw:
        if key not in ("phone", "email", "language"):
            violations.append(FieldViolation(f"contact.{key}", "UNKNOWN_FIELD", "phone, email, language"))
    phone, email, language = raw.get("phone"), raw.get("email"), raw.get("language", "zh")
    if phone is not None:
        digits = phone.replace("+", "", 1).replace(" ", "") if isinstance(phone, str) else ""
        if not (digits.isdigit() and 6 <= len(digits) <= 15):
            violations.append(FieldViolation("contact.phone", "NOT_A_PHONE_NUMBER", "6 to 15 digits"))
        else:
            contact["phone"] = phone
    if email is not None:
        if not (isinstance(email, str) and 3 <= len(email) <= 200 and "@" in email.strip("@")):
            violations.append(FieldViolation("contact.email", "NOT_AN_EMAIL", "name@example.org"))
        else:
            contact["email"] = email
    if language not in LANGUAGES:
        violations.append(FieldViolation("contact.language", "NOT_ALLOWED", "zh or en"))
    else:
        contact["language"] = language
    return contact


async def submit(request: web.Request, body: dict[str, Any], opening: Opening) -> web.Response:
    app = request.app
    matter_id = body.get("matter")
    catalogue = app[catalogue_key]
    known = f"one of: {', '.join(sorted(catalogue))}"
    if matter_id is None or matter_id == "":
        raise _invalid([FieldViolation("matter", "REQUIRED", f"the matter applied for is required, {known}")])
    if not isinstance(matter_id, str):
        raise _invalid([FieldViolation("matter", "NOT_A_STRING", f"the matter is a name, {known}")])
    if matter_id not in catalogue:
        raise _invalid([FieldViolation("matter", "UNKNOWN_MATTER", known)])
    matter = catalogue[matter_id]
    today = app[clock_key].today()
    if not matter.available_on(today):
        raise Problem(
            422,
            "matter-not-available",
            "This matter cannot be applied for today",
            f"{matter.title} can be applied for {matter.availability()}; today is {today.isoformat()}.",
            matter=matter.id,
            today=today.isoformat(),
            available_from=matter.available_from.isoformat(),
            available_until=matter.available_until.isoformat() if matter.available_until else None,
        )
    violations: list[FieldViolation] = []
    data: dict[str, Any] = {}
    try:
        within = await _entry_within_days(request, matter, today)
        data = validate_submission(matter, body.get("data"), today, entry_within_days=within)
    except InvalidArgument as exc:
        violations.extend(exc.violations)
    chosen, problems = validate_materials(matter, body.get("materials"), data)
    violations.extend(problems)
    contact = _contact(body.get("contact"), violations)
    materials = await _uploaded(request, chosen, violations)
    if violations:
        raise _invalid(violations)
    who = opening.who
    if (
        who.role == "citizen"
        and applicant_key(str(get_value(data, matter.applicant_field))) != who.person_key
    ):
        raise Problem(
            403,
            "not-the-applicant",
            "Online, you may apply only for yourself",
            errors=[FieldViolation(f"data.{matter.applicant_field}", "NOT_THE_TOKEN_HOLDER", "")],
        )

    if opening.hall:
        elsewhere = [
            f for f in matter.fields if f.hall and get_value(data, f.path) not in (None, opening.hall)
        ]
        if elsewhere:
            raise Problem(
                403,
                "not-your-hall",
                "A counter acts only for its own hall",
                f"This counter belongs to hall {opening.hall}.",
                errors=[
                    FieldViolation(
                        f"data.{f.path}", "NOT_THIS_HALL", f"this counter's hall is {opening.hall}"
                    )
                    for f in elsewhere
                ],
            )

    key = request.headers.get("Idempotency-Key", "").strip()
    if key:
        if len(key) > MAX_KEY_LENGTH:
            raise Problem(400, "invalid-idempotency-key", f"Idempotency-Key is longer than {MAX_KEY_LENGTH}")
        key = hashlib.sha256(f"{who.subject}\0{key}".encode()).hexdigest()  # one caller's keys
        replay = await _claim_key(request, key, body)
        if replay is not None:
            return replay
    try:
        status, payload = await _open(request, matter, data, materials, opening, contact, key or None)
    except BaseException:
        if key:
            await _release_key(request, key)
        raise
    if key:
        await _finish_key(request, key, status, payload)
    return answer(status, payload)


async def _entry_within_days(request: web.Request, matter: Matter, today: Any) -> int | None:
    """The days from entry permits quotes for today, for a matter that checks them; None when the
    matter does not or permits cannot be asked now (then permits checks it itself)."""
    if not any(rule.check == "within_days_of_entry" for rule in matter.rules):
        return None
    try:
        quote = await request.app[quotes_key].for_matter(matter, today, needs_entry_rule=True)
    except QuoteUnavailable:
        return None
    return quote.apply_within_days_of_entry


def answer(status: int, payload: dict[str, Any]) -> web.Response:
    if status >= 400:
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


async def _open(
    request: web.Request,
    matter: Matter,
    data: dict[str, Any],
    materials: dict[str, dict[str, Any]],
    opening: Opening,
    contact: dict[str, Any],
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    app = request.app
    sessions, clock = app[sessions_key], app[clock_key]
    case, code = await open_case(
        sessions,
        clock,
        matter,
        data,
        materials,
        hall=opening.hall,
        opened_by=opening.opened_by,
        contact=contact,
        idempotency_key=key,
        runner=app[runner_key],
    )
    claimed = [s for s in case.steps if s.lease_owner is not None]
    return await _outcome(request, case.id, code, claimed)


async def _outcome(
    request: web.Request, case_id: str, code: str, claimed: Sequence[CaseStep] = ()
) -> tuple[int, dict[str, Any]]:
    """Drive the case's first steps (those `claimed` when it was opened, then any they make ready),
    within the submission's wait, and answer with where it stands. A submission refused outright leaves
    no case behind (``settle_submission``); the audit trail keeps the attempt."""
    app = request.app
    sessions, clock, runner = app[sessions_key], app[clock_key], app[runner_key]
    await drive_for(runner, case_id, app[settings_key].submit_wait, claimed)
    reading = app[views_key].reading()
    kept, case, steps = await settle_submission(sessions, case_id, app[reads_key])
    note_applicant(request, case, app[catalogue_key].get(case.matter))
    if case.state == saga.REJECTED:
        # refused outright: no case is left (`kept` false); a case a department still holds part of
        # (e.g. a loss report that stands on its own) is named, to be followed
        kept_case = {"case_no": case.case_no} if kept else {}
        refused = next((s for s in steps if s.reason), None)
        violations = (refused.result.get("violations") if refused else None) or []
        if violations and refused is not None:
            return 400, {
                "type": "/problems/invalid-submission",
                "title": "A department found invalid fields",
                "status": 400,
                "detail": refused.message,
                "errors": [
                    {"field": submitted_field(refused, v["field"]), "reason": v["reason"]} for v in violations
                ],
                "instance": request.path,
                **kept_case,
            }
        conflict = refused is not None and refused.result.get("code") == "ALREADY_EXISTS"
        status = 409 if conflict else 422
        # a refusal about one submitted field (an expired residence permit) names it
        about = ACTIONS[refused.action].refused_fields.get(refused.reason) if refused else None
        errors = []
        if refused is not None and about:
            errors = [
                {
                    "field": submitted_field(refused, about),
                    "reason": refused.reason,
                    "detail": refused.message,
                }
            ]
        return status, {
            "type": "/problems/conflict" if conflict else "/problems/refused",
            "title": "The department already holds such an application"
            if conflict
            else "The application was refused",
            "status": status,
            "detail": refused.message if refused else "",
            "reason": case.outcome.get("reason", "REFUSED"),
            "step": refused.step_key if refused else None,
            **({"errors": errors} if errors else {}),
            "instance": request.path,
            **kept_case,
        }
    public = case_view(case, steps, app[catalogue_key], clock, personal=False)
    # the public progress answer is this one: kept for the applicant's first lookups (unless the case
    # changed here meanwhile), so that they need not read the case again
    keep_public(app[views_key], reading, case, steps, public, clock)
    return 201, {**public, "query_code": code}


def submitted_field(step: CaseStep, field: str) -> str:
    """Where in the submission a department's field violation points: ``data.<path>`` when the step's
    request took that field as is from the same path of the submitted data (the action reads it), else
    the department's own name for it under the step (``work_permit.annual_salary_fen``)."""
    if field in ACTIONS[step.action].reads:
        return f"data.{field}"
    return f"{step.step_key}.{field}"


def _body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def _claim_key(request: web.Request, key: str, body: dict[str, Any]) -> web.Response | None:
    """Claim an Idempotency-Key: None when this request may proceed, else the answer to give."""
    import datetime as dt

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
        if existing.created_at < now - dt.timedelta(hours=KEY_TTL_HOURS):
            await session.delete(existing)
            await session.commit()
            return await _claim_key(request, key, body)
    if existing.body_hash != digest:
        raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used with a different body")
    if existing.state == "RUNNING":
        settings = request.app[settings_key]
        abandoned = now - dt.timedelta(seconds=2 * (settings.submit_wait + settings.call_timeout))
        if existing.created_at >= abandoned:
            raise Problem(
                409,
                "idempotency-conflict",
                "A request with this Idempotency-Key is still running",
                headers={"Retry-After": "1"},
            )
        # The gateway that took this request died before answering.
        if existing.case_id is None:  # ... before opening the case: this request takes over
            await _release_key(request, key)
            return await _claim_key(request, key, body)
        code = await new_query_code_for(request.app[sessions_key], existing.case_id)
        status, payload = await _outcome(request, existing.case_id, code)
        await _finish_key(request, key, status, payload)
        return answer(status, payload)
    if existing.case_id is not None and existing.status == 201:
        # The same case, as it stands now, with a new query code: the code is kept only as its hash (the
        # one first given stops working: whoever retried did not get it, or has lost it).
        app = request.app
        code = await new_query_code_for(app[sessions_key], existing.case_id)
        async with AsyncSession(app[reads_key], expire_on_commit=False) as session:
            case, steps = await read_case(session, existing.case_id)
        view = case_view(case, steps, app[catalogue_key], app[clock_key], personal=False)
        return answer(201, {**view, "query_code": code})
    return answer(existing.status, existing.response)


async def _finish_key(request: web.Request, key: str, status: int, payload: dict[str, Any]) -> None:
    async with request.app[sessions_key]() as session:
        row = await session.get(IdempotencyKey, key)
        if row is not None:
            # the answer to give again, without the query code (kept only as its hash, on the case)
            kept = {k: v for k, v in payload.items() if k != "query_code"}
            row.state, row.status, row.response = "DONE", status, kept
            await session.commit()


async def _release_key(request: web.Request, key: str) -> None:
    async with request.app[sessions_key]() as session:
        row = await session.get(IdempotencyKey, key)
        if row is not None and row.state == "RUNNING":
            await session.delete(row)
            await session.commit()
