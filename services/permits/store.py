"""The permits department's tables and repositories.

Each repository works inside one unit of work (its session) and speaks in domain objects: it loads an
application as a ``services.permits.domain`` object, and writes it back with ``save``. The submitted request
(applicant, contract, points items, ...) is kept as one JSON document, since it never changes after
submission; everything that moves (state, materials, deadlines, validity, numbers) has its own column.

Uniqueness is enforced by the database, so that two replicas or two concurrent requests cannot break it:

* ``employers.uscc`` is unique;
* ``open_key`` on the applications is set while an application is open and NULL once it is issued, rejected
  or cancelled, with a unique constraint (NULLs never collide): one open work permit application per person
  and employer, one open residence permit application per person;
* ``permit_numbers.sequence``, ``.number`` and ``.holder_key`` are unique: permit numbers come from one
  sequence shared by both kinds of permit (so a number names its kind), and a person's lifelong work permit
  number is allocated once per nationality + normalised passport number.

On PostgreSQL a unique insert runs in a savepoint so that losing a race is seen at once and answered (retry
the next sequence number, or ALREADY_EXISTS) instead of failing the whole transaction. SQLite has one writer
per process (one pooled connection), so no race can happen there and no savepoint is used (pysqlite's
SAVEPOINT handling would commit the outer transaction early).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.audit import AuditMixin
from services.common.db import NAMING, JsonType, UTCDateTime, new_id
from services.common.errors import AlreadyExists, NotFound
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin
from services.permits import domain as d


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency"


class AuditEntry(AuditMixin, Base):
    __tablename__ = "audit_log"


OPEN_STATES = frozenset(
    {
        d.PermitState.SUBMITTED,
        d.PermitState.AWAITING_MATERIALS,
        d.PermitState.UNDER_REVIEW,
        d.PermitState.APPROVED,
    }
)


def person_key(nationality: str, passport_number: str) -> str:
    """How the department tells people apart: nationality plus normalised passport number."""
    return f"{nationality}:{passport_number}"


# ----------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------


class EmployerRow(Base):
    __tablename__ = "employers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    def to_domain(self) -> d.Employer:
        return d.Employer(self.uscc, self.name, self.address, d.EmployerStatus(self.status))


class WorkPermitRow(Base):
    __tablename__ = "work_permit_applications"
    __table_args__ = (
        Index("ix_work_permit_applications_person", "nationality", "passport_number"),
        Index("ix_work_permit_applications_listing", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    employer_id: Mapped[str] = mapped_column(ForeignKey("employers.id"), index=True)
    employer_uscc: Mapped[str] = mapped_column(String(18), index=True)
    nationality: Mapped[str] = mapped_column(String(3))
    passport_number: Mapped[str] = mapped_column(String(17))
    state: Mapped[str] = mapped_column(String(24), index=True)
    category: Mapped[str] = mapped_column(String(1))
    # Set while open (see OPEN_STATES), NULL otherwise: one open application per person and employer.
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The salary as submitted, in fen (the domain scores whole yuan).
    annual_salary_fen: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[dict[str, Any]] = mapped_column(JsonType)
    category_grounds: Mapped[list[str]] = mapped_column(JsonType)
    supplied_materials: Mapped[list[str]] = mapped_column(JsonType)
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    submitted_on: Mapped[dt.date] = mapped_column(Date)
    materials_complete_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    decision_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    rejection_reasons: Mapped[list[str]] = mapped_column(JsonType)
    # The machine code of each rejection reason (NULL: none recorded).
    rejection_codes: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    cancellation_reason: Mapped[str] = mapped_column(Text, default="")
    permit_number: Mapped[str | None] = mapped_column(String(18), nullable=True, index=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ResidencePermitRow(Base):
    __tablename__ = "residence_permit_applications"
    __table_args__ = (
        Index("ix_residence_permit_applications_person", "nationality", "passport_number"),
        Index("ix_residence_permit_applications_listing", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    work_permit_id: Mapped[str] = mapped_column(ForeignKey("work_permit_applications.id"), index=True)
    nationality: Mapped[str] = mapped_column(String(3))
    passport_number: Mapped[str] = mapped_column(String(17))
    applicant: Mapped[dict[str, Any]] = mapped_column(JsonType)
    state: Mapped[str] = mapped_column(String(24), index=True)
    category: Mapped[str] = mapped_column(String(1))
    # Set while open, NULL otherwise: one open residence permit application per person.
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)
    # NULL for a job change inside China (no entry).
    entry_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    requested_valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    supplied_materials: Mapped[list[str]] = mapped_column(JsonType)
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    submitted_on: Mapped[dt.date] = mapped_column(Date)
    materials_complete_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    decision_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    decision_target: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    fee_yuan: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rejection_reasons: Mapped[list[str]] = mapped_column(JsonType)
    rejection_codes: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    # Lodged while its work permit was in review: decided after the work permit's approval.
    awaiting_work_permit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A job change: the issued residence permit application this one replaces once issued.
    replaces_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cancellation_reason: Mapped[str] = mapped_column(Text, default="")
    permit_number: Mapped[str | None] = mapped_column(String(18), unique=True, nullable=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PermitNumberRow(Base):
    """Every permit number ever given out, from one sequence for both kinds of permit."""

    __tablename__ = "permit_numbers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, unique=True)
    number: Mapped[str] = mapped_column(String(18), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    # The person (nationality:passport) of a lifelong work permit number; NULL for residence permits.
    holder_key: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# ----------------------------------------------------------------------------------------------------------
# JSON documents <-> domain values
# ----------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _applicant_from(doc: dict[str, Any]) -> d.Applicant:
    return d.Applicant(
        passport_number=doc["passport_number"],
        nationality=doc["nationality"],
        surname=doc["surname"],
        given_names=doc["given_names"],
        birth_date=dt.date.fromisoformat(doc["birth_date"]),
        sex=d.Sex(doc["sex"]),
    )


def _request_from(doc: dict[str, Any]) -> d.WorkPermitRequest:
    values = dict(doc)
    values["applicant"] = _applicant_from(doc["applicant"])
    values["contract"] = d.Contract(
        dt.date.fromisoformat(doc["contract"]["start_date"]),
        dt.date.fromisoformat(doc["contract"]["end_date"]),
    )
    values["education"] = d.Education(doc["education"])
    values["special_criteria"] = frozenset(d.SpecialCriterion(c) for c in doc["special_criteria"])
    return d.WorkPermitRequest(**values)


def _validity(valid_from: dt.date | None, valid_until: dt.date | None) -> d.Validity | None:
    if valid_from is None or valid_until is None:
        return None
    return d.Validity(valid_from, valid_until)


def _merge_references(
    current: list[dict[str, Any]], added: list[dict[str, Any]], removed_kinds: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    refs = [r for r in current if r["kind"] not in removed_kinds]
    for ref in added:
        if ref not in refs:
            refs.append(ref)
    return refs


# ----------------------------------------------------------------------------------------------------------
# Records: a domain object with what only the department's register knows
# ----------------------------------------------------------------------------------------------------------


@dataclass
class WorkPermitRecord:
    app: d.WorkPermitApplication
    row: WorkPermitRow


@dataclass
class ResidencePermitRecord:
    app: d.ResidencePermitApplication
    row: ResidencePermitRow


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    last_key: tuple[dt.datetime, str] | None = field(default=None)


async def _insert_unique(session: AsyncSession, row: Base) -> bool:
    """Insert `row` now; False if a unique constraint refused it (the transaction stays usable)."""
    if session.bind.dialect.name == "sqlite":
        session.add(row)
        await session.flush()
        return True
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _keyset(model: Any, after: tuple[dt.datetime, str] | None) -> Any:
    """Newest first: rows strictly after the (created_at, id) of the last row of the previous page."""
    if after is None:
        return None
    created_at, row_id = after
    return or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id))


# ----------------------------------------------------------------------------------------------------------
# Repositories
# ----------------------------------------------------------------------------------------------------------


class EmployerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, employer: d.Employer, now: dt.datetime) -> EmployerRow:
        """Register `employer`; ALREADY_EXISTS when its USCC is registered."""
        if await self.get_by_uscc(employer.uscc) is not None:
            raise AlreadyExists("an employer with this unified social credit code is registered")
        row = EmployerRow(
            id=new_id(),
            uscc=employer.uscc,
            name=employer.name,
            address=employer.address,
            status=employer.status.value,
            status_reason="",
            created_at=now,
            updated_at=now,
        )
        if not await _insert_unique(self.session, row):
            raise AlreadyExists("an employer with this unified social credit code is registered")
        return row

    async def get(self, employer_id: str, *, for_update: bool = False) -> EmployerRow:
        stmt = select(EmployerRow).where(EmployerRow.id == employer_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such employer")
        return row

    async def get_by_uscc(self, uscc: str) -> EmployerRow | None:
        row: EmployerRow | None = await self.session.scalar(
            select(EmployerRow).where(EmployerRow.uscc == uscc)
        )
        return row

    async def set_status(
        self, row: EmployerRow, status: d.EmployerStatus, reason: str, now: dt.datetime
    ) -> bool:
        """True when the status changed."""
        changed = row.status != status.value
        row.status = status.value
        row.status_reason = reason
        row.updated_at = now
        return changed


class WorkPermitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _open_key(app: d.WorkPermitApplication) -> str | None:
        if app.state not in OPEN_STATES:
            return None
        a = app.applicant
        return f"{person_key(a.nationality, a.passport_number)}:{app.request.employer_uscc}"

    @staticmethod
    def to_domain(row: WorkPermitRow) -> d.WorkPermitApplication:
        request = _request_from(row.request)
        points = d.PointsBreakdown(
            row.points["table_version"], d.frozen_mapping(row.points["items"]), row.points["total"]
        )
        return d.WorkPermitApplication(
            id=row.id,
            applicant=request.applicant,
            category=d.Category(row.category),
            submitted_on=row.submitted_on,
            state=d.PermitState(row.state),
            supplied_materials=frozenset(row.supplied_materials),
            materials_complete_on=row.materials_complete_on,
            rejection_reasons=tuple(row.rejection_reasons),
            rejection_codes=tuple(row.rejection_codes or ()),
            permit_number=row.permit_number,
            validity=_validity(row.valid_from, row.valid_until),
            request=request,
            points=points,
            category_grounds=tuple(row.category_grounds),
            extended=row.extended,
            decision_due=row.decision_due,
        )

    async def find_open(
        self, nationality: str, passport_number: str, employer_uscc: str
    ) -> WorkPermitRow | None:
        key = f"{person_key(nationality, passport_number)}:{employer_uscc}"
        row: WorkPermitRow | None = await self.session.scalar(
            select(WorkPermitRow).where(WorkPermitRow.open_key == key)
        )
        return row

    async def add(
        self,
        app: d.WorkPermitApplication,
        employer_id: str,
        annual_salary_fen: int,
        materials: list[dict[str, Any]],
        now: dt.datetime,
    ) -> WorkPermitRecord:
        """Store a new application; ALREADY_EXISTS when the person has an open one with the employer."""
        a = app.applicant
        if await self.find_open(a.nationality, a.passport_number, app.request.employer_uscc) is not None:
            raise AlreadyExists("this person already has an open work permit application with this employer")
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
        if not await _insert_unique(self.session, row):
            raise AlreadyExists("this person already has an open work permit application with this employer")
        return WorkPermitRecord(app, row)

    def _write(self, app: d.WorkPermitApplication, row: WorkPermitRow, now: dt.datetime) -> None:
        row.state = app.state.value
        row.category = app.category.value
        row.open_key = self._open_key(app)
        row.supplied_materials = sorted(app.supplied_materials)
        row.submitted_on = app.submitted_on
        row.materials_complete_on = app.materials_complete_on
        row.decision_due = app.decision_due
        row.extended = app.extended
        row.rejection_reasons = list(app.rejection_reasons)
        row.rejection_codes = list(app.rejection_codes)
        row.permit_number = app.permit_number
        row.valid_from = app.validity.valid_from if app.validity else None
        row.valid_until = app.validity.valid_until if app.validity else None
        row.updated_at = now

    async def get(self, application_id: str, *, for_update: bool = False) -> WorkPermitRecord:
        stmt = select(WorkPermitRow).where(WorkPermitRow.id == application_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such work permit application")
        return WorkPermitRecord(self.to_domain(row), row)

    async def save(
        self,
        record: WorkPermitRecord,
        now: dt.datetime,
        *,
        added_materials: list[dict[str, Any]] | None = None,
        removed_kinds: frozenset[str] = frozenset(),
        cancellation_reason: str | None = None,
    ) -> None:
        row = record.row
        if added_materials or removed_kinds:
            row.materials = _merge_references(row.materials, added_materials or [], removed_kinds)
        if cancellation_reason is not None:
            row.cancellation_reason = cancellation_reason
        self._write(record.app, row, now)

    async def for_residence(
        self, nationality: str, passport_number: str, work_permit_id: str
    ) -> WorkPermitRecord | None:
        """The work permit a residence permit rests on: the named one, or else the person's latest
        approved or issued one (or their latest of any state, which the domain then refuses)."""
        if work_permit_id:
            row = await self.session.scalar(select(WorkPermitRow).where(WorkPermitRow.id == work_permit_id))
        else:
            valid = (d.PermitState.APPROVED.value, d.PermitState.ISSUED.value)
            rows = (
                await self.session.scalars(
                    select(WorkPermitRow)
                    .where(
                        WorkPermitRow.nationality == nationality,
                        WorkPermitRow.passport_number == passport_number,
                    )
                    .order_by(WorkPermitRow.created_at.desc(), WorkPermitRow.id.desc())
                )
            ).all()
            row = next((r for r in rows if r.state in valid), rows[0] if rows else None)
        return None if row is None else WorkPermitRecord(self.to_domain(row), row)

    async def for_verification(self, number: str) -> WorkPermitRecord | None:
        """The permit a lifelong number stands for: the issued one that runs longest, else the latest."""
        rows = (
            await self.session.scalars(select(WorkPermitRow).where(WorkPermitRow.permit_number == number))
        ).all()
        if not rows:
            return None
        issued = [r for r in rows if r.state == d.PermitState.ISSUED.value and r.valid_until is not None]
        row = (
            max(issued, key=lambda r: (r.valid_until, r.created_at))
            if issued
            else max(rows, key=lambda r: (r.updated_at, r.id))
        )
        return WorkPermitRecord(self.to_domain(row), row)

    async def page(
        self,
        *,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        nationality: str = "",
        passport_number: str = "",
        employer_uscc: str = "",
        state: d.PermitState | None = None,
    ) -> Page[WorkPermitRecord]:
        stmt = select(WorkPermitRow)
        if nationality:
            stmt = stmt.where(WorkPermitRow.nationality == nationality)
        if passport_number:
            stmt = stmt.where(WorkPermitRow.passport_number == passport_number)
        if employer_uscc:
            stmt = stmt.where(WorkPermitRow.employer_uscc == employer_uscc)
        if state is not None:
            stmt = stmt.where(WorkPermitRow.state == state.value)
        if (cond := _keyset(WorkPermitRow, after)) is not None:
            stmt = stmt.where(cond)
        stmt = stmt.order_by(WorkPermitRow.created_at.desc(), WorkPermitRow.id.desc()).limit(limit + 1)
        rows = list((await self.session.scalars(stmt)).all())
        has_more = len(rows) > limit
        rows = rows[:limit]
        last = (rows[-1].created_at, rows[-1].id) if rows else None
        return Page([WorkPermitRecord(self.to_domain(r), r) for r in rows], has_more, last)


class ResidencePermitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _open_key(app: d.ResidencePermitApplication) -> str | None:
        if app.state not in OPEN_STATES:
            return None
        return person_key(app.applicant.nationality, app.applicant.passport_number)

    @staticmethod
    def to_domain(row: ResidencePermitRow) -> d.ResidencePermitApplication:
        return d.ResidencePermitApplication(
            id=row.id,
            applicant=_applicant_from(row.applicant),
            category=d.Category(row.category),
            submitted_on=row.submitted_on,
            state=d.PermitState(row.state),
            supplied_materials=frozenset(row.supplied_materials),
            materials_complete_on=row.materials_complete_on,
            rejection_reasons=tuple(row.rejection_reasons),
            rejection_codes=tuple(row.rejection_codes or ()),
            permit_number=row.permit_number,
            validity=_validity(row.valid_from, row.valid_until),
            work_permit_id=row.work_permit_id,
            entry_date=row.entry_date,
            requested_valid_until=row.requested_valid_until,
            decision_due=row.decision_due,
            decision_target=row.decision_target,
            fee_yuan=row.fee_yuan,
            awaiting_work_permit=row.awaiting_work_permit,
            replaces_id=row.replaces_id,
        )

    async def find_open(self, nationality: str, passport_number: str) -> ResidencePermitRow | None:
        key = person_key(nationality, passport_number)
        row: ResidencePermitRow | None = await self.session.scalar(
            select(ResidencePermitRow).where(ResidencePermitRow.open_key == key)
        )
        return row

    async def add(
        self, app: d.ResidencePermitApplication, materials: list[dict[str, Any]], now: dt.datetime
    ) -> ResidencePermitRecord:
        a = app.applicant
        if await self.find_open(a.nationality, a.passport_number) is not None:
            raise AlreadyExists("this person already has an open residence permit application")
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
        if not await _insert_unique(self.session, row):
            raise AlreadyExists("this person already has an open residence permit application")
        return ResidencePermitRecord(app, row)

    def _write(self, app: d.ResidencePermitApplication, row: ResidencePermitRow, now: dt.datetime) -> None:
        row.state = app.state.value
        row.category = app.category.value
        row.open_key = self._open_key(app)
        row.supplied_materials = sorted(app.supplied_materials)
        row.submitted_on = app.submitted_on
        row.materials_complete_on = app.materials_complete_on
        row.decision_due = app.decision_due
        row.decision_target = app.decision_target
        row.fee_yuan = app.fee_yuan
        row.rejection_reasons = list(app.rejection_reasons)
        row.rejection_codes = list(app.rejection_codes)
        row.awaiting_work_permit = app.awaiting_work_permit
        row.replaces_id = app.replaces_id
        row.permit_number = app.permit_number
        row.valid_from = app.validity.valid_from if app.validity else None
        row.valid_until = app.validity.valid_until if app.validity else None
        row.updated_at = now

    async def get(self, application_id: str, *, for_update: bool = False) -> ResidencePermitRecord:
        stmt = select(ResidencePermitRow).where(ResidencePermitRow.id == application_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such residence permit application")
        return ResidencePermitRecord(self.to_domain(row), row)

    async def resting_on(self, work_permit_id: str) -> list[ResidencePermitRecord]:
        """Every residence permit application lodged on a work permit, oldest first, locked."""
        rows = (
            await self.session.scalars(
                select(ResidencePermitRow)
                .where(ResidencePermitRow.work_permit_id == work_permit_id)
                .order_by(ResidencePermitRow.created_at, ResidencePermitRow.id)
                .with_for_update()
            )
        ).all()
        return [ResidencePermitRecord(self.to_domain(row), row) for row in rows]

    async def get_by_number(self, number: str) -> ResidencePermitRecord | None:
        row = await self.session.scalar(
            select(ResidencePermitRow).where(ResidencePermitRow.permit_number == number)
        )
        return None if row is None else ResidencePermitRecord(self.to_domain(row), row)

    async def save(
        self,
        record: ResidencePermitRecord,
        now: dt.datetime,
        *,
        added_materials: list[dict[str, Any]] | None = None,
        removed_kinds: frozenset[str] = frozenset(),
        cancellation_reason: str | None = None,
    ) -> None:
        row = record.row
        if added_materials or removed_kinds:
            row.materials = _merge_references(row.materials, added_materials or [], removed_kinds)
        if cancellation_reason is not None:
            row.cancellation_reason = cancellation_reason
        self._write(record.app, row, now)

    async def page(
        self,
        *,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        nationality: str = "",
        passport_number: str = "",
        state: d.PermitState | None = None,
    ) -> Page[ResidencePermitRecord]:
        stmt = select(ResidencePermitRow)
        if nationality:
            stmt = stmt.where(ResidencePermitRow.nationality == nationality)
        if passport_number:
            stmt = stmt.where(ResidencePermitRow.passport_number == passport_number)
        if state is not None:
            stmt = stmt.where(ResidencePermitRow.state == state.value)
        if (cond := _keyset(ResidencePermitRow, after)) is not None:
            stmt = stmt.where(cond)
        stmt = stmt.order_by(ResidencePermitRow.created_at.desc(), ResidencePermitRow.id.desc()).limit(
            limit + 1
        )
        rows = list((await self.session.scalars(stmt)).all())
        has_more = len(rows) > limit
        rows = rows[:limit]
        last = (rows[-1].created_at, rows[-1].id) if rows else None
        return Page([ResidencePermitRecord(self.to_domain(r), r) for r in rows], has_more, last)


class PermitNumberRepository:
    """Permit numbers: one sequence for both kinds, allocated race-free by its unique constraint."""

    MAX_ATTEMPTS = 20

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def kind_of(self, number: str) -> d.PermitKind | None:
        kind = await self.session.scalar(select(PermitNumberRow.kind).where(PermitNumberRow.number == number))
        return None if kind is None else d.PermitKind(kind)

    async def lifelong_work_permit_number(
        self, nationality: str, passport_number: str, region: str, now: dt.datetime
    ) -> str:
        """The person's work permit number: the one given before, or a new one (kept for life)."""
        key = person_key(nationality, passport_number)
        for _ in range(self.MAX_ATTEMPTS):
            existing = await self.session.scalar(
                select(PermitNumberRow.number).where(PermitNumberRow.holder_key == key)
            )
            if existing is not None:
                return existing
            number = await self._try_allocate(d.PermitKind.WORK_PERMIT, region, key, now)
            if number is not None:
                return number
        raise RuntimeError("could not allocate a permit number")  # pragma: no cover

    async def residence_permit_number(self, region: str, now: dt.datetime) -> str:
        for _ in range(self.MAX_ATTEMPTS):
            number = await self._try_allocate(d.PermitKind.RESIDENCE_PERMIT, region, None, now)
            if number is not None:
                return number
        raise RuntimeError("could not allocate a permit number")  # pragma: no cover

    async def _try_allocate(
        self, kind: d.PermitKind, region: str, holder_key: str | None, now: dt.datetime
    ) -> str | None:
        last = await self.session.scalar(select(func.max(PermitNumberRow.sequence)))
        sequence = (last or 0) + 1
        number = d.permit_number(sequence, region)
        row = PermitNumberRow(
            id=new_id(),
            sequence=sequence,
            number=number,
            kind=kind.value,
            holder_key=holder_key,
            created_at=now,
        )
        return number if await _insert_unique(self.session, row) else None
