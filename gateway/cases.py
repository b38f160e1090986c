"""Opening and reading cases: one application, one case number, one query code, one status."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache import CaseViews, Reading
from gateway.catalogue import Matter, get_value
from gateway.departments import ACTIONS
from gateway.ratelimit import Locked
from gateway.regions import region_name
from gateway.saga.model import FINAL, CaseState, StepState, flags_of, in_force, ready_steps
from gateway.saga.runner import SagaRunner, lock_case, read_case, write_again
from gateway.store import Case, CaseStep, CodeFailures, IdempotencyKey, Notification
from services.common.clock import Clock
from services.common.logging import mask_text

_CASE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I


def new_case_no(clock: Clock) -> str:
    suffix = "".join(secrets.choice(_CASE_ALPHABET) for _ in range(6))
    return f"GH{clock.today():%Y%m%d}{suffix}"


QUERY_CODE_LENGTH = 8  # 8 of 32 symbols: 40 bits (the 6-digit codes of older cases still work)


def new_query_code() -> str:
    """A query code: QUERY_CODE_LENGTH characters of an alphabet with no 0/O or 1/I to misread."""
    return "".join(secrets.choice(_CASE_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def hash_code(case_no: str, code: str) -> str:
    return hashlib.sha256(f"{case_no}:{code}".encode()).hexdigest()


def code_matches(case: Case, code: str) -> bool:
    return hmac.compare_digest(case.query_code_hash, hash_code(case.case_no, code))


def applicant_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Where a case submitted online will be served (pickup, materials): the first of these fields it has.
HALL_FIELDS = ("accepting_region_code", "station_region_code", "destination.region_code", "work_region")


def hall_of(data: dict[str, Any]) -> str | None:
    for path in HALL_FIELDS:
        value = get_value(data, path)
        if isinstance(value, str) and len(value) == 6 and value.isdigit():
            return value
    return None


async def open_case(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    matter: Matter,
    data: dict[str, Any],
    materials: dict[str, dict[str, Any]],
    *,
    hall: str | None = None,
    opened_by: str | None = None,
    contact: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    runner: SagaRunner | None = None,
) -> tuple[Case, str]:
    """Store the case and its steps in one transaction; returns the case (with its `steps`) and its query
    code. `hall` is the service hall that opened it (or, online, the hall its data names); `opened_by`
    the staff member. With `runner`, the steps ready at once are claimed for the submitting request,
    which drives them (`drive_for`)."""
    now = clock.now()
    code = new_query_code()
    case_no = new_case_no(clock)
    case = Case(
        id=str(uuid.uuid4()),
        case_no=case_no,
        matter=matter.id,
        state="RECEIVED",
        # a case whose first steps are claimed for the submitting request is told of once that request
        # has kept it (`settle_submission`): a submission refused outright leaves nothing behind
        notify_due=runner is None,
        query_code_hash=hash_code(case_no, code),
        applicant_key=applicant_key(str(get_value(data, matter.applicant_field))),
        data=data,
        materials=materials,
        outcome={},
        submitted_on=clock.today(),
        created_at=now,
        updated_at=now,
        hall=hall if hall is not None else hall_of(data),
        opened_by=opened_by,
        checked_materials={},
        contact=contact or {},
    )
    steps = [
        CaseStep(
            id=str(uuid.uuid4()),
            case_id=case.id,
            step_key=spec.key,
            position=position,
            department=spec.department,
            action=spec.action,
            depends_on=list(spec.depends_on),
            starts_when=spec.starts_when,
            materials=list(spec.materials),
            state=StepState.SKIPPED
            if spec.when and get_value(data, spec.when) is not True
            else StepState.PENDING,
            request_id=str(uuid.uuid4()),
            result={},
            updated_at=now,
        )
        for position, spec in enumerate(matter.steps)
    ]
    ready = ready_steps(steps)
    for step in steps:
        step.ready = step.step_key in ready
        step.next_attempt_at = now if step.ready else None
    if runner is not None:
        runner.claim_opened(steps, now)
    case.steps = steps
    async with sessions() as session:
        session.add(case)
        if idempotency_key is not None:
            await session.execute(
                update(IdempotencyKey).where(IdempotencyKey.key == idempotency_key).values(case_id=case.id)
            )
        await session.commit()
    return case, code


# A step in one of these states holds nothing at its department.
_NOTHING_HELD = frozenset({StepState.REFUSED, StepState.CANCELLED, StepState.SKIPPED})


async def settle_submission(
    sessions: async_sessionmaker[AsyncSession], case_id: str, reads: AsyncEngine | None = None
) -> tuple[bool, Case, list[CaseStep]]:
    """After the submitting request's wait: a case refused outright (rejected, and no department holds
    anything of it) is forgotten — no case and no notification; the answer and the audit trail say why.
    Otherwise the case is kept and its applicant told. Returns whether it was kept, and the case and its
    steps (in order) as they stood. Read through `reads` when given: most cases need no write here (a
    step's result that moved the case has already made it due to be told of)."""
    if reads is not None:
        async with AsyncSession(reads, expire_on_commit=False) as session:
            case, steps = await read_case(session, case_id)
        if not _refused_outright(case, steps) and (case.notify_due or case.notified_state == case.state):
            return True, case, steps

    async def settle(session: AsyncSession) -> tuple[bool, Case, list[CaseStep]]:
        case, steps = await lock_case(session, case_id)
        if _refused_outright(case, steps):
            await session.execute(delete(Notification).where(Notification.case_id == case_id))
            await session.execute(delete(CaseStep).where(CaseStep.case_id == case_id))
            await session.execute(
                update(IdempotencyKey).where(IdempotencyKey.case_id == case_id).values(case_id=None)
            )
            await session.delete(case)
            return False, case, steps
        if case.notified_state != case.state:
            case.notify_due = True
        return True, case, steps

    return await write_again(sessions, settle)


def _refused_outright(case: Case, steps: list[CaseStep]) -> bool:
    return case.state == CaseState.REJECTED and all(
        s.state in _NOTHING_HELD and not s.resource_id and s.lease_owner is None for s in steps
    )


async def new_query_code_for(sessions: async_sessionmaker[AsyncSession], case_id: str) -> str:
    """Give a case a new query code (its first one was never delivered: the answer was lost)."""
    code = new_query_code()

    async def store(session: AsyncSession) -> None:
        case, _ = await lock_case(session, case_id)
        case.query_code_hash = hash_code(case.case_no, code)

    await write_again(sessions, store)
    return code


async def drive_for(runner: SagaRunner, case_id: str, wait: float, claimed: Sequence[CaseStep] = ()) -> None:
    """Run the case's ready steps now (first those `claimed` for the request that opened the case),
    answering within `wait` seconds; whatever is still running then goes on in the background (and the
    background runner picks up anything left)."""
    task = runner.spawn(runner.drive(case_id, first=True, claimed=claimed))
    await asyncio.wait({task}, timeout=wait)


async def load_case(
    sessions: async_sessionmaker[AsyncSession], case_no: str
) -> tuple[Case, list[CaseStep]] | None:
    async with sessions() as session:
        case = await session.scalar(select(Case).where(Case.case_no == case_no))
        if case is None:
            return None
        steps = list(
            await session.scalars(
                select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.position)
            )
        )
    return case, steps


# What the public progress answer reads of a case and of its steps (Core selects, no ORM loading).
_CASE_COLUMNS = (
    Case.id, Case.case_no, Case.matter, Case.state, Case.query_code_hash, Case.outcome,
    Case.submitted_on, Case.updated_at,
)  # fmt: skip
_STEP_COLUMNS = (
    CaseStep.step_key, CaseStep.department, CaseStep.action, CaseStep.state,
    CaseStep.department_state, CaseStep.statutory_deadline, CaseStep.reason, CaseStep.result,
)  # fmt: skip
# One statement: each case of the numbers given, the wrong codes on record for its number (and its lock),
# and its steps in order (a case with none gives one row of NULL steps).
_PUBLIC_CASES = (
    select(
        *_CASE_COLUMNS,
        Case.version,
        CodeFailures.locked_until.label("locked_until"),
        CodeFailures.case_no.label("wrong_codes"),
        CaseStep.id.label("step_id"),
        CaseStep.version.label("step_version"),
        *(c.label(f"step_{c.key}") for c in _STEP_COLUMNS),
    )
    .outerjoin(CodeFailures, CodeFailures.case_no == Case.case_no)
    .outerjoin(CaseStep, CaseStep.case_id == Case.id)
    .where(Case.case_no.in_(bindparam("case_nos", expanding=True)))
    .order_by(Case.case_no, CaseStep.position)
)


class Progress(NamedTuple):
    """What a lookup by case number and query code found: the answer (JSON) when the code is right;
    otherwise whether the case exists (a wrong code for it is to be counted). `wrong_before`: wrong codes
    were on record for the number (a right code clears them; never set on an answer from memory)."""

    body: bytes | None
    exists: bool
    wrong_before: bool = False


async def public_progress(
    reads: AsyncEngine,
    views: CaseViews,
    case_no: str,
    code: str,
    catalogue: Mapping[str, Matter],
    clock: Clock,
) -> Progress:
    """The public progress of case `case_no` if `code` is its query code. Served from `views` while it
    holds the case and `code` matches it, with no database work at all; anything else is decided by one
    read of the database (`reads`): the case, its steps and its number's lock (``Locked`` while locked,
    whatever the code). Lookups of one case number that miss together share one read, and the misses of
    different numbers that wait together are read in one statement (``views.load``); what it read is kept
    in `views` unless wrong codes are on record for the number."""
    today = clock.today()
    kept = views.get(case_no, today)
    if kept is not None and code and hmac.compare_digest(kept.query_code_hash, hash_code(case_no, code)):
        return Progress(kept.body, exists=True)
    found = await views.load(case_no, lambda numbers: _read_public(reads, views, numbers, catalogue, clock))
    if found is None:
        return Progress(None, exists=False)
    if found.locked_until is not None:
        left = (found.locked_until - clock.now()).total_seconds()
        if left > 0:
            raise Locked(left)
    if not code or not hmac.compare_digest(found.code_hash, hash_code(case_no, code)):
        return Progress(None, exists=True)
    return Progress(found.body, exists=True, wrong_before=found.wrong_codes)


def keep_public(
    views: CaseViews,
    reading: Reading,
    case: Case,
    steps: Sequence[CaseStep],
    public: dict[str, Any],
    clock: Clock,
) -> None:
    """Keep `public` (``case_view(case, steps, personal=False)``, read since `reading` began) as the case's
    public progress answer, as a lookup's read would (``CaseViews.put`` refuses it if the case changed
    here meanwhile). A new case has no wrong codes on record."""
    versions = (case.version, len(steps), sum(step.version for step in steps))
    body = json.dumps(public).encode()
    step_ids = tuple(step.id for step in steps)
    views.put(reading, case.id, case.case_no, case.query_code_hash, versions, step_ids, body, clock.today())


class _Public(NamedTuple):
    """A case's public answer as read from the database, with what its lookups are checked against."""

    code_hash: str
    wrong_codes: bool  # on record for its number
    locked_until: dt.datetime | None
    body: bytes


async def _read_public(
    reads: AsyncEngine,
    views: CaseViews,
    case_nos: list[str],
    catalogue: Mapping[str, Matter],
    clock: Clock,
) -> dict[str, _Public]:
    """The public answers of the cases of these numbers (those that exist), each kept in `views` unless
    wrong codes are on record for its number."""
    today = clock.today()
    reading = views.reading()
    async with reads.connect() as conn:
        rows = (await conn.execute(_PUBLIC_CASES, {"case_nos": case_nos})).all()
    answers: dict[str, _Public] = {}
    for case_no, grouped in itertools.groupby(rows, key=lambda row: row.case_no):
        case_rows = list(grouped)
        found = case_rows[0]
        wrong_codes = found.wrong_codes is not None
        if wrong_codes:
            views.forget_number(case_no)  # counted here or by another replica: not kept, the lock checked
        case = Case(**{c.key: found._mapping[c.key] for c in _CASE_COLUMNS})
        step_rows = [row for row in case_rows if row.step_id is not None]
        steps = [
            CaseStep(**{c.key: row._mapping[f"step_{c.key}"] for c in _STEP_COLUMNS}) for row in step_rows
        ]
        body = json.dumps(case_view(case, steps, catalogue, clock, personal=False)).encode()
        versions = (found.version, len(step_rows), sum(row.step_version for row in step_rows))
        step_ids = tuple(row.step_id for row in step_rows)
        views.put(reading, found.id, case_no, found.query_code_hash, versions, step_ids, body, today)
        answers[case_no] = _Public(found.query_code_hash, wrong_codes, found.locked_until, body)
    return answers


# What the applicant is told of a step staff must look at: delayed, never refused.
DELAYED = {
    "DEPARTMENT_UNAVAILABLE": "Delayed: the department could not be reached; staff have been alerted.",
    "UNDO_REFUSED": "The department still holds this step and could not undo it; staff have been alerted.",
    "": "Delayed: staff have been alerted and will move it on.",
}
# What the applicant is told of a step its department keeps although the case failed (``in_force``).
IN_FORCE = "Still in force: the department keeps this record although the case did not go through."
IN_FORCE_ZH = "仍然有效：办件虽未办成，该部门的这项登记仍然保留。"


def kept_in_force(case: Case, steps: list[CaseStep]) -> list[CaseStep]:
    """The steps of a failed case that their departments still hold (never shown as undone)."""
    flags = flags_of(case.outcome or {})
    return [s for s in steps if in_force(flags, StepState(s.state))]


def rejection_view(step: CaseStep, *, personal: bool) -> dict[str, list[str]] | None:
    """A department's reasons for rejecting the step: its words and their codes. Without `personal`
    (the public progress view) the words are masked of any ID, passport or phone number in them."""
    rejection = step.result.get("rejection") if isinstance(step.result, dict) else None
    if not rejection:
        return None
    reasons = [str(r) for r in rejection.get("reasons", [])]
    return {
        "reasons": reasons if personal else [mask_text(r) for r in reasons],
        "codes": [str(c) for c in rejection.get("codes", [])],
    }


def _step_view(step: CaseStep, matter: Matter | None, today: Any, *, personal: bool) -> dict[str, Any]:
    spec = next((s for s in matter.steps if s.key == step.step_key), None) if matter else None
    view: dict[str, Any] = {
        "key": step.step_key,
        "title": spec.title if spec else step.step_key,
        "title_zh": spec.title_zh if spec else step.step_key,
        "department": step.department,
        "state": step.state,
        "department_state": step.department_state,
    }
    if step.statutory_deadline:
        view["statutory_deadline"] = step.statutory_deadline.isoformat()
        view["overdue"] = step.state not in FINAL and today > step.statutory_deadline
    if step.reason:
        view["reason"] = step.reason
    rejection = rejection_view(step, personal=personal)
    if rejection:
        view["rejection"] = rejection
    if step.state == StepState.NEEDS_ATTENTION:
        view["message"] = DELAYED.get(step.reason, DELAYED[""])
    if personal and step.state == StepState.REFUSED and step.message:
        view["department_message"] = mask_text(step.message)
    return view


def shown_results(step: CaseStep) -> dict[str, Any]:
    """What a department produced on the step that its applicant (and staff) may see."""
    action = ACTIONS.get(step.action)
    return {k: step.result[k] for k in (action.shown if action else ()) if k in step.result}


def case_view(
    case: Case, steps: list[CaseStep], catalogue: Mapping[str, Matter], clock: Clock, *, personal: bool
) -> dict[str, Any]:
    """The one status. With `personal` false (anyone holding the query code), no personal data."""
    matter = catalogue.get(case.matter)
    view: dict[str, Any] = {
        "case_no": case.case_no,
        "matter": case.matter,
        "matter_title": matter.title if matter else case.matter,
        "matter_title_zh": matter.title_zh if matter else case.matter,
        "state": case.state,
        "submitted_on": case.submitted_on.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "steps": [_step_view(s, matter, clock.today(), personal=personal) for s in steps],
    }
    if personal:  # what the departments produced, for those entitled (the newborn's ID number, ...)
        for step, shown in zip(steps, view["steps"], strict=True):
            results = shown_results(step)
            if results:
                shown["results"] = results
    kept = {s.step_key for s in kept_in_force(case, steps)}
    for shown in view["steps"]:
        if shown["key"] in kept:
            shown.update(in_force=True, message=IN_FORCE, message_zh=IN_FORCE_ZH)
    if kept:
        view["in_force"] = [s["key"] for s in view["steps"] if s["key"] in kept]
    if case.outcome.get("reason"):
        view["reason"] = case.outcome["reason"]
    rejections = [r for r in (rejection_view(s, personal=personal) for s in steps) if r]
    if rejections:
        view["rejection"] = {
            "reasons": [t for r in rejections for t in r["reasons"]],
            "codes": [c for r in rejections for c in r["codes"]],
        }
    fees = [s.result.get("fee_fen") for s in steps if isinstance(s.result.get("fee_fen"), int)]
    if fees:
        view["fee_fen"] = sum(fees)
    if personal and matter:
        view["applicant"] = {
            spec.path: get_value(case.data, spec.path)
            for spec in matter.fields
            if spec.personal and get_value(case.data, spec.path) is not None
        }
        view["materials"] = materials_received(case, matter)
        if case.hall:
            view["hall"] = case.hall
            view["hall_name"] = region_name(case.hall, "en")
            view["hall_name_zh"] = region_name(case.hall, "zh")
        deadline = expected_date(steps)
        if deadline:
            view["expected_date"] = deadline
    return view


def materials_received(case: Case, matter: Matter) -> list[dict[str, Any]]:
    """Uploaded documents and the in-person materials the counter checked, in the matter's order."""
    checked = case.checked_materials or {}
    received = []
    for spec in matter.materials:
        if spec.key in case.materials:
            ref = case.materials[spec.key]
            received.append(
                {"key": spec.key, "title_zh": spec.title_zh, "how": "upload", "sha256": ref["sha256"]}
            )
        elif spec.key in checked:
            received.append(
                {
                    "key": spec.key,
                    "title_zh": spec.title_zh,
                    "how": "in person",
                    "checked_on": checked[spec.key]["on"],
                }
            )
    return received


def expected_date(steps: list[CaseStep]) -> str | None:
    """The latest statutory deadline of the case's steps (ISO date)."""
    deadlines = [s.statutory_deadline for s in steps if s.statutory_deadline and s.state != StepState.SKIPPED]
    return max(deadlines).isoformat() if deadlines else None
