"""The household register's tables and repositories.

Each repository works inside one unit of work (its session) and speaks in domain objects: a household is
loaded as a ``services.residence.domain.Household`` with its members, a register entry as a ``PersonEntry``,
and the results of the domain's operations are written back with ``save_*``.

What the database enforces, so that two replicas or two concurrent requests cannot break it:

* ``people.id_number`` is unique: a citizen has one register entry, and that entry names one household
  (``household_id``): registered in one place only. Newborns' numbers are inserted with INSERT … ON CONFLICT
  DO NOTHING; a number taken concurrently inserts nothing, and the birth is assigned again with that
  sequence marked used (`RegisterRepository.add_newborn`), on SQLite and PostgreSQL alike (no savepoints).
* ``households.number``, ``migration_certificates.number`` and
  ``accommodation_registrations.registration_number`` are unique, allocated the same way. Household numbers
  that the service allocates start at serial 5,000,001 per area (`SERVICE_HOUSEHOLD_SERIAL`), above anything
  the seed's generator gives out.
* A change locks what it changes (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer): the person
  first, then the households in number order.

Members are the people whose ``household_id`` is the household and whose status is REGISTERED;
``member_order`` is their position in register order (group rank, relationship code, birth date, ID
number) as a sortable string, so ListMembers pages by keyset. GetPerson and VerifyHukou look up the
unique ``id_number`` index; the used sequences of a region and birth date are a range scan on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.audit import AuditMixin
from services.common.db import NAMING, JsonType, UnitOfWork, UTCDateTime, new_id
from services.common.errors import NotFound
from services.common.events import DomainEvent, HasEvents
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import EventFeed, OutboxMixin
from services.residence import domain as d
from services.residence.stations import STATIONS

SERVICE_HOUSEHOLD_SERIAL = 5_000_001
MAX_ALLOCATION_ATTEMPTS = 50
# uuid5 namespace of the ids of seeded households and people: the same seed gives the same ids.
SEED_NAMESPACE = uuid.UUID("6f1c2f0e-5b7a-4c1e-9a57-2d0f3c4b8e11")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OutboxEvent(OutboxMixin, Base):
    __tablename__ = "outbox"


class IdempotencyRecord(IdempotencyMixin, Base):
    __tablename__ = "idempotency"


class AuditEntry(AuditMixin, Base):
    __tablename__ = "audit_log"


# ----------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------


class StationRow(Base):
    __tablename__ = "police_stations"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    rural: Mapped[bool] = mapped_column(Boolean)

    def to_domain(self) -> d.PoliceStation:
        return d.PoliceStation(self.code, self.name, self.region_code, self.rural)


class HouseholdRow(Base):
    __tablename__ = "households"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    type: Mapped[str] = mapped_column(String(12))
    address: Mapped[str] = mapped_column(String(200))
    station_code: Mapped[str] = mapped_column(String(12))
    station_name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6))
    rural: Mapped[bool] = mapped_column(Boolean)
    established_on: Mapped[dt.date] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # A household without a head for now: why ("" when it has one), since when, and its guardian contact
    # ({"id_number", "name", "relationship", "phone"} or NULL).
    follow_up: Mapped[str] = mapped_column(String(40), default="", server_default="")
    follow_up_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    guardian: Mapped[dict[str, str] | None] = mapped_column(JsonType, nullable=True)

    @property
    def station(self) -> d.PoliceStation:
        return d.PoliceStation(self.station_code, self.station_name, self.region_code, self.rural)


class PersonRow(Base):
    __tablename__ = "people"
    __table_args__ = (Index("ix_people_members", "household_id", "member_order"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    former_names: Mapped[list[str] | None] = mapped_column(JsonType, nullable=True)
    sex: Mapped[str] = mapped_column(String(6))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    ethnicity: Mapped[str] = mapped_column(String(10))
    birth_place: Mapped[str] = mapped_column(String(200))
    native_place: Mapped[str] = mapped_column(String(200))
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    household_number: Mapped[str] = mapped_column(String(20))
    relationship_code: Mapped[str] = mapped_column(String(2))
    # Register order within the household while REGISTERED, NULL otherwise.
    member_order: Mapped[str | None] = mapped_column(String(40), nullable=True)
    registered_on: Mapped[dt.date] = mapped_column(Date)
    education: Mapped[str | None] = mapped_column(String(24), nullable=True)
    marital_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    military_service: Mapped[str | None] = mapped_column(String(16), nullable=True)
    occupation: Mapped[str] = mapped_column(String(200), default="")
    employer: Mapped[str] = mapped_column(String(200), default="")
    # {"from": place, "on": ISO date} or NULL.
    arrived_in_city: Mapped[dict[str, str] | None] = mapped_column(JsonType, nullable=True)
    arrived_at_address: Mapped[dict[str, str] | None] = mapped_column(JsonType, nullable=True)
    # The basis of the person's civil capacity (domain.CivilCapacity) and since when a recorded one holds.
    civil_capacity: Mapped[str] = mapped_column(String(14), default="BY_AGE", server_default="BY_AGE")
    civil_capacity_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(14))
    status_reason: Mapped[str | None] = mapped_column(String(14), nullable=True)
    status_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    pending_move: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    change_log: Mapped[list[dict[str, str]] | None] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CertificateRow(Base):
    __tablename__ = "migration_certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(50))
    sex: Mapped[str] = mapped_column(String(6))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    origin_region_code: Mapped[str] = mapped_column(String(6))
    origin_address: Mapped[str] = mapped_column(String(200))
    origin_household_number: Mapped[str] = mapped_column(String(20))
    destination_region_code: Mapped[str] = mapped_column(String(6))
    destination_address: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    used_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    used_by_household: Mapped[str | None] = mapped_column(String(20), nullable=True)
    revoked_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AccommodationRow(Base):
    __tablename__ = "accommodation_registrations"
    __table_args__ = (Index("ix_accommodation_registrations_person", "nationality", "passport_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    registration_number: Mapped[str] = mapped_column(String(32), unique=True)
    passport_number: Mapped[str] = mapped_column(String(17))
    nationality: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(200))
    station_code: Mapped[str] = mapped_column(String(12))
    station_name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6))
    rural: Mapped[bool] = mapped_column(Boolean)
    host_kind: Mapped[str] = mapped_column(String(10))
    host_name: Mapped[str] = mapped_column(String(200))
    host_identifier: Mapped[str] = mapped_column(String(200))
    arrived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    from_date: Mapped[dt.date] = mapped_column(Date)
    to_date: Mapped[dt.date] = mapped_column(Date)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancellation_reason: Mapped[str] = mapped_column(Text, default="")


# ----------------------------------------------------------------------------------------------------------
# Rows <-> domain values
# ----------------------------------------------------------------------------------------------------------


def _opt_enum(enum_type: Any, value: str | None) -> Any:
    return None if value is None else enum_type(value)


def _arrival_in(doc: dict[str, str] | None) -> d.Arrival | None:
    return None if doc is None else d.Arrival(doc["from"], dt.date.fromisoformat(doc["on"]))


def _arrival_out(arrival: d.Arrival | None) -> dict[str, str] | None:
    return None if arrival is None else {"from": arrival.from_place, "on": arrival.on.isoformat()}


def _pending_in(doc: dict[str, Any] | None) -> d.PendingMove | None:
    if doc is None:
        return None
    return d.PendingMove(
        origin_region_code=doc["origin_region_code"],
        destination_region_code=doc["destination_region_code"],
        destination_address=doc["destination_address"],
        certificate_number=doc["certificate_number"],
        same_city=doc["same_city"],
        moved_out_on=dt.date.fromisoformat(doc["moved_out_on"]),
        former_relationship_code=doc.get("former_relationship_code", ""),
        member_changes=tuple(tuple(c) for c in doc.get("member_changes", ())),
        new_head_id_number=doc.get("new_head_id_number", ""),
        closed_household=doc.get("closed_household", False),
    )


def _pending_out(pending: d.PendingMove | None) -> dict[str, Any] | None:
    if pending is None:
        return None
    return {
        "origin_region_code": pending.origin_region_code,
        "destination_region_code": pending.destination_region_code,
        "destination_address": pending.destination_address,
        "certificate_number": pending.certificate_number,
        "same_city": pending.same_city,
        "moved_out_on": pending.moved_out_on.isoformat(),
        "former_relationship_code": pending.former_relationship_code,
        "member_changes": [list(c) for c in pending.member_changes],
        "new_head_id_number": pending.new_head_id_number,
        "closed_household": pending.closed_household,
    }


def person_to_domain(row: PersonRow) -> d.PersonEntry:
    return d.PersonEntry(
        id_number=row.id_number,
        name=row.name,
        sex=d.Sex(row.sex),
        birth_date=row.birth_date,
        ethnicity=row.ethnicity,
        birth_place=row.birth_place,
        native_place=row.native_place,
        household_number=row.household_number,
        relationship_code=row.relationship_code,
        registered_on=row.registered_on,
        former_names=tuple(row.former_names or ()),
        education=_opt_enum(d.Education, row.education),
        marital_status=_opt_enum(d.MaritalStatus, row.marital_status),
        military_service=_opt_enum(d.MilitaryService, row.military_service),
        occupation=row.occupation,
        employer=row.employer,
        arrived_in_city=_arrival_in(row.arrived_in_city),
        arrived_at_address=_arrival_in(row.arrived_at_address),
        civil_capacity=d.CivilCapacity(row.civil_capacity),
        civil_capacity_since=row.civil_capacity_since,
        status=d.PersonStatus(row.status),
        status_reason=_opt_enum(d.DeregistrationReason, row.status_reason),
        status_since=row.status_since,
        pending_move=_pending_in(row.pending_move),
        change_log=tuple(
            d.ChangeRecord(c["kind"], c["field"], c["old"], c["new"], dt.date.fromisoformat(c["on"]))
            for c in row.change_log or ()
        ),
    )


def member_order(entry: d.PersonEntry, relationships: d.RelationshipTable) -> str | None:
    """The sortable register-order key of a REGISTERED member, None otherwise."""
    if entry.status is not d.PersonStatus.REGISTERED:
        return None
    rank, code = relationships.order_key(entry.relationship_code)
    return f"{rank}{code}{entry.birth_date.isoformat()}{entry.id_number}"


def person_values(
    entry: d.PersonEntry, household_id: str, relationships: d.RelationshipTable
) -> dict[str, Any]:
    """Every column of a person row but id and the timestamps (shared by the ORM writes and the seed's
    batched inserts)."""
    return {
        "id_number": entry.id_number,
        "name": entry.name,
        "former_names": list(entry.former_names) or None,
        "sex": entry.sex.value,
        "birth_date": entry.birth_date,
        "ethnicity": entry.ethnicity,
        "birth_place": entry.birth_place,
        "native_place": entry.native_place,
        "household_id": household_id,
        "household_number": entry.household_number,
        "relationship_code": entry.relationship_code,
        "member_order": member_order(entry, relationships),
        "registered_on": entry.registered_on,
        "education": entry.education.value if entry.education else None,
        "marital_status": entry.marital_status.value if entry.marital_status else None,
        "military_service": entry.military_service.value if entry.military_service else None,
        "occupation": entry.occupation,
        "employer": entry.employer,
        "arrived_in_city": _arrival_out(entry.arrived_in_city),
        "arrived_at_address": _arrival_out(entry.arrived_at_address),
        "civil_capacity": entry.civil_capacity.value,
        "civil_capacity_since": entry.civil_capacity_since,
        "status": entry.status.value,
        "status_reason": entry.status_reason.value if entry.status_reason else None,
        "status_since": entry.status_since,
        "pending_move": _pending_out(entry.pending_move),
        "change_log": [
            {"kind": c.kind, "field": c.field, "old": c.old, "new": c.new, "on": c.on.isoformat()}
            for c in entry.change_log
        ]
        or None,
    }


def household_values(household: d.Household) -> dict[str, Any]:
    station = household.station
    return {
        "number": household.number,
        "type": household.type.value,
        "address": household.address,
        "station_code": station.code,
        "station_name": station.name,
        "region_code": station.jurisdiction,
        "rural": station.rural,
        "established_on": household.established_on,
        "closed_on": household.closed_on,
        "follow_up": household.follow_up,
        "follow_up_since": household.follow_up_since,
        "guardian": _guardian_out(household.guardian),
    }


def _guardian_out(guardian: d.Guardian | None) -> dict[str, str] | None:
    if guardian is None:
        return None
    return {
        "id_number": guardian.id_number,
        "name": guardian.name,
        "relationship": guardian.relationship,
        "phone": guardian.phone,
    }


def guardian_in(doc: dict[str, str] | None) -> d.Guardian | None:
    if not doc:
        return None
    return d.Guardian(doc["id_number"], doc["name"], doc["relationship"], doc.get("phone", ""))


def certificate_to_domain(row: CertificateRow) -> d.MigrationCertificate:
    return d.MigrationCertificate(
        number=row.number,
        id_number=row.id_number,
        name=row.name,
        sex=d.Sex(row.sex),
        birth_date=row.birth_date,
        origin_region_code=row.origin_region_code,
        origin_address=row.origin_address,
        origin_household_number=row.origin_household_number,
        destination_region_code=row.destination_region_code,
        destination_address=row.destination_address,
        issued_on=row.issued_on,
        valid_until=row.valid_until,
        used_on=row.used_on,
        used_by_household=row.used_by_household,
        revoked_on=row.revoked_on,
    )


def accommodation_to_domain(row: AccommodationRow) -> d.AccommodationRegistration:
    return d.AccommodationRegistration(
        registration_number=row.registration_number,
        passport_number=row.passport_number,
        nationality=row.nationality,
        name=row.name,
        address=row.address,
        station=d.PoliceStation(row.station_code, row.station_name, row.region_code, row.rural),
        host=d.AccommodationHost(d.HostKind(row.host_kind), row.host_name, row.host_identifier),
        arrived_at=row.arrived_at,
        from_date=row.from_date,
        to_date=row.to_date,
        registered_at=row.registered_at,
        late=row.late,
        deadline=row.deadline,
        cancelled_at=row.cancelled_at,
        cancellation_reason=row.cancellation_reason,
    )


def insert_ignoring_conflicts(session_or_conn: Any, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the session's dialect (SQLite and PostgreSQL)."""
    name = session_or_conn.bind.dialect.name if hasattr(session_or_conn, "bind") else session_or_conn
    module = postgresql if name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


# ----------------------------------------------------------------------------------------------------------
# Records: a domain object with the row it was read from
# ----------------------------------------------------------------------------------------------------------


@dataclass
class HouseholdRecord:
    household: d.Household
    row: HouseholdRow
    member_rows: dict[str, PersonRow]

    @property
    def id(self) -> str:
        return self.row.id


@dataclass
class PersonRecord:
    entry: d.PersonEntry
    row: PersonRow

    @property
    def id(self) -> str:
        return self.row.id


@dataclass
class MemberPage:
    members: list[PersonRecord]
    has_more: bool


# ----------------------------------------------------------------------------------------------------------
# Repositories
# ----------------------------------------------------------------------------------------------------------

# VerifyHukou's one read: three columns by the unique ID number index, built once.
_VERIFY_HUKOU = (
    select(PersonRow.name, PersonRow.status, HouseholdRow.region_code)
    .join_from(PersonRow, HouseholdRow, PersonRow.household_id == HouseholdRow.id)
    .where(PersonRow.id_number == bindparam("id_number"))
)


class RegisterRepository:
    """Households, register entries and migration certificates, in one unit of work."""

    def __init__(self, session: AsyncSession, policy: d.ResidencePolicy) -> None:
        self.session = session
        self.policy = policy

    @property
    def _locking(self) -> bool:
        return self.session.bind.dialect.name == "postgresql"

    # -- reads ---------------------------------------------------------------------------------------------

    async def get_by_id_number(self, id_number: str, *, for_update: bool = False) -> PersonRecord | None:
        stmt = select(PersonRow).where(PersonRow.id_number == id_number)
        if for_update and self._locking:
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        return None if row is None else PersonRecord(person_to_domain(row), row)

    async def person(self, id_number: str, *, for_update: bool = False) -> PersonRecord:
        record = await self.get_by_id_number(id_number, for_update=for_update)
        if record is None:
            raise NotFound("no such person in the register")
        return record

    async def household_row(self, *, id: str = "", number: str = "") -> HouseholdRow:
        stmt = select(HouseholdRow).where(HouseholdRow.id == id if id else HouseholdRow.number == number)
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such household")
        return row

    async def household(self, number: str = "", *, id: str = "", for_update: bool = False) -> HouseholdRecord:
        """The household (by number, or by id) with its members, in register order."""
        stmt = select(HouseholdRow).where(HouseholdRow.id == id if id else HouseholdRow.number == number)
        if for_update and self._locking:
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such household")
        member_rows = (
            await self.session.scalars(
                select(PersonRow)
                .where(PersonRow.household_id == row.id, PersonRow.member_order.is_not(None))
                .order_by(PersonRow.member_order)
            )
        ).all()
        household = d.Household(
            number=row.number,
            type=d.HouseholdType(row.type),
            address=row.address,
            station=row.station,
            members=tuple(person_to_domain(m) for m in member_rows),
            established_on=row.established_on,
            closed_on=row.closed_on,
            guardian=guardian_in(row.guardian),
            follow_up=row.follow_up,
            follow_up_since=row.follow_up_since,
        )
        return HouseholdRecord(household, row, {m.id_number: m for m in member_rows})

    async def members_page(self, household_id: str, *, after: str | None, limit: int) -> MemberPage:
        stmt = select(PersonRow).where(
            PersonRow.household_id == household_id, PersonRow.member_order.is_not(None)
        )
        if after is not None:
            stmt = stmt.where(PersonRow.member_order > after)
        rows = list(
            (await self.session.scalars(stmt.order_by(PersonRow.member_order).limit(limit + 1))).all()
        )
        return MemberPage([PersonRecord(person_to_domain(r), r) for r in rows[:limit]], len(rows) > limit)

    async def used_sequences(self, region_code: str, birth_date: dt.date) -> set[int]:
        """Sequences taken for this region code and birth date: a range scan on the unique ID number index."""
        prefix = f"{region_code}{birth_date:%Y%m%d}"
        numbers = await self.session.scalars(
            select(PersonRow.id_number).where(
                PersonRow.id_number >= prefix, PersonRow.id_number < prefix + "~"
            )
        )
        return {d.sequence_of(n) for n in numbers}

    async def hukou(self, id_number: str) -> tuple[str, str, str] | None:
        """VerifyHukou's one read: the name, status and registering area of an entry, by ID number."""
        found = (await self.session.execute(_VERIFY_HUKOU, {"id_number": id_number})).first()
        return None if found is None else (found[0], found[1], found[2])

    async def station(self, code: str) -> d.PoliceStation | None:
        row = await self.session.get(StationRow, code)
        return None if row is None else row.to_domain()

    async def certificate(self, number: str, *, for_update: bool = False) -> CertificateRow | None:
        stmt = select(CertificateRow).where(CertificateRow.number == number)
        if for_update and self._locking:
            stmt = stmt.with_for_update()
        row: CertificateRow | None = await self.session.scalar(stmt)
        return row

    # -- writes --------------------------------------------------------------------------------------------

    def _write_person(
        self, row: PersonRow, entry: d.PersonEntry, household_id: str, now: dt.datetime
    ) -> None:
        for key, value in person_values(entry, household_id, self.policy.relationships).items():
            setattr(row, key, value)
        row.updated_at = now

    async def save_household(self, record: HouseholdRecord, household: d.Household, now: dt.datetime) -> None:
        """Write a household after an operation: the page and every member still in it."""
        for key, value in household_values(household).items():
            setattr(record.row, key, value)
        record.row.updated_at = now
        for member in household.members:
            row = record.member_rows.get(member.id_number)
            if row is None:
                continue  # a member added by this operation: written by add_newborn / save_person
            if person_to_domain(row) != member:
                self._write_person(row, member, record.row.id, now)

    async def save_person(
        self, row: PersonRow, entry: d.PersonEntry, household_id: str, now: dt.datetime
    ) -> None:
        self._write_person(row, entry, household_id, now)

    async def add_newborn(
        self,
        record: HouseholdRecord,
        cmd: d.RegisterBirth,
        *,
        today: dt.date,
        now: dt.datetime,
        used_sequences: set[int] | None = None,
    ) -> tuple[d.Result, PersonRow]:
        """Register the birth and insert the newborn's entry with the ID number the domain assigns. A number
        taken concurrently (the insert does nothing) is marked used and the birth assigned again."""
        region_code = record.household.region_code
        used: set[int] | None = used_sequences
        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            if used is None and cmd.person.birth_date is not None:
                used = await self.used_sequences(region_code, cmd.person.birth_date)
            result = d.register_birth(
                record.household, cmd, policy=self.policy, today=today, used_sequences=used or set()
            )
            assert result.person is not None
            person_id = new_id()
            values = person_values(result.person, record.row.id, self.policy.relationships)
            inserted = await self.session.execute(
                insert_ignoring_conflicts(self.session, PersonRow.__table__).values(
                    id=person_id, created_at=now, updated_at=now, **values
                )
            )
            if inserted.rowcount == 1:  # type: ignore[attr-defined]
                row = await self.session.get_one(PersonRow, person_id)
                return result, row
            used = (used or set()) | {d.sequence_of(result.person.id_number)}
        raise RuntimeError("could not assign an ID number")  # pragma: no cover

    async def allocate_household_number(self, region_code: str) -> str:
        """The next number of the service's range for `region_code` (see SERVICE_HOUSEHOLD_SERIAL). Not
        reserved: `add_household` inserts it or reports a clash, and the caller allocates again."""
        low, high = f"{region_code}{SERVICE_HOUSEHOLD_SERIAL:07d}", f"{region_code}9999999"
        last = await self.session.scalar(
            select(func.max(HouseholdRow.number)).where(
                HouseholdRow.number >= low, HouseholdRow.number <= high
            )
        )
        serial = int(last[6:]) + 1 if last else SERVICE_HOUSEHOLD_SERIAL
        return f"{region_code}{serial:07d}"

    async def add_household(self, household: d.Household, now: dt.datetime) -> HouseholdRow | None:
        """Insert a new household page (no members); None if its number was taken meanwhile."""
        household_id = new_id()
        inserted = await self.session.execute(
            insert_ignoring_conflicts(self.session, HouseholdRow.__table__).values(
                id=household_id, created_at=now, updated_at=now, **household_values(household)
            )
        )
        if inserted.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self.session.get_one(HouseholdRow, household_id)

    async def add_certificate(
        self, person: PersonRecord, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> CertificateRow | None:
        """Insert an issued certificate; None if its number was taken meanwhile."""
        row_id = new_id()
        values = self._certificate_values(certificate)
        inserted = await self.session.execute(
            insert_ignoring_conflicts(self.session, CertificateRow.__table__).values(
                id=row_id, person_id=person.id, created_at=now, updated_at=now, **values
            )
        )
        if inserted.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self.session.get_one(CertificateRow, row_id)

    @staticmethod
    def _certificate_values(c: d.MigrationCertificate) -> dict[str, Any]:
        return {
            "number": c.number,
            "id_number": c.id_number,
            "name": c.name,
            "sex": c.sex.value,
            "birth_date": c.birth_date,
            "origin_region_code": c.origin_region_code,
            "origin_address": c.origin_address,
            "origin_household_number": c.origin_household_number,
            "destination_region_code": c.destination_region_code,
            "destination_address": c.destination_address,
            "issued_on": c.issued_on,
            "valid_until": c.valid_until,
            "used_on": c.used_on,
            "used_by_household": c.used_by_household,
            "revoked_on": c.revoked_on,
        }

    async def save_certificate(
        self, row: CertificateRow, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> None:
        for key, value in self._certificate_values(certificate).items():
            setattr(row, key, value)
        row.updated_at = now

    async def next_certificate_number(self, region_code: str, today: dt.date) -> str:
        """``<origin area><year><6-digit serial>``: the next serial of the area and year."""
        prefix = f"{region_code}{today.year}"
        last = await self.session.scalar(
            select(func.max(CertificateRow.number)).where(
                CertificateRow.number >= prefix, CertificateRow.number < prefix + "~"
            )
        )
        serial = int(last[len(prefix) :]) + 1 if last else 1
        return f"{prefix}{serial:06d}"


class AccommodationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, *, id: str = "", registration_number: str = "", for_update: bool = False
    ) -> AccommodationRow:
        stmt = select(AccommodationRow).where(
            AccommodationRow.id == id if id else AccommodationRow.registration_number == registration_number
        )
        if for_update and self.session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFound("no such accommodation registration")
        return row

    async def next_number(self, station_code: str, today: dt.date) -> str:
        """``ZS<station><yyyymmdd><5-digit serial>``."""
        prefix = f"ZS{station_code}{today:%Y%m%d}"
        last = await self.session.scalar(
            select(func.max(AccommodationRow.registration_number)).where(
                AccommodationRow.registration_number >= prefix,
                AccommodationRow.registration_number < prefix + "~",
            )
        )
        serial = int(last[len(prefix) :]) + 1 if last else 1
        return f"{prefix}{serial:05d}"

    async def add(self, registration: d.AccommodationRegistration) -> AccommodationRow | None:
        """Insert; None if the registration number was taken meanwhile."""
        r = registration
        row_id = new_id()
        assert r.deadline is not None
        inserted = await self.session.execute(
            insert_ignoring_conflicts(self.session, AccommodationRow.__table__).values(
                id=row_id,
                registration_number=r.registration_number,
                passport_number=r.passport_number,
                nationality=r.nationality,
                name=r.name,
                address=r.address,
                station_code=r.station.code,
                station_name=r.station.name,
                region_code=r.station.jurisdiction,
                rural=r.station.rural,
                host_kind=r.host.kind.value,
                host_name=r.host.name,
                host_identifier=r.host.identifier,
                arrived_at=r.arrived_at,
                from_date=r.from_date,
                to_date=r.to_date,
                registered_at=r.registered_at,
                deadline=r.deadline,
                late=r.late,
                cancelled_at=None,
                cancellation_reason="",
            )
        )
        if inserted.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await self.session.get_one(AccommodationRow, row_id)

    async def save(self, row: AccommodationRow, registration: d.AccommodationRegistration) -> None:
        row.cancelled_at = registration.cancelled_at
        row.cancellation_reason = registration.cancellation_reason


# ----------------------------------------------------------------------------------------------------------
# Reference data and events
# ----------------------------------------------------------------------------------------------------------


async def ensure_stations(engine: AsyncEngine, stations: Iterable[d.PoliceStation] = STATIONS) -> None:
    """Load the police-station catalogue (insert what is missing; idempotent)."""
    rows = [
        {"code": s.code, "name": s.name, "region_code": s.jurisdiction, "rural": s.rural} for s in stations
    ]
    async with engine.begin() as conn:
        await conn.execute(insert_ignoring_conflicts(conn.dialect.name, StationRow.__table__), rows)


# Personal data that other departments do not need from an event (they have the ID number).
_PAYLOAD_OMIT = {"BirthRegistered": frozenset({"name"})}


async def record_events(
    feed: EventFeed,
    uow: UnitOfWork,
    events: Sequence[DomainEvent],
    *,
    person_id: str | None,
    household_ids: dict[str, str],
    now: dt.datetime,
    request_id: str,
    aggregate_id: str | None = None,
) -> None:
    """Write a result's events to the outbox, in the unit of work of the change. Events about a household
    (HeadChanged, HouseholdClosed, HouseholdAwaitingHead) carry the household's id as aggregate_id; events
    about a person the person's id; `aggregate_id` overrides both (accommodation). `household_ids` maps
    household numbers to ids, added to the payload as ``household_id``."""
    for event in events:
        payload = {k: v for k, v in event.payload().items() if k not in _PAYLOAD_OMIT.get(event.type, ())}
        number = payload.get("household_number")
        if isinstance(number, str) and number in household_ids:
            payload["household_id"] = household_ids[number]
        if aggregate_id is not None:
            aggregate = aggregate_id
        elif isinstance(event, d.HeadChanged | d.HouseholdClosed | d.HouseholdAwaitingHead):
            aggregate = household_ids[event.household_number]
        else:
            assert person_id is not None
            aggregate = person_id
        await feed.record(uow, event.type, aggregate, payload, occurred_at=now, request_id=request_id)


class RegisterWork:
    """One unit of work of the register as the service layer (``handlers.Work``) sees it: the repositories
    over its session, and the outbox its events go to, stamped with the request's id."""

    def __init__(self, uow: UnitOfWork, feed: EventFeed, policy: d.ResidencePolicy, request_id: str) -> None:
        self._uow = uow
        self._feed = feed
        self._request_id = request_id
        self.registers = RegisterRepository(uow.session, policy)
        self.accommodations = AccommodationRepository(uow.session)

    async def publish(
        self,
        result: HasEvents,
        now: dt.datetime,
        *,
        person_id: str | None = None,
        households: Sequence[HouseholdRow] = (),
        aggregate_id: str | None = None,
    ) -> None:
        await record_events(
            self._feed,
            self._uow,
            result.events,
            person_id=person_id,
            household_ids={h.number: h.id for h in households},
            now=now,
            request_id=self._request_id,
            aggregate_id=aggregate_id,
        )


def seeded_id(kind: str, key: str) -> str:
    """The deterministic id of a seeded household (``kind="household"``, key its number) or person
    (``"person"``, key the ID number)."""
    return str(uuid.uuid5(SEED_NAMESPACE, f"{kind}:{key}"))


def with_household_number(entry: d.PersonEntry, number: str) -> d.PersonEntry:
    return entry if entry.household_number == number else replace(entry, household_number=number)


__all__ = [
    "AccommodationRepository",
    "AccommodationRow",
    "Base",
    "CertificateRow",
    "HouseholdRecord",
    "HouseholdRow",
    "IdempotencyRecord",
    "OutboxEvent",
    "PersonRecord",
    "PersonRow",
    "RegisterRepository",
    "RegisterWork",
    "StationRow",
    "accommodation_to_domain",
    "certificate_to_domain",
    "ensure_stations",
    "household_values",
    "insert_ignoring_conflicts",
    "person_to_domain",
    "person_values",
    "record_events",
    "seeded_id",
]
