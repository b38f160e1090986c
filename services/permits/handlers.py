"""The permits service layer: one method per use case, no protobuf.

Each use case takes a ``PermitsUnit`` (one unit of work: the repositories of ``services.permits.store`` on
one session, and the outbox) and plain values or domain types. It loads what the rule needs (locked for a
change), applies the pure domain operation, saves the new state and writes the operation's events to the
outbox in the same transaction. The caller (``servicer.py``) opens and commits the unit, through
``run_idempotent`` for a change so that a repeated request_id answers the stored response.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from services.common.clock import Clock
from services.common.db import UnitOfWork, new_id
from services.common.errors import FailedPrecondition, NotFound
from services.common.events import Changed
from services.common.outbox import EventFeed
from services.permits import domain as d
from services.permits.calendar import CalendarAlarm
from services.permits.domain import events as ev
from services.permits.store import (
    EmployerRepository,
    EmployerRow,
    Page,
    PermitNumberRepository,
    ResidencePermitRecord,
    ResidencePermitRepository,
    WorkPermitRecord,
    WorkPermitRepository,
)

S = d.PermitState
T = TypeVar("T")
Key = tuple[dt.datetime, str]
Materials = list[dict[str, Any]]  # material references: kind, sha256, media_type, size_bytes

# The register's words for a residence permit that followed its work permit's end.
FOLLOWED_REJECTION = "工作许可申请未获批准"
FOLLOWED_CANCELLATION = "所依据的工作许可已注销"


def replaced_by(number: str) -> str:
    return f"由新居留许可 {number} 取代（变更工作单位）"


# ----------------------------------------------------------------------------------------------------------
# The unit of work and its repositories, as the handlers use them (store.py has them on SQL; the unit
# tests have them in memory)
# ----------------------------------------------------------------------------------------------------------


class Employers(Protocol):
    async def add(self, employer: d.Employer, now: dt.datetime) -> EmployerRow: ...
    async def get(self, employer_id: str, *, for_update: bool = False) -> EmployerRow: ...
    async def get_by_uscc(self, uscc: str) -> EmployerRow | None: ...
    async def set_status(
        self, row: EmployerRow, status: d.EmployerStatus, reason: str, now: dt.datetime
    ) -> bool: ...


class WorkPermits(Protocol):
    async def add(
        self,
        app: d.WorkPermitApplication,
        employer_id: str,
        annual_salary_fen: int,
        materials: Materials,
        now: dt.datetime,
    ) -> WorkPermitRecord: ...
    async def get(self, application_id: str, *, for_update: bool = False) -> WorkPermitRecord: ...
    async def save(
        self,
        record: WorkPermitRecord,
        now: dt.datetime,
        *,
        added_materials: Materials | None = None,
        removed_kinds: frozenset[str] = frozenset(),
        cancellation_reason: str | None = None,
    ) -> None: ...
    async def for_residence(
        self, nationality: str, passport_number: str, work_permit_id: str
    ) -> WorkPermitRecord | None: ...
    async def for_verification(self, number: str) -> WorkPermitRecord | None: ...
    async def page(
        self,
        *,
        limit: int,
        after: Key | None,
        nationality: str = "",
        passport_number: str = "",
        employer_uscc: str = "",
        state: d.PermitState | None = None,
    ) -> Page[WorkPermitRecord]: ...


class ResidencePermits(Protocol):
    async def add(
        self, app: d.ResidencePermitApplication, materials: Materials, now: dt.datetime
    ) -> ResidencePermitRecord: ...
    async def get(self, application_id: str, *, for_update: bool = False) -> ResidencePermitRecord: ...
    async def resting_on(self, work_permit_id: str) -> list[ResidencePermitRecord]: ...
    async def get_by_number(self, number: str) -> ResidencePermitRecord | None: ...
    async def save(
        self,
        record: ResidencePermitRecord,
        now: dt.datetime,
        *,
        added_materials: Materials | None = None,
        removed_kinds: frozenset[str] = frozenset(),
        cancellation_reason: str | None = None,
    ) -> None: ...
    async def page(
        self,
        *,
        limit: int,
        after: Key | None,
        nationality: str = "",
        passport_number: str = "",
        state: d.PermitState | None = None,
    ) -> Page[ResidencePermitRecord]: ...


class PermitNumbers(Protocol):
    async def kind_of(self, number: str) -> d.PermitKind | None: ...
    async def lifelong_work_permit_number(
        self, nationality: str, passport_number: str, region: str, now: dt.datetime
    ) -> str: ...
    async def residence_permit_number(self, region: str, now: dt.datetime) -> str: ...


class PermitsUnit(Protocol):
    @property
    def employers(self) -> Employers: ...
    @property
    def work_permits(self) -> WorkPermits: ...
    @property
    def residence_permits(self) -> ResidencePermits: ...
    @property
    def permit_numbers(self) -> PermitNumbers: ...

    async def record(self, event: ev.PermitsEvent, *, now: dt.datetime, request_id: str) -> None:
        """Write `event` to the outbox, committed with the unit."""
        ...


class SqlPermitsUnit:
    """The repositories of ``store.py`` on one unit of work's session, and its outbox."""

    def __init__(self, uow: UnitOfWork, feed: EventFeed) -> None:
        self.uow = uow
        self.feed = feed
        self.employers = EmployerRepository(uow.session)
        self.work_permits = WorkPermitRepository(uow.session)
        self.residence_permits = ResidencePermitRepository(uow.session)
        self.permit_numbers = PermitNumberRepository(uow.session)

    async def record(self, event: ev.PermitsEvent, *, now: dt.datetime, request_id: str) -> None:
        await self.feed.record(
            self.uow, event.type, event.aggregate_id, event.payload(), occurred_at=now, request_id=request_id
        )


def _provisional_deadline(event: ev.PermitsEvent) -> tuple[int, str] | None:
    """The year and kind of a deadline in `event` counted into a provisional calendar year, if any."""
    if isinstance(event, ev.WorkPermitUnderReview | ev.WorkPermitReviewExtended):
        if event.calendar_provisional and event.decision_due is not None:
            return event.decision_due.year, "work permit decision due"
    elif (
        isinstance(event, ev.ResidencePermitUnderReview)
        and event.calendar_provisional
        and event.decision_target is not None
    ):
        return event.decision_target.year, "residence permit decision target"
    return None


@dataclass(frozen=True, slots=True)
class Quote:
    """The department's own figures for a day: decision dates and a residence permit's fee (yuan)."""

    on: dt.date
    work_permit_decision_due: dt.date
    work_permit_short_stay_decision_due: dt.date
    residence_permit_decision_due: dt.date
    residence_permit_fee_yuan: int | None
    calendar_provisional: bool


@dataclass(frozen=True, slots=True)
class WorkingDays:
    counts: tuple[int, ...]
    last_published_year: int | None
    calendar_provisional: bool


# ----------------------------------------------------------------------------------------------------------
# The use cases
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PermitsHandlers:
    """The department's use cases with its policy, clock and calendar alarm."""

    policy: d.PermitsPolicy
    clock: Clock
    alarm: CalendarAlarm

    async def _emit(self, uow: PermitsUnit, events: Iterable[Any], request_id: str, now: dt.datetime) -> None:
        """Write `events` to the outbox, in order; a deadline counted into a provisional calendar year
        raises the operator alarm (logged and counted)."""
        for event in events:
            assert isinstance(event, ev.PermitsEvent)
            if (alarm := _provisional_deadline(event)) is not None:
                self.alarm.provisional(*alarm)
            await uow.record(event, now=now, request_id=request_id)

    # -- employers -------------------------------------------------------------------------------------------

    async def register_employer(
        self, uow: PermitsUnit, uscc: str, name: str, address: str, *, request_id: str
    ) -> EmployerRow:
        employer = d.register_employer(uscc, name, address)
        now = self.clock.now()
        row = await uow.employers.add(employer, now)
        event = ev.EmployerRegistered(row.id, d.EmployerStatus(row.status))
        await self._emit(uow, (event,), request_id, now)
        return row

    async def get_employer(self, uow: PermitsUnit, employer_id: str, uscc: str) -> EmployerRow:
        """By id, else by unified social credit code."""
        if employer_id:
            return await uow.employers.get(employer_id)
        found = await uow.employers.get_by_uscc(d.compact_uscc(uscc))
        if found is None:
            raise NotFound("no such employer")
        return found

    async def set_employer_status(
        self, uow: PermitsUnit, employer_id: str, status: d.EmployerStatus, reason: str, *, request_id: str
    ) -> EmployerRow:
        now = self.clock.now()
        row = await uow.employers.get(employer_id, for_update=True)
        if await uow.employers.set_status(row, status, reason.strip(), now):
            await self._emit(uow, (ev.EmployerStatusChanged(row.id, status),), request_id, now)
        return row

    # -- work permits ----------------------------------------------------------------------------------------

    async def create_work_permit(
        self,
        uow: PermitsUnit,
        request: d.WorkPermitRequest,
        annual_salary_fen: int,
        materials: Materials,
        *,
        request_id: str,
    ) -> WorkPermitRecord:
        """`request` validated (``d.validate_work_permit_request``); the employer must be registered."""
        today, now = self.clock.today(), self.clock.now()
        employer = await uow.employers.get_by_uscc(request.employer_uscc)
        if employer is None:
            raise FailedPrecondition("EMPLOYER_NOT_REGISTERED", "the employer is not registered")
        submitted = d.submit_work_permit(
            new_id(), request, employer.to_domain(), today, self.policy, employer_id=employer.id
        )
        app, events = submitted.state, submitted.events
        if materials:
            supplied = app.supply_materials([m["kind"] for m in materials], today, self.policy)
            app, events = supplied.state, events + supplied.events
        record = await uow.work_permits.add(app, employer.id, annual_salary_fen, materials, now)
        await self._emit(uow, events, request_id, now)
        return record

    async def work_permit(self, uow: PermitsUnit, application_id: str) -> WorkPermitRecord:
        return await uow.work_permits.get(application_id)

    async def work_permits(
        self,
        uow: PermitsUnit,
        *,
        limit: int,
        after: Key | None,
        nationality: str,
        passport_number: str,
        employer_uscc: str,
        state: d.PermitState | None,
    ) -> Page[WorkPermitRecord]:
        """Newest first, `limit` at most, after the page key `after`."""
        return await uow.work_permits.page(
            limit=limit,
            after=after,
            nationality=nationality,
            passport_number=passport_number,
            employer_uscc=employer_uscc,
            state=state,
        )

    async def _change_work_permit(
        self,
        uow: PermitsUnit,
        record: WorkPermitRecord,
        changed: d.Supplied[d.WorkPermitApplication] | Changed[d.WorkPermitApplication],
        request_id: str,
        now: dt.datetime,
        **saved: Any,
    ) -> WorkPermitRecord:
        record.app = changed.state
        await uow.work_permits.save(record, now, **saved)
        await self._emit(uow, changed.events, request_id, now)
        return record

    async def supply_work_permit_materials(
        self, uow: PermitsUnit, application_id: str, materials: Materials, *, request_id: str
    ) -> WorkPermitRecord:
        """Notice materials, or after-entry materials once the notice is approved."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        kinds = [m["kind"] for m in materials]
        if record.app.state is S.APPROVED:
            supplied = record.app.supply_after_entry_materials(kinds, today, self.policy)
        else:
            supplied = record.app.supply_materials(kinds, today, self.policy)
        return await self._change_work_permit(
            uow, record, supplied, request_id, now, added_materials=materials
        )

    async def request_work_permit_materials(
        self, uow: PermitsUnit, application_id: str, kinds: frozenset[str], *, request_id: str
    ) -> WorkPermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        changed = record.app.request_materials(kinds, today)
        return await self._change_work_permit(uow, record, changed, request_id, now, removed_kinds=kinds)

    async def extend_work_permit_review(
        self, uow: PermitsUnit, application_id: str, *, request_id: str
    ) -> WorkPermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        changed = record.app.extend_review(today, self.policy)
        return await self._change_work_permit(uow, record, changed, request_id, now)

    async def _decide_work_permit(
        self,
        uow: PermitsUnit,
        record: WorkPermitRecord,
        residence: Sequence[ResidencePermitRecord],
        decided: d.WorkPermitDecided,
        request_id: str,
        now: dt.datetime,
        *,
        followed_reason: str | None = None,
        cancellation_reason: str | None = None,
    ) -> WorkPermitRecord:
        """Save a work permit decision and the residence permits it changed, then publish its events."""
        by_id = {r.app.id: r for r in residence}
        for app in decided.residence_permits:
            follower = by_id[app.id]
            follower.app = app
            await uow.residence_permits.save(follower, now, cancellation_reason=followed_reason)
        record.app = decided.work_permit
        await uow.work_permits.save(record, now, cancellation_reason=cancellation_reason)
        await self._emit(uow, decided.events, request_id, now)
        return record

    async def approve_work_permit(
        self, uow: PermitsUnit, application_id: str, *, request_id: str
    ) -> WorkPermitRecord:
        """Residence permits lodged with it start their decision clock."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        record.app.approve(today)  # refused before the residence permits are locked
        residence = await uow.residence_permits.resting_on(application_id)
        decided = d.approve_work_permit(record.app, [r.app for r in residence], today, self.policy)
        return await self._decide_work_permit(uow, record, residence, decided, request_id, now)

    async def reject_work_permit(
        self,
        uow: PermitsUnit,
        application_id: str,
        reasons: Sequence[str],
        codes: Sequence[str],
        *,
        request_id: str,
    ) -> WorkPermitRecord:
        """`codes` checked (``d.check_rejection_codes``); the open residence permits resting on it are
        cancelled."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        record.app.reject(reasons, today, codes)
        residence = await uow.residence_permits.resting_on(application_id)
        decided = d.reject_work_permit(record.app, [r.app for r in residence], reasons, today, codes)
        return await self._decide_work_permit(
            uow, record, residence, decided, request_id, now, followed_reason=FOLLOWED_REJECTION
        )

    async def issue_work_permit(
        self, uow: PermitsUnit, application_id: str, *, request_id: str
    ) -> WorkPermitRecord:
        """The person's lifelong permit number (allocated once, on the first issue)."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        app = record.app
        if app.state is not S.APPROVED:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {app.state.value} to ISSUED")
        number = await uow.permit_numbers.lifelong_work_permit_number(
            app.applicant.nationality, app.applicant.passport_number, app.request.work_region, now
        )
        changed = app.issue(number, today, self.policy)
        return await self._change_work_permit(uow, record, changed, request_id, now)

    async def cancel_work_permit(
        self, uow: PermitsUnit, application_id: str, reason: str, *, request_id: str
    ) -> WorkPermitRecord:
        """Every residence permit resting on it is cancelled too (an issued one verifies invalid from now)."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.work_permits.get(application_id, for_update=True)
        record.app.cancel(today)
        residence = await uow.residence_permits.resting_on(application_id)
        decided = d.cancel_work_permit(record.app, [r.app for r in residence], today)
        return await self._decide_work_permit(
            uow,
            record,
            residence,
            decided,
            request_id,
            now,
            followed_reason=FOLLOWED_CANCELLATION,
            cancellation_reason=reason.strip(),
        )

    # -- residence permits -----------------------------------------------------------------------------------

    async def create_residence_permit(
        self,
        uow: PermitsUnit,
        person: d.Applicant,
        work_permit_id: str,
        held_number: str,
        entry_date: dt.date | None,
        requested_valid_until: dt.date | None,
        materials: Materials,
        *,
        request_id: str,
    ) -> ResidencePermitRecord:
        """`person` names only the nationality and passport number (the rest comes from the work permit);
        `held_number` is the residence permit held until a job change ("" for a first permit)."""
        today, now = self.clock.today(), self.clock.now()
        work_permit = await uow.work_permits.for_residence(
            person.nationality, person.passport_number, work_permit_id
        )
        held = await uow.residence_permits.get_by_number(held_number) if held_number else None
        submitted = d.submit_residence_permit(
            new_id(),
            person,
            work_permit.app if work_permit else None,
            entry_date,
            requested_valid_until,
            today,
            self.policy,
            held_permit=held.app if held else None,
            job_change=bool(held_number),
        )
        app, events = submitted.state, submitted.events
        if materials:
            supplied = app.supply_materials([m["kind"] for m in materials], today, self.policy)
            app, events = supplied.state, events + supplied.events
        record = await uow.residence_permits.add(app, materials, now)
        await self._emit(uow, events, request_id, now)
        return record

    async def residence_permit(self, uow: PermitsUnit, application_id: str) -> ResidencePermitRecord:
        return await uow.residence_permits.get(application_id)

    async def residence_permits(
        self,
        uow: PermitsUnit,
        *,
        limit: int,
        after: Key | None,
        nationality: str,
        passport_number: str,
        state: d.PermitState | None,
    ) -> Page[ResidencePermitRecord]:
        """Newest first, `limit` at most, after the page key `after`."""
        return await uow.residence_permits.page(
            limit=limit, after=after, nationality=nationality, passport_number=passport_number, state=state
        )

    async def _change_residence_permit(
        self,
        uow: PermitsUnit,
        record: ResidencePermitRecord,
        changed: d.Supplied[d.ResidencePermitApplication] | Changed[d.ResidencePermitApplication],
        request_id: str,
        now: dt.datetime,
        **saved: Any,
    ) -> ResidencePermitRecord:
        record.app = changed.state
        await uow.residence_permits.save(record, now, **saved)
        await self._emit(uow, changed.events, request_id, now)
        return record

    async def supply_residence_permit_materials(
        self, uow: PermitsUnit, application_id: str, materials: Materials, *, request_id: str
    ) -> ResidencePermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        supplied = record.app.supply_materials([m["kind"] for m in materials], today, self.policy)
        return await self._change_residence_permit(
            uow, record, supplied, request_id, now, added_materials=materials
        )

    async def request_residence_permit_materials(
        self, uow: PermitsUnit, application_id: str, kinds: frozenset[str], *, request_id: str
    ) -> ResidencePermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        changed = record.app.request_materials(kinds, today)
        return await self._change_residence_permit(uow, record, changed, request_id, now, removed_kinds=kinds)

    async def approve_residence_permit(
        self, uow: PermitsUnit, application_id: str, *, request_id: str
    ) -> ResidencePermitRecord:
        """The work permit it rests on is checked again (it must be approved or issued by now)."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        if record.app.state is not S.UNDER_REVIEW:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"cannot go from {record.app.state.value} to APPROVED"
            )
        work_permit = await uow.work_permits.get(record.app.work_permit_id)
        changed = record.app.approve(work_permit.app, today, self.policy)
        return await self._change_residence_permit(uow, record, changed, request_id, now)

    async def reject_residence_permit(
        self,
        uow: PermitsUnit,
        application_id: str,
        reasons: Sequence[str],
        codes: Sequence[str],
        *,
        request_id: str,
    ) -> ResidencePermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        changed = record.app.reject(reasons, today, codes)
        return await self._change_residence_permit(uow, record, changed, request_id, now)

    async def issue_residence_permit(
        self, uow: PermitsUnit, application_id: str, *, request_id: str
    ) -> ResidencePermitRecord:
        """A new number in the work permit's region; on a job change the permit held until now is
        replaced (cancelled, its events published first)."""
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        app = record.app
        if app.state is not S.APPROVED:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {app.state.value} to ISSUED")
        work_permit = await uow.work_permits.get(app.work_permit_id)
        number = await uow.permit_numbers.residence_permit_number(work_permit.app.request.work_region, now)
        changed = app.issue(number, today)
        if app.replaces_id:
            old = await uow.residence_permits.get(app.replaces_id, for_update=True)
            replaced = old.app.replaced(today)
            if replaced is not None:
                await self._change_residence_permit(
                    uow, old, replaced, request_id, now, cancellation_reason=replaced_by(number)
                )
        return await self._change_residence_permit(uow, record, changed, request_id, now)

    async def cancel_residence_permit(
        self, uow: PermitsUnit, application_id: str, reason: str, *, request_id: str
    ) -> ResidencePermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        changed = record.app.cancel(today, cause="WITHDRAWN")
        return await self._change_residence_permit(
            uow, record, changed, request_id, now, cancellation_reason=reason.strip()
        )

    async def extend_residence_permit(
        self, uow: PermitsUnit, application_id: str, requested_until: dt.date | None, *, request_id: str
    ) -> ResidencePermitRecord:
        today, now = self.clock.today(), self.clock.now()
        record = await uow.residence_permits.get(application_id, for_update=True)
        work_permit = await uow.work_permits.get(record.app.work_permit_id)
        changed = record.app.extend(requested_until, work_permit.app, today, self.policy)
        return await self._change_residence_permit(uow, record, changed, request_id, now)

    # -- quotes and working days (no unit of work: the policy's own rules) -----------------------------------

    def _counted(self, what: str, count: Callable[[], T]) -> T:
        """`count()`, raising the operator alarm when it reaches a year no calendar source covers."""
        try:
            return count()
        except d.CalendarNotCovered as exc:
            self.alarm.raised(exc, what)
            raise

    def quote(self, on: dt.date, validity: d.Validity | None) -> Quote:
        """The decision days counted from `on`, and the fee of a residence permit of `validity` (at least
        the minimum days: ``VALIDITY_TOO_SHORT``)."""
        calendar, deadlines, limits = self.policy.calendar, self.policy.deadlines, self.policy.validity
        wp_due = self._counted(
            "QuotePermits", lambda: calendar.add_working_days(on, deadlines.work_permit_working_days)
        )
        short_due = self._counted(
            "QuotePermits",
            lambda: calendar.add_working_days(on, deadlines.work_permit_short_stay_working_days),
        )
        last = max(wp_due, short_due)
        provisional = calendar.is_provisional(last) and self.alarm.provisional(last.year, "QuotePermits")
        fee = None
        if validity is not None:
            if validity.days < limits.residence_min_days:
                raise FailedPrecondition(
                    "VALIDITY_TOO_SHORT",
                    f"a residence permit is valid for at least {limits.residence_min_days} days",
                )
            fee = d.residence_fee(validity, self.policy.residence_fee_tiers)
        return Quote(
            on,
            wp_due,
            short_due,
            on + dt.timedelta(days=deadlines.residence_decision_calendar_days),
            fee,
            provisional,
        )

    def count_working_days(self, spans: Sequence[tuple[dt.date, dt.date]]) -> WorkingDays:
        """Working days `d` with ``start < d <= end`` for each span; provisional when any span relies on a
        year without a published notice."""
        calendar = self.policy.calendar
        counts = self._counted(
            "CountWorkingDays", lambda: [calendar.working_days_between(start, end) for start, end in spans]
        )
        years = [y for y in (calendar.provisional_year(start, end) for start, end in spans) if y is not None]
        provisional = self.alarm.provisional(min(years) if years else None, "CountWorkingDays")
        return WorkingDays(tuple(counts), calendar.last_published_year, provisional)

    # -- verification ----------------------------------------------------------------------------------------

    async def verify_permit(self, uow: PermitsUnit, number: str) -> d.PermitVerification:
        """What another government system may learn from a permit number (checked by the caller)."""
        kind = await uow.permit_numbers.kind_of(number)
        record: WorkPermitRecord | ResidencePermitRecord | None = None
        if kind is d.PermitKind.WORK_PERMIT:
            record = await uow.work_permits.for_verification(number)
        elif kind is d.PermitKind.RESIDENCE_PERMIT:
            record = await uow.residence_permits.get_by_number(number)
        if record is None:
            raise NotFound("no such permit")
        return d.verify_permit(record.app, self.clock.today())
