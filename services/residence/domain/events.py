"""The register's domain events (docs/domain.md §3.4): a published contract. Identity and the gateway
follow them on residence's WatchEvents stream; their `type` names and payloads do not change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from services.common.events import DomainEvent
from services.common.idnumber import Sex
from services.residence.domain.model import (
    CivilCapacity,
    DeregistrationReason,
    HostKind,
)


@dataclass(frozen=True, slots=True)
class BirthRegistered(DomainEvent):
    type: ClassVar[str] = "BirthRegistered"
    id_number: str
    name: str
    sex: Sex
    birth_date: date
    household_number: str
    region_code: str
    station_code: str
    registered_on: date
    deadline: date
    late: bool


@dataclass(frozen=True, slots=True)
class PersonMovedOut(DomainEvent):
    type: ClassVar[str] = "PersonMovedOut"
    id_number: str
    household_number: str
    region_code: str
    destination_region_code: str
    destination_address: str
    certificate_number: str | None
    certificate_valid_until: date | None
    same_city: bool
    moved_out_on: date


@dataclass(frozen=True, slots=True)
class PersonMovedIn(DomainEvent):
    """Identity updates the card's address record (§2.3): no renewal is opened by a move."""

    type: ClassVar[str] = "PersonMovedIn"
    id_number: str
    household_number: str
    region_code: str
    station_code: str
    address: str
    relationship_code: str
    certificate_number: str | None
    arrived_on: date
    registered_on: date
    deadline: date
    late: bool
    card_address_update_required: bool = True
    card_renewal_required: bool = False


@dataclass(frozen=True, slots=True)
class PersonDeregistered(DomainEvent):
    type: ClassVar[str] = "PersonDeregistered"
    id_number: str
    household_number: str
    reason: DeregistrationReason
    occurred_on: date
    registered_on: date
    cancel_id_card: bool
    late: bool = False


@dataclass(frozen=True, slots=True)
class NameChanged(DomainEvent):
    """The ID card must be renewed after a name change (Law Art. 11)."""

    type: ClassVar[str] = "NameChanged"
    id_number: str
    old_name: str
    new_name: str
    changed_on: date
    applicant_id_number: str
    card_renewal_required: bool = True


@dataclass(frozen=True, slots=True)
class EntryCorrected(DomainEvent):
    """A registered item was corrected; the PSB reissues the card when the item is printed on it."""

    type: ClassVar[str] = "EntryCorrected"
    id_number: str
    field: str
    old_value: str
    new_value: str
    corrected_on: date
    card_reissue_required: bool = True


@dataclass(frozen=True, slots=True)
class HeadChanged(DomainEvent):
    type: ClassVar[str] = "HeadChanged"
    household_number: str
    old_head_id_number: str
    new_head_id_number: str
    cause: str  # DEATH, CONSCRIPTION, … (a deregistration), MOVED_OUT, or VOLUNTARY
    changed_on: date
    relationship_changes: tuple[tuple[str, str, str], ...] = ()  # (id number, old code, new code)


@dataclass(frozen=True, slots=True)
class HouseholdAwaitingHead(DomainEvent):
    """The head left (died) and no member can head the household: a guardian is its contact and the
    register is flagged for the hall's follow-up."""

    type: ClassVar[str] = "HouseholdAwaitingHead"
    household_number: str
    old_head_id_number: str
    cause: str
    since: date
    guardian_id_number: str
    follow_up: str


@dataclass(frozen=True, slots=True)
class CivilCapacityRecorded(DomainEvent):
    type: ClassVar[str] = "CivilCapacityRecorded"
    id_number: str
    civil_capacity: CivilCapacity
    since: date
    full_civil_capacity: bool


@dataclass(frozen=True, slots=True)
class HouseholdClosed(DomainEvent):
    type: ClassVar[str] = "HouseholdClosed"
    household_number: str
    closed_on: date
    cause: str


@dataclass(frozen=True, slots=True)
class AccommodationRegistered(DomainEvent):
    type: ClassVar[str] = "AccommodationRegistered"
    registration_number: str
    passport_number: str
    nationality: str
    region_code: str
    station_code: str
    host_kind: HostKind
    from_date: date
    to_date: date
    arrived_at: datetime
    registered_at: datetime
    deadline: datetime
    late: bool


@dataclass(frozen=True, slots=True)
class MoveOutCancelled(DomainEvent):
    """A move-out undone (compensation): the certificate is revoked, the person registered here again."""

    type: ClassVar[str] = "MoveOutCancelled"
    id_number: str
    household_number: str
    region_code: str
    certificate_number: str | None
    relationship_code: str
    head_restored: bool
    household_reopened: bool
    cancelled_on: date
    reason: str


@dataclass(frozen=True, slots=True)
class AccommodationRegistrationCancelled(DomainEvent):
    type: ClassVar[str] = "AccommodationRegistrationCancelled"
    registration_number: str
    passport_number: str
    nationality: str
    reason: str
    cancelled_at: datetime
