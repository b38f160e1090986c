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
from gateway.problems import Problem
from gateway.store import AuditEntry, Case
from gateway.typedefs import clock_key, sessions_key, settings_key
from services.common.audit import Access, AuditTrail, RecordKeys, load_key
from services.common.logging import mask_text

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


PURPOSE_HEADER = "X-Govhub-Purpose"
# Why staff look at a person's records: they choose one of these (the X-Govhub-Purpose header); without a
# choice, the route's declared purpose is recorded. A citizen's or an anonymous caller's header is ignored.
STAFF_PURPOSES = {
    "case-handling": "case handling",
    "applicant-enquiry": "answering the applicant's enquiry",
    "identity-check": "checking the applicant's identity at the counter",
    "complaint-handling": "handling a complaint or a rating",
    "supervision": "supervision of case handling",
    "data-correction": "correcting a record at the person's request",
}
# The purpose each kind of caller's look is recorded under, unless staff chose one above.
DECLARED_PURPOSES = {
    "citizen": "the person's own request",
    "public": "progress lookup with the case number and query code",
    "counter": "case handling",
    "department": "case handling",
    "admin": "supervision of case handling",
}
STAFF_ROLES = frozenset({"counter", "department", "admin"})


def purpose_of(request: web.Request) -> str:
    """The purpose recorded for this request: the route's declared one, or a staff member's choice."""
    who = principal(request)
    role = who.role if who else "public"
    chosen = request.headers.get(PURPOSE_HEADER, "").strip()
    if role in STAFF_ROLES and chosen in STAFF_PURPOSES:
        return STAFF_PURPOSES[chosen]
    return DECLARED_PURPOSES.get(role, "case handling")


@web.middleware
async def purpose_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After authentication: a staff member's purpose must come from the closed list (else 400)."""
    _check_purpose(request)
    return await handler(request)


def _check_purpose(request: web.Request) -> None:
    who = principal(request)
    chosen = request.headers.get(PURPOSE_HEADER)
    if (
        who is not None
        and who.role in STAFF_ROLES
        and chosen is not None
        and chosen.strip() not in STAFF_PURPOSES
    ):
        from services.common.errors import FieldViolation

        raise Problem(
            400,
            "invalid-request",
            "The purpose is not one of the recorded purposes",
            errors=[
                FieldViolation(PURPOSE_HEADER, "UNKNOWN_VALUE", "one of " + ", ".join(sorted(STAFF_PURPOSES)))
            ],
        )


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
    now: dt.datetime = request.app[clock_key].now()  # the process's one clock (services/common/clock.py)
    accesses = [
        Access(
            occurred_at=now,
            service="gateway",
            client="gateway",
            organisation="One-window service hall (gateway)",
            outside=False,
            actor=who.subject if who else "anonymous",
            actor_role=who.role if who else "public",
            purpose=purpose_of(request),
            record_key=n.record_key,
            resource=n.resource,
            method=f"{request.method} {route.canonical if route else request.path}",
            outcome=_outcome(status),
            status=str(status),
            request_id=mask_text(request.headers.get("X-Request-Id", "")[:64]),
        )
        for n in noted
    ]
    try:
        await request.app[trail_key].append(accesses)
    except Exception:  # the answer is already decided; a lost entry must be loud
        log.exception("audit entry could not be written", method=accesses[0].method)
