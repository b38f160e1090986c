"""The residence service layer: one method per use case, in the cosmicpython sense.

A use case takes plain values and domain commands (no protobuf), and a `Work`: the repositories of one
unit of work and its outbox. It loads what the rule needs (locking it), runs the pure rule of
`services.residence.domain`, saves the new state, and publishes the result's events to the outbox in the
same unit of work, so an event is on the feed exactly when its change is committed. The caller commits:
the servicer runs every change through ``run_idempotent`` (the stored answer of a ``request_id`` is the
response message itself, so that one layer is the servicer's), which owns the transaction.

What a change returns is an `Outcome`: the domain `Result` and the rows the answer is read from.
Queries take the repositories of a read-only session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from services.common.clock import Clock
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.events import DomainEvent, HasEvents
from services.residence import domain as d
from services.residence.store import (
    MAX_ALLOCATION_ATTEMPTS,
    AccommodationRow,
    CertificateRow,
    HouseholdRecord,
    HouseholdRow,
    MemberPage,
    PersonRecord,
    PersonRow,
    accommodation_to_domain,
    certificate_to_domain,
)

E = TypeVar("E", bound=DomainEvent)

UNKNOWN_POLICE_STATION = "UNKNOWN_POLICE_STATION"


# ----------------------------------------------------------------------------------------------------------
# What a use case needs: repositories and an outbox (store.RegisterWork; fakes in the unit tests)
# ----------------------------------------------------------------------------------------------------------


class Registers(Protocol):
    """Households, register entries and migration certificates (store.RegisterRepository)."""

    async def person(self, id_number: str, *, for_update: bool = False) -> PersonRecord: ...
    async def household(
        self, number: str = "", *, id: str = "", for_update: bool = False
    ) -> HouseholdRecord: ...
    async def household_row(self, *, id: str = "", number: str = "") -> HouseholdRow: ...
    async def members_page(self, household_id: str, *, after: str | None, limit: int) -> MemberPage: ...
    async def hukou(self, id_number: str) -> tuple[str, str, str] | None: ...
    async def station(self, code: str) -> d.PoliceStation | None: ...
    async def certificate(self, number: str, *, for_update: bool = False) -> CertificateRow | None: ...
    async def save_household(
        self, record: HouseholdRecord, household: d.Household, now: dt.datetime
    ) -> None: ...
    async def save_person(
        self, row: PersonRow, entry: d.PersonEntry, household_id: str, now: dt.datetime
    ) -> None: ...
    async def add_newborn(
        self, record: HouseholdRecord, cmd: d.RegisterBirth, *, today: dt.date, now: dt.datetime
    ) -> tuple[d.Result, PersonRow]: ...
    async def allocate_household_number(self, region_code: str) -> str: ...
    async def add_household(self, household: d.Household, now: dt.datetime) -> HouseholdRow | None: ...
    async def add_certificate(
        self, person: PersonRecord, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> CertificateRow | None: ...
    async def save_certificate(
        self, row: CertificateRow, certificate: d.MigrationCertificate, now: dt.datetime
    ) -> None: ...
    async def next_certificate_number(self, region_code: str, today: dt.date) -> str: ...


class Accommodations(Protocol):
    """Foreigners' accommodation registrations (store.AccommodationRepository)."""

    async def get(
        self, *, id: str = "", registration_number: str = "", for_update: bool = False
    ) -> AccommodationRow: ...
    async def next_number(self, station_code: str, today: dt.date) -> str: ...
    async def add(self, registration: d.AccommodationRegistration) -> AccommodationRow | None: ...
    async def save(self, row: AccommodationRow, registration: d.AccommodationRegistration) -> None: ...


class Work(Protocol):
    """One unit of work as a use case sees it."""

    @property
    def registers(self) -> Registers: ...
    @property
    def accommodations(self) -> Accommodations: ...

    async def publish(
        self,
        result: HasEvents,
        now: dt.datetime,
        *,
        person_id: str | None = None,
        households: Sequence[HouseholdRow] = (),
        aggregate_id: str | None = None,
    ) -> None:
        """Write the result's events to the outbox of this unit of work (see store.record_events for
        the aggregate ids)."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change did: the domain result and the rows its answer is read from (None where the use case
    has none)."""

    result: d.Result
    person_row: PersonRow | None = None
    household_row: HouseholdRow | None = None
    certificate_row: CertificateRow | None = None
    accommodation_row: AccommodationRow | None = None

    def event(self, event_type: type[E]) -> E:
        """The result's first event of `event_type`."""
        return next(e for e in self.result.events if isinstance(e, event_type))


@dataclass(frozen=True, slots=True)
class Hukou:
    """VerifyHukou's answer: the entry's name, status and registering area."""

    name: str
    status: d.PersonStatus
    region_code: str


def not_registered() -> FailedPrecondition:
    return FailedPrecondition(
        d.PERSON_NOT_REGISTERED_HERE, "The person is not a registered member of a household."
    )


def require_accommodation_id(id: str) -> None:
    if not id:
        raise InvalidArgument.one("id", "REQUIRED")


def household_key(id: str, number: str, field: str = "household_id") -> tuple[str, str]:
    """A household named by id or by number (at least one)."""
    if not id and not number:
        raise InvalidArgument.one(field, "REQUIRED", "name the household by id or by number")
    return id, number


# ----------------------------------------------------------------------------------------------------------
# The use cases
# ----------------------------------------------------------------------------------------------------------


class ResidenceHandlers:
    """The register's use cases, under one policy and one clock ("today" for the rules, "now" for rows
    and events)."""

    def __init__(self, policy: d.ResidencePolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock

    # -- queries -------------------------------------------------------------------------------------------

    async def get_person(self, registers: Registers, id_number: str) -> tuple[PersonRecord, HouseholdRecord]:
        person = await registers.person(id_number)
        return person, await registers.household(id=person.row.household_id)

    async def verify_hukou(self, registers: Registers, id_number: str) -> Hukou | None:
        found = await registers.hukou(id_number)
        if found is None:
            return None
        name, status, region_code = found
        return Hukou(name, d.PersonStatus(status), region_code)

    async def get_household(self, registers: Registers, id: str, number: str) -> HouseholdRecord:
        id, number = household_key(id, number, "id")
        return await registers.household(number, id=id)

    async def list_members(
        self, registers: Registers, id: str, number: str, *, after: tuple[str, str] | None, limit: int
    ) -> tuple[HouseholdRow, MemberPage]:
        """A page of members in register order after the key `after` (household id, member order)."""
        id, number = household_key(id, number)
        household = await registers.household_row(id=id, number=number)
        if after is not None and after[0] != household.id:
            raise InvalidArgument.one("page_token", "BAD_PAGE_TOKEN", "a page token of another household")
        page = await registers.members_page(household.id, after=after[1] if after else None, limit=limit)
        return household, page

    async def get_certificate(self, registers: Registers, number: str) -> CertificateRow:
        if not number:
            raise InvalidArgument.one("number", "REQUIRED")
        row = await registers.certificate(number)
        if row is None:
            raise NotFound("no such migration certificate")
        return row

    async def get_accommodation(
        self, accommodations: Accommodations, id: str, registration_number: str
    ) -> AccommodationRow:
        if not id and not registration_number:
            raise InvalidArgument.one("id", "REQUIRED", "give the id or the registration number")
        return await accommodations.get(id=id, registration_number=registration_number)

    # -- births --------------------------------------------------------------------------------------------

    async def register_birth(
        self, work: Work, cmd: d.RegisterBirth, *, household_id: str, household_number: str
    ) -> Outcome:
        id, number = household_key(household_id, household_number)
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        record = await registers.household(number, id=id, for_update=True)
        result, row = await registers.add_newborn(record, cmd, today=today, now=now)
        assert result.household is not None
        await registers.save_household(record, result.household, now)
        await work.publish(result, now, person_id=row.id, households=(record.row,))
        return Outcome(result, person_row=row, household_row=record.row)

    # -- moves ---------------------------------------------------------------------------------------------

    async def _registered(self, registers: Registers, id_number: str) -> tuple[PersonRecord, HouseholdRecord]:
        """The person and their household, both locked; the person must be a registered member."""
        person = await registers.person(id_number, for_update=True)
        if person.entry.status is not d.PersonStatus.REGISTERED:
            raise not_registered()
        return person, await registers.household(id=person.row.household_id, for_update=True)

    async def move_out(self, work: Work, cmd: d.MoveOut) -> Outcome:
        """The person leaves; a migration certificate is issued under the next free number of the origin
        area and year (none for a same-city transfer)."""
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        person, record = await self._registered(registers, cmd.id_number)
        certificate_number = await registers.next_certificate_number(record.household.region_code, today)
        certificate_row = None
        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            result = d.move_out(
                record.household, cmd, policy=self.policy, today=today, certificate_number=certificate_number
            )
            if result.certificate is None:
                break
            certificate_row = await registers.add_certificate(person, result.certificate, now)
            if certificate_row is not None:
                break
            serial = int(certificate_number[10:]) + 1
            certificate_number = f"{certificate_number[:10]}{serial:06d}"
        else:  # pragma: no cover
            raise RuntimeError("could not allocate a certificate number")
        assert result.household is not None and result.person is not None
        await registers.save_household(record, result.household, now)
        await registers.save_person(person.row, result.person, record.id, now)
        await work.publish(result, now, person_id=person.id, households=(record.row,))
        return Outcome(result, person.row, record.row, certificate_row)

    async def cancel_move_out(self, work: Work, id_number: str, *, reason: str) -> Outcome:
        """Undo a move-out (compensation): its certificate is revoked, the person registered again."""
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        person = await registers.person(id_number, for_update=True)
        pending = person.entry.pending_move
        if person.entry.status is not d.PersonStatus.MOVING_OUT or pending is None:
            raise FailedPrecondition(d.PERSON_NOT_MOVING_OUT, "The person has no move-out to cancel.")
        record = await registers.household(id=person.row.household_id, for_update=True)
        certificate_row = None
        if pending.certificate_number:
            certificate_row = await registers.certificate(pending.certificate_number, for_update=True)
        result = d.cancel_move_out(
            person.entry,
            record.household,
            certificate_to_domain(certificate_row) if certificate_row else None,
            policy=self.policy,
            today=today,
            reason=reason,
        )
        assert result.household is not None and result.person is not None
        await registers.save_household(record, result.household, now)
        await registers.save_person(person.row, result.person, record.id, now)
        if certificate_row is not None and result.certificate is not None:
            await registers.save_certificate(certificate_row, result.certificate, now)
        await work.publish(result, now, person_id=person.id, households=(record.row,))
        return Outcome(result, person.row, record.row, certificate_row)

    async def move_in(
        self,
        work: Work,
        cmd: d.MoveIn,
        *,
        household_id: str = "",
        founding: FoundHousehold | None = None,
    ) -> Outcome:
        """Register a moving person in a household (by `household_id` or ``cmd.household_number``), or in
        a new one (`founding`: its number allocated in the station's area), consuming the certificate."""
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        person = await registers.person(cmd.id_number, for_update=True)
        certificate_row = None
        if cmd.certificate_number:
            certificate_row = await registers.certificate(cmd.certificate_number, for_update=True)
        certificate = certificate_to_domain(certificate_row) if certificate_row else None
        if founding is not None:
            station = await registers.station(founding.police_station_code)
            if station is None:
                raise InvalidArgument.one(
                    "new_household.police_station_code", UNKNOWN_POLICE_STATION, "no such police station"
                )
            for _ in range(MAX_ALLOCATION_ATTEMPTS):
                number = await registers.allocate_household_number(station.jurisdiction)
                new_household = d.NewHousehold(number, founding.type, founding.address, station)
                result = d.move_in(
                    person.entry,
                    None,
                    _with_new_household(cmd, new_household),
                    policy=self.policy,
                    today=today,
                    certificate=certificate,
                )
                assert result.household is not None
                household_row = await registers.add_household(result.household, now)
                if household_row is not None:
                    break
            else:  # pragma: no cover
                raise RuntimeError("could not allocate a household number")
            record = HouseholdRecord(result.household, household_row, {})
        else:
            record = await registers.household(cmd.household_number, id=household_id, for_update=True)
            cmd = _in_household(cmd, record.household.number)
            result = d.move_in(
                person.entry, record.household, cmd, policy=self.policy, today=today, certificate=certificate
            )
            assert result.household is not None
            await registers.save_household(record, result.household, now)
        assert result.person is not None
        await registers.save_person(person.row, result.person, record.id, now)
        if certificate_row is not None and result.certificate is not None:
            await registers.save_certificate(certificate_row, result.certificate, now)
        await work.publish(result, now, person_id=person.id, households=(record.row,))
        return Outcome(
            result, person.row, record.row, certificate_row if result.certificate is not None else None
        )

    # -- deregistration and changes ------------------------------------------------------------------------

    async def deregister(self, work: Work, cmd: d.Deregister) -> Outcome:
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        person, record = await self._registered(registers, cmd.id_number)
        result = d.deregister(record.household, cmd, policy=self.policy, today=today)
        assert result.household is not None and result.person is not None
        await registers.save_household(record, result.household, now)
        await registers.save_person(person.row, result.person, record.id, now)
        await work.publish(result, now, person_id=person.id, households=(record.row,))
        return Outcome(result, person.row, record.row)

    async def change_head(
        self, work: Work, cmd: d.ChangeHead, *, household_id: str, household_number: str
    ) -> Outcome:
        id, number = household_key(household_id, household_number)
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        record = await registers.household(number, id=id, for_update=True)
        result = d.change_head(record.household, cmd, policy=self.policy, today=today)
        assert result.household is not None
        await registers.save_household(record, result.household, now)
        await work.publish(result, now, households=(record.row,))
        return Outcome(result, household_row=record.row)

    async def _change_entry(
        self, work: Work, id_number: str, change: Callable[[d.Household, dt.date], d.Result]
    ) -> Outcome:
        """A change of a registered member's entry: the member's household is loaded, changed, saved."""
        today, now = self.clock.today(), self.clock.now()
        registers = work.registers
        person, record = await self._registered(registers, id_number)
        result = change(record.household, today)
        assert result.household is not None and result.person is not None
        await registers.save_household(record, result.household, now)
        await work.publish(result, now, person_id=person.id, households=(record.row,))
        return Outcome(result, person.row, record.row)

    async def record_civil_capacity(self, work: Work, cmd: d.RecordCivilCapacity) -> Outcome:
        return await self._change_entry(
            work,
            cmd.id_number,
            lambda household, today: d.record_civil_capacity(household, cmd, policy=self.policy, today=today),
        )

    async def change_name(self, work: Work, cmd: d.ChangeName) -> Outcome:
        return await self._change_entry(
            work,
            cmd.id_number,
            lambda household, today: d.change_name(household, cmd, policy=self.policy, today=today),
        )

    async def correct_entry(self, work: Work, cmd: d.CorrectEntry) -> Outcome:
        return await self._change_entry(
            work,
            cmd.id_number,
            lambda household, today: d.correct_entry(household, cmd, policy=self.policy, today=today),
        )

    # -- foreigners' accommodation -------------------------------------------------------------------------

    async def register_accommodation(
        self, work: Work, cmd: d.RegisterAccommodation, *, police_station_code: str
    ) -> Outcome:
        """Register a foreigner's stay at the station, under the next free number of the station and day."""
        today, now = self.clock.today(), self.clock.now()
        station = await work.registers.station(police_station_code)
        if station is None:
            raise InvalidArgument.one("police_station_code", UNKNOWN_POLICE_STATION, "no such police station")
        accommodations = work.accommodations
        registration_number = await accommodations.next_number(station.code, today)
        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            result = d.register_accommodation(
                cmd, station=station, policy=self.policy, now=now, registration_number=registration_number
            )
            assert result.accommodation is not None
            row = await accommodations.add(result.accommodation)
            if row is not None:
                break
            prefix, serial = registration_number[:-5], int(registration_number[-5:]) + 1
            registration_number = f"{prefix}{serial:05d}"
        else:  # pragma: no cover
            raise RuntimeError("could not allocate a registration number")
        await work.publish(result, now, aggregate_id=row.id)
        return Outcome(result, accommodation_row=row)

    async def cancel_accommodation(self, work: Work, id: str, *, reason: str) -> Outcome:
        require_accommodation_id(id)
        now = self.clock.now()
        accommodations = work.accommodations
        row = await accommodations.get(id=id, for_update=True)
        result = d.cancel_accommodation(accommodation_to_domain(row), reason=reason, now=now)
        assert result.accommodation is not None
        await accommodations.save(row, result.accommodation)
        await work.publish(result, now, aggregate_id=row.id)
        return Outcome(result, accommodation_row=row)


@dataclass(frozen=True, slots=True)
class FoundHousehold:
    """The household a person founds on moving in, before its number is allocated."""

    type: d.HouseholdType
    address: str
    police_station_code: str


def _with_new_household(cmd: d.MoveIn, new_household: d.NewHousehold) -> d.MoveIn:
    return d.MoveIn(
        cmd.id_number,
        cmd.arrived_on,
        cmd.relationship_code,
        cmd.certificate_number,
        new_household=new_household,
    )


def _in_household(cmd: d.MoveIn, household_number: str) -> d.MoveIn:
    return d.MoveIn(
        cmd.id_number,
        cmd.arrived_on,
        cmd.relationship_code,
        cmd.certificate_number,
        household_number=household_number,
    )


__all__ = [
    "UNKNOWN_POLICE_STATION",
    "Accommodations",
    "FoundHousehold",
    "Hukou",
    "Outcome",
    "Registers",
    "ResidenceHandlers",
    "Work",
    "household_key",
    "not_registered",
    "require_accommodation_id",
]
