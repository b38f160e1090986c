"""In-memory repositories and unit of work for the permits service layer (``handlers.PermitsUnit``): no
database.

Rows are the store's own ORM classes, built in memory (never added to a session), and written by the
store's own ``save`` (which touches only the row), so the handlers see what the real repositories return.
`locked` lists what was read FOR UPDATE, `saved` what was written, `outbox` the events recorded."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from services.common.errors import AlreadyExists, NotFound
from services.permits import domain as d
from services.permits.domain import events as ev
from services.permits.store import (
    EmployerRepository,
    EmployerRow,
    Page,
    ResidencePermitRecord,
    ResidencePermitRepository,
    ResidencePermitRow,
    WorkPermitRecord,
    WorkPermitRepository,
    WorkPermitRow,
    _merge_references,
    _plain,
)

_ids = itertools.count(1)


def _id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


class Journal:
    """What the unit did, in order."""

    def __init__(self) -> None:
        self.locked: list[tuple[str, str]] = []
        self.saved: list[tuple[str, str]] = []


class FakeEmployers(EmployerRepository):
    def __init__(self, journal: Journal) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # set_status touches only the row
        self.journal = journal
        self.rows: dict[str, EmployerRow] = {}

    async def add(self, employer: d.Employer, now: dt.datetime) -> EmployerRow:
        if await self.get_by_uscc(employer.uscc) is not None:
            raise AlreadyExists("an employer with this unified social credit code is registered")
        row = EmployerRow(
            id=_id("employer"),
            uscc=employer.uscc,
            name=employer.name,
            address=employer.address,
            status=employer.status.value,
            status_reason="",
            created_at=now,
            updated_at=now,
        )
        self.rows[row.id] = row
        return row

    async def get(self, employer_id: str, *, for_update: bool = False) -> EmployerRow:
        if employer_id not in self.rows:
            raise NotFound("no such employer")
        if for_update:
            self.journal.locked.append(("employer", employer_id))
        return self.rows[employer_id]

    async def get_by_uscc(self, uscc: str) -> EmployerRow | None:
        return next((r for r in self.rows.values() if r.uscc == uscc), None)


class FakeWorkPermits(WorkPermitRepository):
    def __init__(self, journal: Journal) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # save touches only the row
        self.journal = journal
        self.rows: dict[str, WorkPermitRow] = {}

    async def add(
        self,
        app: d.WorkPermitApplication,
        employer_id: str,
        annual_salary_fen: int,
        materials: list[dict[str, Any]],
        now: dt.datetime,
    ) -> WorkPermitRecord:
        key = self._open_key(app)
        if key is not None and any(r.open_key == key for r in self.rows.values()):
            raise AlreadyExists("this person already has an open work permit application with this employer")
        a = app.applicant
        row = WorkPermitRow(
            id=app.id,
            employer_id=employer_id,
            employer_uscc=app.request.employer_uscc,
            nationality=a.nationality,
            passport_number=a.passport_number,
            request=_plain(app.request),
            annual_salary_fen=annual_salary_fen,
            points={
                "table_version": app.points.table_version,
                "items": dict(app.points.items),
                "total": app.points.total,
            },
            category_grounds=list(app.category_grounds),
            materials=_merge_references([], materials),
            cancellation_reason="",
            created_at=now,
        )
        self._write(app, row, now)
        self.rows[row.id] = row
        self.journal.saved.append(("work_permit", app.id))
        return WorkPermitRecord(app, row)

    async def get(self, application_id: str, *, for_update: bool = False) -> WorkPermitRecord:
        row = self.rows.get(application_id)
        if row is None:
            raise NotFound("no such work permit application")
        if for_update:
            self.journal.locked.append(("work_permit", application_id))
        return WorkPermitRecord(self.to_domain(row), row)

    async def save(self, record: WorkPermitRecord, now: dt.datetime, **kwargs: Any) -> None:
        await super().save(record, now, **kwargs)
        self.journal.saved.append(("work_permit", record.app.id))

    async def for_residence(
        self, nationality: str, passport_number: str, work_permit_id: str
    ) -> WorkPermitRecord | None:
        if work_permit_id:
            row = self.rows.get(work_permit_id)
        else:
            mine = [
                r
                for r in self.rows.values()
                if (r.nationality, r.passport_number) == (nationality, passport_number)
            ]
            valid = [r for r in mine if r.state in ("APPROVED", "ISSUED")]
            latest = valid or mine
            row = latest[-1] if latest else None
        return None if row is None else WorkPermitRecord(self.to_domain(row), row)

    async def for_verification(self, number: str) -> WorkPermitRecord | None:
        rows = [r for r in self.rows.values() if r.permit_number == number]
        return WorkPermitRecord(self.to_domain(rows[-1]), rows[-1]) if rows else None

    async def page(self, **kwargs: Any) -> Page[WorkPermitRecord]:
        rows = list(self.rows.values())
        return Page([WorkPermitRecord(self.to_domain(r), r) for r in rows], False, None)


class FakeResidencePermits(ResidencePermitRepository):
    def __init__(self, journal: Journal) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # save touches only the row
        self.journal = journal
        self.rows: dict[str, ResidencePermitRow] = {}

    async def add(
        self, app: d.ResidencePermitApplication, materials: list[dict[str, Any]], now: dt.datetime
    ) -> ResidencePermitRecord:
        key = self._open_key(app)
        if key is not None and any(r.open_key == key for r in self.rows.values()):
            raise AlreadyExists("this person already has an open residence permit application")
        a = app.applicant
        row = ResidencePermitRow(
            id=app.id,
            work_permit_id=app.work_permit_id,
            nationality=a.nationality,
            passport_number=a.passport_number,
            applicant=_plain(a),
            entry_date=app.entry_date,
            requested_valid_until=app.requested_valid_until,
            materials=_merge_references([], materials),
            cancellation_reason="",
            created_at=now,
        )
        self._write(app, row, now)
        self.rows[row.id] = row
        self.journal.saved.append(("residence_permit", app.id))
        return ResidencePermitRecord(app, row)

    async def get(self, application_id: str, *, for_update: bool = False) -> ResidencePermitRecord:
        row = self.rows.get(application_id)
        if row is None:
            raise NotFound("no such residence permit application")
        if for_update:
            self.journal.locked.append(("residence_permit", application_id))
        return ResidencePermitRecord(self.to_domain(row), row)

    async def resting_on(self, work_permit_id: str) -> list[ResidencePermitRecord]:
        rows = [r for r in self.rows.values() if r.work_permit_id == work_permit_id]
        self.journal.locked.extend(("residence_permit", r.id) for r in rows)
        return [ResidencePermitRecord(self.to_domain(r), r) for r in rows]

    async def get_by_number(self, number: str) -> ResidencePermitRecord | None:
        row = next((r for r in self.rows.values() if r.permit_number == number), None)
        return None if row is None else ResidencePermitRecord(self.to_domain(row), row)

    async def save(self, record: ResidencePermitRecord, now: dt.datetime, **kwargs: Any) -> None:
        await super().save(record, now, **kwargs)
        self.journal.saved.append(("residence_permit", record.app.id))

    async def page(self, **kwargs: Any) -> Page[ResidencePermitRecord]:
        rows = list(self.rows.values())
        return Page([ResidencePermitRecord(self.to_domain(r), r) for r in rows], False, None)


class FakePermitNumbers:
    """One sequence for both kinds; a person's work permit number once for life."""

    def __init__(self) -> None:
        self.kinds: dict[str, d.PermitKind] = {}
        self.holders: dict[str, str] = {}
        self._sequence = itertools.count(1)

    def _next(self, kind: d.PermitKind, region: str) -> str:
        number = d.permit_number(next(self._sequence), region)
        self.kinds[number] = kind
        return number

    async def kind_of(self, number: str) -> d.PermitKind | None:
        return self.kinds.get(number)

    async def lifelong_work_permit_number(
        self, nationality: str, passport_number: str, region: str, now: dt.datetime
    ) -> str:
        key = f"{nationality}:{passport_number}"
        if key not in self.holders:
            self.holders[key] = self._next(d.PermitKind.WORK_PERMIT, region)
        return self.holders[key]

    async def residence_permit_number(self, region: str, now: dt.datetime) -> str:
        return self._next(d.PermitKind.RESIDENCE_PERMIT, region)


class FakeUnit:
    """A ``PermitsUnit`` over the in-memory registers; `outbox` holds (type, aggregate id, payload)."""

    def __init__(self) -> None:
        self.journal = Journal()
        self.employers = FakeEmployers(self.journal)
        self.work_permits = FakeWorkPermits(self.journal)
        self.residence_permits = FakeResidencePermits(self.journal)
        self.permit_numbers = FakePermitNumbers()
        self.outbox: list[tuple[str, str, dict[str, Any]]] = []

    async def record(self, event: ev.PermitsEvent, *, now: dt.datetime, request_id: str) -> None:
        self.outbox.append((event.type, event.aggregate_id, event.payload()))

    def types(self) -> list[str]:
        return [t for t, _, _ in self.outbox]
