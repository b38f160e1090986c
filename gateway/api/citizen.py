"""The online affairs hall (网上办事大厅): a citizen's own cases, ID card, found cards, household,
notifications and feedback. Everything is looked up by the token's person, never by a parameter: there is
no way to name somebody else."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway import models, saga
from gateway.api.common import (
    department_problem,
    invalid,
    next_token,
    page,
    page_size,
    read_body,
    reply,
    visible_case,
)
from gateway.audit import note_person, trail_key
from gateway.auth import Principal, allow, require
from gateway.calls import call_as
from gateway.cases import shown_results
from gateway.catalogue import Matter
from gateway.clients import CallContext, DepartmentError
from gateway.departments import identity, residence
from gateway.departments.base import ACCESS_LOG, Req, Resp, Rpc
from gateway.feedback import POOR, feedback_view
from gateway.problems import Problem
from gateway.regions import region_name
from gateway.store import Case, CaseStep, Feedback, Notification
from gateway.typedefs import catalogue_key, clock_key, departments_key, sessions_key, settings_key, stats_key
from govhub.audit.v1 import audit_pb2
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2
from govhub.residence.v1 import residence_pb2
from services.common.idnumber import check_id_number

routes = web.RouteTableDef()


def _ctx(request: web.Request, request_id: str | None = None) -> CallContext:
    return CallContext(
        request_id=request_id or str(uuid.uuid4()), case_no="", timeout=request.app[settings_key].call_timeout
    )


def _iso(date: common_pb2.Date) -> str | None:
    return f"{date.year:04d}-{date.month:02d}-{date.day:02d}" if date.year else None


def _id_number(who: Principal) -> str:
    """The citizen's ID number (a foreigner's token names a passport: no ID card, no household here)."""
    check = check_id_number(who.person.strip())
    if not check.valid:
        raise Problem(404, "not-found", "Your account is not linked to a citizen ID number")
    return check.normalised


async def _call(
    request: web.Request, department: str, rpc: Rpc[Req, Resp], message: Req, who: Principal
) -> Resp:
    if who.person:
        note_person(request, id_number=_id_number(who))
    try:
        return await call_as(request.app[departments_key][department], rpc, message, _ctx(request), who)
    except DepartmentError as exc:
        raise department_problem(exc) from None


@routes.get("/api/v1/me/cases")
@allow("citizen")
async def my_cases(request: web.Request) -> web.Response:
    who = require(request)
    size, offset = page(request)
    app = request.app
    async with app[sessions_key]() as session:
        cases = list(
            await session.scalars(
                select(Case)
                .where(Case.applicant_key == who.person_key)
                .order_by(Case.created_at.desc(), Case.case_no)
                .offset(offset)
                .limit(size + 1)
            )
        )
        # the steps of the whole page in one statement
        steps: dict[str, list[CaseStep]] = {c.id: [] for c in cases[:size]}
        if steps:
            for step in await session.scalars(
                select(CaseStep).where(CaseStep.case_id.in_(steps)).order_by(CaseStep.position)
            ):
                steps[step.case_id].append(step)
    catalogue = app[catalogue_key]
    items = [
        {
            "case_no": c.case_no,
            "matter": c.matter,
            "state": c.state,
            "submitted_on": c.submitted_on.isoformat(),
            "updated_at": c.updated_at.isoformat(),
            "steps": [_step_summary(s, catalogue.get(c.matter)) for s in steps[c.id]],
        }
        for c in cases[:size]
    ]
    return web.json_response({"cases": items, "next_page_token": next_token(offset, size, len(cases))})


def _step_summary(step: CaseStep, matter: Matter | None) -> dict[str, Any]:
    """A step in short for the applicant's own list: its department, state and what it produced."""
    spec = next((s for s in matter.steps if s.key == step.step_key), None) if matter else None
    summary: dict[str, Any] = {
        "key": step.step_key,
        "title": spec.title if spec else step.step_key,
        "title_zh": spec.title_zh if spec else step.step_key,
        "department": step.department,
        "state": step.state,
    }
    results = shown_results(step)
    if results:
        summary["results"] = results
    return summary


@routes.get("/api/v1/me/card")
@allow("citizen")
async def my_card(request: web.Request) -> web.Response:
    """My current ID card's status (identity GetCurrentCard)."""
    who = require(request)
    answer = await _call(
        request,
        "identity",
        identity.GET_CURRENT_CARD,
        identity_pb2.GetCurrentCardRequest(id_number=_id_number(who)),
        who,
    )
    card = answer.card
    return reply(
        models.Card(
            card_number=card.card_number,
            status=identity_pb2.CardStatus.Name(card.status).removeprefix("CARD_STATUS_"),
            valid_from=_iso(card.valid_from),
            valid_until=_iso(card.valid_until),
            long_term=card.long_term,
        )
    )


@routes.post("/api/v1/me/card/report-lost")
@allow("citizen")
async def report_lost(request: web.Request) -> web.Response:
    """Report my card lost online: it is invalid for every checker at once (identity ReportCardLost)."""
    who = require(request)
    body = await read_body(request, models.ReportLost)
    message = identity_pb2.ReportCardLostRequest(
        request_id=str(body.request_id or uuid.uuid4()),
        id_number=_id_number(who),
        name=body.name.strip(),
        station_region_code=body.station_region_code,
    )
    try:
        answer = await call_as(
            request.app[departments_key]["identity"],
            identity.REPORT_LOST,
            message,
            _ctx(request, message.request_id),
            who,
        )
    except DepartmentError as exc:
        raise department_problem(exc) from None
    report = answer.loss_report
    return reply(
        models.LossReport(
            loss_report_id=report.id,
            card_number=report.card_number,
            reported_on=_iso(report.reported_on),
            inside_hukou_area=report.inside_hukou_area,
        ),
        201,
    )


@routes.get("/api/v1/me/found-cards")
@allow("citizen")
async def my_found_cards(request: web.Request) -> web.Response:
    """Found cards handed in under my ID number (identity SearchFoundCards)."""
    who = require(request)
    size = page_size(request)
    token = request.query.get("page_token", "")
    if len(token) > 200:
        raise invalid("page_token", "MALFORMED", "use next_page_token from the previous page")
    found = await _call(
        request,
        "identity",
        identity.SEARCH_FOUND_CARDS,
        identity_pb2.SearchFoundCardsRequest(id_number=_id_number(who), page_size=size, page_token=token),
        who,
    )
    cards = [
        models.FoundCard(
            id=c.id,
            card_number=c.card_number,
            found_on=_iso(c.found_on),
            status=identity_pb2.FoundCardStatus.Name(c.status).removeprefix("FOUND_CARD_STATUS_"),
            station_region_code=c.station_region_code,
            station_region_name=region_name(c.station_region_code, "en"),
            station_region_name_zh=region_name(c.station_region_code, "zh"),
        )
        for c in found.found_cards
    ]
    return reply(models.FoundCardPage(found_cards=cards[:size], next_page_token=found.next_page_token))


@routes.get("/api/v1/me/household")
@allow("citizen")
async def my_household(request: web.Request) -> web.Response:
    """My household: the register entry and its members (residence GetPerson + ListMembers)."""
    who = require(request)
    person = await _call(
        request,
        "residence",
        residence.GET_PERSON,
        residence_pb2.GetPersonRequest(id_number=_id_number(who)),
        who,
    )
    household = person.household
    members = await _call(
        request,
        "residence",
        residence.LIST_MEMBERS,
        residence_pb2.ListMembersRequest(
            household_id=household.id, page_size=request.app[settings_key].page_size_max
        ),
        who,
    )
    return reply(
        models.MyHousehold(
            household=models.Household(
                number=household.number,
                address=household.address,
                region_code=household.region_code,
                head_name=household.head_name,
                region_name=region_name(household.region_code, "en"),
                region_name_zh=region_name(household.region_code, "zh"),
            ),
            members=[
                models.Member(
                    name=m.name,
                    relationship_code=m.relationship_code,
                    status=residence_pb2.PersonStatus.Name(m.status).removeprefix("PERSON_STATUS_"),
                )
                for m in members.members
            ],
        )
    )


@routes.get("/api/v1/me/notifications")
@allow("citizen")
async def my_notifications(request: web.Request) -> web.Response:
    """The milestone messages sent about my cases, newest first."""
    who = require(request)
    size, offset = page(request)
    async with request.app[sessions_key]() as session:
        rows = (
            await session.execute(
                select(Notification, Case.case_no)
                .join(Case, Case.id == Notification.case_id)
                .where(Case.applicant_key == who.person_key)
                .order_by(Notification.created_at.desc(), Notification.id)
                .offset(offset)
                .limit(size + 1)
            )
        ).all()
    items = [
        models.NotificationSent(
            case_no=case_no,
            milestone=n.milestone,
            channel=n.channel,
            language=n.language,
            text=n.text,
            sent_at=n.created_at.isoformat(),
        )
        for n, case_no in rows[:size]
    ]
    return reply(
        models.NotificationPage(notifications=items, next_page_token=next_token(offset, size, len(rows)))
    )


@routes.post("/api/v1/cases/{case_no}/feedback")
@allow("citizen")
async def rate_case(request: web.Request) -> web.Response:
    """好差评: the applicant rates a completed case once, 1 to 5, with an optional comment."""
    who = require(request)
    case, _ = await visible_case(request, who)
    body = await read_body(request, models.Rating)
    if case.state != saga.COMPLETED:
        raise Problem(409, "case-not-completed", "A case is rated once it is completed", state=case.state)
    row = Feedback(
        case_id=case.id,
        matter=case.matter,
        hall=case.hall,
        rating=body.rating,
        comment=body.comment.strip(),
        flagged=body.rating <= POOR,
        created_at=request.app[clock_key].now(),
        replies=[],
    )
    async with request.app[sessions_key]() as session:
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            raise Problem(409, "already-rated", "This case has been rated already") from None
    request.app[stats_key].invalidate()
    return web.json_response({"case_no": case.case_no, **feedback_view(row)}, status=201)


_OUTCOMES = {1: "allowed", 2: "denied", 3: "failed"}


_LOG_SOURCES = ("identity", "residence", "permits", "gateway")


def _log_cursor(request: web.Request) -> dict[str, int | None]:
    """Where each trail's page starts: the sequence to read before (None: from the newest; 0: done)."""
    token = request.query.get("page_token", "")
    if not token:
        return dict.fromkeys(_LOG_SOURCES)
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"==").decode())
        if not isinstance(raw, dict) or set(raw) != set(_LOG_SOURCES):
            raise ValueError(token)
        cursor = {k: None if raw[k] is None else int(raw[k]) for k in _LOG_SOURCES}
        if any(v is not None and not 0 <= v < 2**63 for v in cursor.values()):
            raise ValueError(token)
        return cursor
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("page_token", "MALFORMED", "use next_page_token from the previous page") from None


@routes.get("/api/v1/me/access-log")
@allow("citizen")
async def my_access_log(request: web.Request) -> web.Response:
    """Who looked at my records, when and for what (the Data Tracker idea): every department's audit
    trail and the one window's own, newest first — organisations and systems, never staff details.
    Pages with a cursor over the four trails (``page_token``: where each one's page starts)."""
    who = require(request)
    id_number = _id_number(who)
    size = page_size(request)
    cursor = _log_cursor(request)
    fetched: dict[str, list[tuple[int, models.AccessEntry]]] = {}
    for name in ("identity", "residence", "permits"):
        if cursor[name] == 0:
            fetched[name] = []
            continue
        entries = await _call(
            request,
            name,
            ACCESS_LOG,
            audit_pb2.ListAccessEntriesRequest(
                id_number=id_number, page_size=size, page_token=str(cursor[name] or "")
            ),
            who,
        )
        fetched[name] = [
            (
                e.sequence,
                models.AccessEntry(
                    time=e.access_time.ToDatetime(dt.UTC).isoformat(),
                    department=e.department or name,
                    organisation=e.organisation,
                    system=e.client_system,
                    role=e.role,
                    purpose=e.purpose,
                    action=e.method,
                    outcome=_OUTCOMES.get(e.outcome, "unknown"),
                ),
            )
            for e in entries.entries
        ]
    trail = request.app[trail_key]
    rows = (
        []
        if cursor["gateway"] == 0
        else await trail.about(trail.keys.id_number(id_number), before=cursor["gateway"], limit=size)
    )
    fetched["gateway"] = [
        (
            row.sequence,
            models.AccessEntry(
                time=row.occurred_at.isoformat(),
                department="gateway",
                organisation=row.organisation,
                system=row.client,
                role=row.actor_role,
                purpose=row.purpose,
                action=row.method,
                outcome=row.outcome,
            ),
        )
        for row in rows
    ]
    merged = sorted(
        ((entry.time, name, seq, entry) for name, got in fetched.items() for seq, entry in got),
        key=lambda t: (t[0], t[1], t[2]),
        reverse=True,
    )[:size]
    following: dict[str, int | None] = dict(cursor)
    for name, got in fetched.items():
        taken = [seq for _, source, seq, _ in merged if source == name]
        if taken:
            following[name] = min(taken)
        if len(got) < size and len(taken) == len(got):
            following[name] = 0  # this trail has nothing older
    more = any(v != 0 for v in following.values())
    token = base64.urlsafe_b64encode(json.dumps(following).encode()).decode().rstrip("=") if more else ""
    return reply(models.AccessLog(entries=[e for *_, e in merged], next_page_token=token))
