"""The gateway's own audit trail (docs/architecture.md, "Security"): who read or changed whose personal data
through which route, with the outcome — allowed, denied (401/403/404) or failed. Entries go to the same
append-only, hash-chained ``audit_log`` the departments keep (services/common/audit.py), in the gateway's
database, keyed by an HMAC of the person's number (never the number itself); the departments record
the calls the gateway makes for people, with the person acting forwarded as metadata.

Routes say whom they concern with ``note_person`` (``visible_case`` does it for every case it loads, so
a denied look at someone's case is recorded too); the middleware writes the entries after the handler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from gateway.auth import principal
from gateway.catalogue import Matter, get_value
from gateway.store import AuditEntry, Case
from gateway.typedefs import clock_key, sessions_key, settings_key
from services.common.audit import Access, AuditTrail, RecordKeys, load_key

log = structlog.get_logger("govhub.audit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Noted:
    record_key: str
    resource: str


people_key = web.RequestKey("audit_people", list[Noted])
trail_key = web.AppKey("audit_trail", AuditTrail)


def trail_for(app: web.Application) -> AuditTrail:
    settings = app[settings_key]
    key = load_key(settings.security.audit_key_path(settings.common), create=not settings.security.tls)
    return AuditTrail(AuditEntry, app[sessions_key], RecordKeys(key))


def note_person(
    request: web.Request,
    *,
    id_number: str = "",
    passport: str = "",
    nationality: str = "",
    resource: str = "",
) -> None:
    """Record that this request reads or changes the personal data of the person with this number."""
    keys = request.app[trail_key].keys
    record_key = keys.id_number(id_number) if id_number else keys.passport(passport, nationality)
    if people_key not in request:
        request[people_key] = []
    request[people_key].append(Noted(record_key, resource))


def note_applicant(request: web.Request, case: Case, matter: Matter | None) -> None:
    """The case's applicant: an ID number, or a foreigner's passport number and nationality."""
    if matter is None:
        return
    value = str(get_value(case.data, matter.applicant_field) or "")
    if "passport" in matter.applicant_field:
        nationality = str(
            get_value(case.data, matter.applicant_field.rsplit(".", 1)[0] + ".nationality") or ""
        )
        note_person(request, passport=value, nationality=nationality, resource=case.case_no)
    elif value:
        note_person(request, id_number=value, resource=case.case_no)


def _outcome(status: int) -> str:
    if status in (401, 403, 404):
        return "denied"
    return "failed" if status >= 400 else "allowed"


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        noted = request.get(people_key)
        if noted:
            await _write(request, noted, status)


async def _write(request: web.Request, noted: list[Noted], status: int) -> None:
    who = principal(request)
    route = request.match_info.route.resource
    now: dt.datetime = request.app[clock_key].now()
    accesses = [
        Access(
            occurred_at=now,
            service="gateway",
            client="gateway",
            organisation="One-window service hall (gateway)",
            outside=False,
            actor=who.subject if who else "anonymous",
            actor_role=who.role if who else "public",
            purpose=request.headers.get("X-Govhub-Purpose", "")[:200] or "case handling",
            record_key=n.record_key,
            resource=n.resource,
            method=f"{request.method} {route.canonical if route else request.path}",
            outcome=_outcome(status),
            status=str(status),
            request_id=request.headers.get("X-Request-Id", "")[:64],
        )
        for n in noted
    ]
    try:
        await request.app[trail_key].append(accesses)
    except Exception:  # the answer is already decided; a lost entry must be loud
        log.exception("audit entry could not be written", method=accesses[0].method)
