"""In-memory repositories and unit of work for the residence service layer (`handlers.Work`): no database.

Rows are the store's own ORM classes, built in memory (never added to a session), so the handlers see what
the real repositories return. Events go through the store's `record_events` into `FakeWork.outbox`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any, cast

from services.common.db import UnitOfWork
from services.common.errors import NotFound
from services.common.events import HasEvents
from services.common.outbox import EventFeed
from services.residence import domain as d
from services.residence.store import (
    SERVICE_HOUSEHOLD_SERIAL,
    AccommodationRow,
    CertificateRow,
    HouseholdRecord,
    HouseholdRow,
    MemberPage,
    PersonRecord,
    PersonRow,
    household_values,
    person_to_domain,
    person_values,
    record_events,
)

T0 = dt.datetime(2016, 7, 1, 1, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


def _id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


def _certificate_values(c: d.MigrationCertificate) -> dict[str, Any]:
    return {**dataclasses.asdict(c), "sex": c.sex.value}


class FakeRegisters:
    """The register in dicts. `taken_*` are numbers a concurrent request took first: inserting one
    answers None, as the store's INSERT … ON CONFLICT DO NOTHING does. `locked` lists what was read
    FOR UPDATE, `saved` what was written."""

    def __init__(self, policy: d.ResidencePolicy) -> None:
        self.policy = policy
        self.households: dict[str, tuple[d.Household, HouseholdRow]] = {}
        self.people: dict[str, PersonRow] = {}
        self.certificates: dict[str, CertificateRow] = {}
        self.stations: dict[str, d.PoliceStation] = {}
        self.taken_certificates: set[str] = set()
        self.taken_households: set[str] = set()
        self.locked: list[tuple[str, str]] = []
        self.saved: list[tuple[str, str]] = []

    # -- set-up ------------------------------------------------------------------------------------------

    def put_household(self, household: d.Household) -> HouseholdRow:
        row = HouseholdRow(id=_id("household"), created_at=T0, updated_at=T0, **household_values(household))
        self.households[household.number] = (household, row)
        self.stations[household.station.code] = household.station
        for member in household.members:
            self.people[member.id_number] = self._person_row(member, row.id)
        return row

    def _person_row(self, entry: d.PersonEntry, household_id: str) -> PersonRow:
        values = person_values(entry, household_id, self.policy.relationships)
        return PersonRow(id=_id("person"), created_at=T0, updated_at=T0, **values)

    def entry(self, id_number: str) -> d.PersonEntry:
        return person_to_domain(self.people[id_number])

    # -- reads -------------------------------------------------------------------------------------------

    async def person(self, id_number: str, *, for_update: bool = False) -> PersonRecord:
        row = self.people.get(id_number)
        if row is None:
            raise NotFound("no such person in the register")
        if for_update:
            self.locked.append(("person", id_number))
        return PersonRecord(person_to_domain(row), row)

    async def household(self, number: str = "", *, id: str = "", for_update: bool = False) -> HouseholdRecord:
        found = next(
            (
                pair
                for pair in self.households.values()
                if (pair[1].id == id if id else pair[1].number == number)
            ),
            None,
        )
        if found is None:
            raise NotFound("no such household")
        household, row = found
        if for_update:
            self.locked.append(("household", row.number))
        return HouseholdRecord(
            household, row, {m.id_number: self.people[m.id_number] for m in household.members}
        )

    async def household_row(self, *, id: str = "", number: str = "") -> HouseholdRow:
        return (await self.household(number, id=id)).row

    async def members_page(self, household_id: str, *, after: str | None, limit: int) -> MemberPage:
        rows = sorted(
            (
                r
                for r in self.people.values()
                if r.household_id == household_id and r.member_order is not None
            ),
            key=lambda r: r.member_order or "",
        )
        rows = [r for r in rows if after is None or (r.member_order or "") > after]
        records = [PersonRecord(self.entry(r.id_number), r) for r in rows[:limit]]
        return MemberPage(records, len(rows) > limit)

    async def hukou(self, id_number: str) -> tuple[str, str, str] | None:
        row = self.people.get(id_number)
        if row is None:
            return None
        household = next(h for h, r in self.households.values() if r.id == row.household_id)
        return row.name, row.status, household.region_code

    async def station(self, code: str) -> d.PoliceStation | None:
        return self.stations.get(code)

    async def certificate(self, number: str, *, for_update: bool = False) -> CertificateRow | None:
        if for_update:
            self.locked.append(("certificate", number))
        return self.certificates.get(number)

    # -- writes ------------------------------------------------------------------------------------------

    async def save_household(self, record: HouseholdRecord, household: d.Household, now: dt.datetime) -> None:
        for key, value in household_values(household).items():
            setattr(record.row, key, value)
        record.row.updated_at = now
        self.households[household.number] = (household, record.row)
        for member in household.members:
            row = record.member_rows.get(member.id_number)
            if row is not None:
                await self.save_person(row, member, record.row.id, now)
        self.saved.append(("household", household.number))

    async def save_person(
        self, row: PersonRow, entry: d.PersonEntry, household_id: str, now: dt.datetime
    ) -> None:
        for key, value in person_values(entry, household_id, self.policy.relationships).items():
            setattr(row, key, value)
        row.updated_at = now
        self.people[entry.id_number] = row
        self.saved.append(("person", entry.id_number))

    async def add_newborn(
        self, record: HouseholdRecord, cmd: d.RegisterBirth, *, today: dt.date, now: dt.datetime
    ) -> tuple[d.Result, PersonRow]:
        used = {d.sequence_of(n) for n in self.people}
        result = d.register_birth(record.household, cmd, policy=self.policy, today=today, used_sequences=used)
        assert result.person is not None
        row = self._person_row(result.person, record.row.id)
        self.people[result.person.id_number] = row
        self.saved.append(("person", result.person.id_number))
        return result, row

    async def allocate_household_number(self, region_code: str) -> str:
        serial = SERVICE_HOUSEHOLD_SERIAL
        while f"{region_code}{serial:07d}" in self.households:
            serial += 1
        return f"{region_code}{serial:07d}"

    async def add_household(self, household: d.Household, now: dt.datetime) -> HouseholdRow | None:
        if household.number in self.taken_households:  # a concurrent request inserted it first
            self.households[household.number] = (household, HouseholdRow(id=_id("household")))
            return None
        row = HouseholdRow(id=_id("household"), created_at=now, updated_at=now, **household_values(household))
        self.households[household.number] = (household, row)
        self.saved.append(("household", household.number))
        return row

    async def add_certificate(
        self, person: PersonRecord, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> CertificateRow | None:
        if certificate.number in self.taken_certificates or certificate.number in self.certificates:
            return None
        row = CertificateRow(
            id=_id("certificate"),
            person_id=person.id,
            created_at=now,
            updated_at=now,
            **_certificate_values(certificate),
        )
        self.certificates[certificate.number] = row
        self.saved.append(("certificate", certificate.number))
        return row

    async def save_certificate(
        self, row: CertificateRow, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> None:
        for key, value in _certificate_values(certificate).items():
            setattr(row, key, value)
        row.updated_at = now
        self.saved.append(("certificate", certificate.number))

    async def next_certificate_number(self, region_code: str, today: dt.date) -> str:
        prefix = f"{region_code}{today.year}"
        serials = [int(n[len(prefix) :]) for n in self.certificates if n.startswith(prefix)]
        return f"{prefix}{max(serials, default=0) + 1:06d}"


class FakeAccommodations:
    """Accommodation registrations in a dict; `taken` numbers answer None on insert."""

    def __init__(self) -> None:
        self.rows: dict[str, AccommodationRow] = {}
        self.taken: set[str] = set()
        self.locked: list[str] = []

    async def get(
        self, *, id: str = "", registration_number: str = "", for_update: bool = False
    ) -> AccommodationRow:
        row = next(
            (
                r
                for r in self.rows.values()
                if (r.id == id if id else r.registration_number == registration_number)
            ),
            None,
        )
        if row is None:
            raise NotFound("no such accommodation registration")
        if for_update:
            self.locked.append(row.id)
        return row

    async def next_number(self, station_code: str, today: dt.date) -> str:
        return f"ZS{station_code}{today:%Y%m%d}00001"

    async def add(self, registration: d.AccommodationRegistration) -> AccommodationRow | None:
        r = registration
        if r.registration_number in self.taken or any(
            row.registration_number == r.registration_number for row in self.rows.values()
        ):
            return None
        row = AccommodationRow(
            id=_id("accommodation"),
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
        self.rows[row.id] = row
        return row

    async def save(self, row: AccommodationRow, registration: d.AccommodationRegistration) -> None:
        row.cancelled_at = registration.cancelled_at
        row.cancellation_reason = registration.cancellation_reason


@dataclass
class OutboxEntry:
    type: str
    aggregate_id: str
    payload: dict[str, Any]
    request_id: str | None


@dataclass
class FakeFeed:
    """Takes the place of the store's EventFeed under `record_events`."""

    entries: list[OutboxEntry] = field(default_factory=list)

    async def record(
        self,
        uow: Any,
        event_type: str,
        aggregate_id: str,
        payload: dict[str, Any],
        *,
        occurred_at: dt.datetime,
        request_id: str | None = None,
    ) -> None:
        self.entries.append(OutboxEntry(event_type, aggregate_id, payload, request_id))


class FakeWork:
    """One unit of work over the fakes; `outbox` holds what `publish` wrote, as the store writes it."""

    def __init__(self, policy: d.ResidencePolicy, request_id: str = "req-1") -> None:
        self.registers = FakeRegisters(policy)
        self.accommodations = FakeAccommodations()
        self.feed = FakeFeed()
        self.request_id = request_id

    @property
    def outbox(self) -> list[OutboxEntry]:
        return self.feed.entries

    async def publish(
        self,
        result: HasEvents,
        now: dt.datetime,
        *,
        person_id: str | None = None,
        households: Any = (),
        aggregate_id: str | None = None,
    ) -> None:
        await record_events(
            cast(EventFeed, self.feed),
            cast(UnitOfWork, None),  # the fake feed writes no rows
            result.events,
            person_id=person_id,
            household_ids={h.number: h.id for h in households},
            now=now,
            request_id=self.request_id,
            aggregate_id=aggregate_id,
        )
