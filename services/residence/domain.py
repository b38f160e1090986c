"""The household register (户口登记, docs/domain.md §3): households, register entries and the events of §3.4.

Pure rules: no I/O, no grpc, no protobuf, no SQL. Every operation is a function that takes the current
state (a `Household`, a `PersonEntry`, a `MigrationCertificate`), a command and "today" (always a
parameter, never read from a clock), validates the command (every field problem at once, as
`InvalidArgument`), applies the business rules (`FailedPrecondition` with a machine-readable reason) and
returns the new state plus the domain events to write to the outbox in the same transaction.

Model (docs/domain.md §3.1-3.3):

* A `Household` is registered by one `PoliceStation`; the station's jurisdiction is a county-level
  region code, the "registering area". Its `members` are the people *registered* in it now, in the
  order of the register (§3.2): head, spouse, children, grandchildren, parents, grandparents, siblings,
  other relatives, non-relatives.
* The head is the one member whose relationship code is ``02`` (户主). An open household always has
  exactly one head, an adult (18 or over) with full civil capacity. A household whose last member leaves
  is closed (`closed_on`), not left headless.
* A `PersonEntry` is the register page of one person (常住人口登记表). People who moved out or were
  deregistered are no longer members of any household; their entry keeps `household_number` (the last
  household) and their status. A person is registered in one place only: only an entry in status
  MOVING_OUT can move in somewhere.
* ID numbers for newborns come from `services.common.idnumber` (GB 11643): the registering area's code,
  the birth date and the first free sequence number of the right parity. See `assign_id_number` for how
  the store makes that race-free.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar

from services.common.dates import add_months, age_on
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, ValidationCollector
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem
from services.common.idnumber import Sex, build_id_number, check_id_number

__all__ = [
    "ADULT_AGE",
    "HEAD_CODE",
    "AccommodationHost",
    "AccommodationRegistered",
    "AccommodationRegistration",
    "AccommodationRegistrationCancelled",
    "Arrival",
    "BirthRegistered",
    "ChangeHead",
    "ChangeName",
    "ChangeRecord",
    "CivilCapacity",
    "CivilCapacityRecorded",
    "CorrectEntry",
    "Deregister",
    "DeregistrationReason",
    "DomainEvent",
    "Education",
    "EntryCorrected",
    "Guardian",
    "HeadChanged",
    "HostKind",
    "Household",
    "HouseholdAwaitingHead",
    "HouseholdClosed",
    "HouseholdType",
    "MaritalStatus",
    "MigrationCertificate",
    "MilitaryService",
    "MoveIn",
    "MoveOut",
    "MoveOutCancelled",
    "NameChanged",
    "NewHousehold",
    "NewbornDetails",
    "PendingMove",
    "PersonDeregistered",
    "PersonEntry",
    "PersonMovedIn",
    "PersonMovedOut",
    "PersonStatus",
    "PoliceStation",
    "RecordCivilCapacity",
    "RegisterAccommodation",
    "RegisterBirth",
    "Relationship",
    "RelationshipTable",
    "ResidencePolicy",
    "Result",
    "Sex",
    "assign_id_number",
    "cancel_accommodation",
    "cancel_move_out",
    "change_head",
    "change_name",
    "check_head",
    "check_household",
    "correct_entry",
    "deregister",
    "establish_household",
    "free_sequences",
    "is_parent_in_household",
    "move_in",
    "move_out",
    "order_members",
    "record_civil_capacity",
    "register_accommodation",
    "register_birth",
    "same_city",
    "sequence_of",
]

ADULT_AGE = 18
HEAD_CODE = "02"
SELF_CODE = "01"

# -- reason codes (FailedPrecondition.reason; stable, documented in the proto) ----------------------------

HEAD_REPLACEMENT_REQUIRED = "HEAD_REPLACEMENT_REQUIRED"
HEAD_NOT_LEAVING = "HEAD_NOT_LEAVING"
HEAD_NOT_ADULT = "HEAD_NOT_ADULT"
HEAD_LACKS_CIVIL_CAPACITY = "HEAD_LACKS_CIVIL_CAPACITY"
GUARDIAN_REQUIRED = "GUARDIAN_REQUIRED"
DECLARANT_NOT_ENTITLED = "DECLARANT_NOT_ENTITLED"
NOT_SIXTEEN_OR_SEVENTEEN = "NOT_SIXTEEN_OR_SEVENTEEN"
HEAD_CHANGE_REQUIRED = "HEAD_CHANGE_REQUIRED"
# A household's follow-up flag: its head died (or left) leaving no member with full civil capacity.
FOLLOW_UP_NO_CAPABLE_HEAD = "NO_MEMBER_WITH_FULL_CIVIL_CAPACITY"
EARNINGS_CAPACITY_AGE = 16
HOUSEHOLD_HEAD_COUNT = "HOUSEHOLD_HEAD_COUNT"
HOUSEHOLD_CLOSED = "HOUSEHOLD_CLOSED"
DUPLICATE_MEMBER = "DUPLICATE_MEMBER"
PERSON_NOT_REGISTERED_HERE = "PERSON_NOT_REGISTERED_HERE"
PERSON_NOT_MOVING_OUT = "PERSON_NOT_MOVING_OUT"
PERSON_ALREADY_REGISTERED = "PERSON_ALREADY_REGISTERED"
SECOND_SPOUSE = "SECOND_SPOUSE"
NEW_HEAD_NOT_A_MEMBER = "NEW_HEAD_NOT_A_MEMBER"
SEQUENCES_EXHAUSTED = "SEQUENCES_EXHAUSTED"
REGION_CODE_NOT_ASSIGNABLE = "REGION_CODE_NOT_ASSIGNABLE"
CERTIFICATE_REQUIRED = "CERTIFICATE_REQUIRED"
CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
CERTIFICATE_ALREADY_USED = "CERTIFICATE_ALREADY_USED"
CERTIFICATE_DESTINATION_MISMATCH = "CERTIFICATE_DESTINATION_MISMATCH"
CERTIFICATE_PERSON_MISMATCH = "CERTIFICATE_PERSON_MISMATCH"
NOT_SAME_CITY = "NOT_SAME_CITY"
SAME_REGISTERING_AREA = "SAME_REGISTERING_AREA"
APPLICANT_NOT_ALLOWED = "APPLICANT_NOT_ALLOWED"
NOTHING_TO_CHANGE = "NOTHING_TO_CHANGE"
CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
HOUSEHOLD_CHANGED_SINCE_MOVE_OUT = "HOUSEHOLD_CHANGED_SINCE_MOVE_OUT"
REGISTRATION_CANCELLED = "REGISTRATION_CANCELLED"

# -- field violation reasons ---------------------------------------------------------------------------

REQUIRED = "REQUIRED"
TOO_LONG = "TOO_LONG"
BAD_CHARACTERS = "BAD_CHARACTERS"
FUTURE_DATE = "FUTURE_DATE"
UNKNOWN_RELATIONSHIP_CODE = "UNKNOWN_RELATIONSHIP_CODE"
RELATIONSHIP_SEX_MISMATCH = "RELATIONSHIP_SEX_MISMATCH"
RELATIONSHIP_NOT_FOR_MEMBER = "RELATIONSHIP_NOT_FOR_MEMBER"
RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN = "RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN"
UNKNOWN_ETHNICITY = "UNKNOWN_ETHNICITY"
BAD_REGION_CODE = "BAD_REGION_CODE"
BEFORE_BIRTH = "BEFORE_BIRTH"
BEFORE_START = "BEFORE_START"
BEFORE_MOVE_OUT = "BEFORE_MOVE_OUT"
NOT_CORRECTABLE = "NOT_CORRECTABLE"
BAD_VALUE = "BAD_VALUE"
SAME_AS_CURRENT = "SAME_AS_CURRENT"
NOT_TIMEZONE_AWARE = "NOT_TIMEZONE_AWARE"
PARENT_SEX_MISMATCH = "PARENT_SEX_MISMATCH"

NAME_MAX_LENGTH = 50
TEXT_MAX_LENGTH = 200
# Han characters, letters, the middle dot of minority and transliterated names (·, •), spaces.
_NAME_RE = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134fA-Za-z·•\u00b7 ]+$")
_REGION_RE = re.compile(r"^\d{6}$")
_MUNICIPALITIES = frozenset({"11", "12", "31", "50"})


# -- enums ---------------------------------------------------------------------------------------------


class HouseholdType(enum.Enum):
    FAMILY = "FAMILY"  # 家庭户
    COLLECTIVE = "COLLECTIVE"  # 集体户


class PersonStatus(enum.Enum):
    REGISTERED = "REGISTERED"
    MOVING_OUT = "MOVING_OUT"
    DEREGISTERED = "DEREGISTERED"


class DeregistrationReason(enum.Enum):
    DEATH = "DEATH"
    CONSCRIPTION = "CONSCRIPTION"
    ARREST = "ARREST"
    EMIGRATION = "EMIGRATION"
    OTHER = "OTHER"


class Education(enum.Enum):
    """文化程度 (GB/T 4658 groups)."""

    POSTGRADUATE = "POSTGRADUATE"
    BACHELOR = "BACHELOR"
    JUNIOR_COLLEGE = "JUNIOR_COLLEGE"
    SECONDARY_VOCATIONAL = "SECONDARY_VOCATIONAL"
    HIGH_SCHOOL = "HIGH_SCHOOL"
    JUNIOR_HIGH = "JUNIOR_HIGH"
    PRIMARY = "PRIMARY"
    ILLITERATE = "ILLITERATE"


class MaritalStatus(enum.Enum):
    """婚姻状况 (GB/T 2261.2)."""

    UNMARRIED = "UNMARRIED"
    MARRIED = "MARRIED"
    WIDOWED = "WIDOWED"
    DIVORCED = "DIVORCED"


class MilitaryService(enum.Enum):
    """兵役状况."""

    NOT_SERVED = "NOT_SERVED"
    DISCHARGED = "DISCHARGED"  # 退出现役
    RESERVE_SOLDIER = "RESERVE_SOLDIER"
    RESERVE_OFFICER = "RESERVE_OFFICER"
    ACTIVE = "ACTIVE"  # 服现役


class HostKind(enum.Enum):
    HOTEL = "HOTEL"  # 旅馆
    RESIDENT = "RESIDENT"  # a resident host (住宿在居民家中)


# -- relationship codes (GB/T 4761-2008, docs/domain.md §3.3) ---------------------------------------------

# Order of the groups on the register (§3.2): head, spouse, children, grandchildren, parents,
# grandparents, siblings, other relatives, non-relatives. Children-in-law (28, 38) are listed with the
# children, as GB/T 4761 groups them.
_GROUP_RANK = {"02": 0, "10": 1, "20": 2, "30": 2, "40": 3, "50": 4, "60": 5, "70": 6, "80": 7, "99": 8}


@dataclass(frozen=True, slots=True)
class Relationship:
    """One GB/T 4761 code. `group` is the two-digit category (``10`` 配偶 … ``80`` 其他, ``99``);
    `sex` is set where the code names a man or a woman (11 夫, 12 妻, 21 独生子 …)."""

    code: str
    name: str
    group: str
    sex: Sex | None = None
    newborn: bool = False  # a relationship a newborn can have towards the head

    @property
    def rank(self) -> int:
        return _GROUP_RANK[self.group]


@dataclass(frozen=True, slots=True)
class RelationshipTable:
    """The whole code table, loaded from ``relationships.toml`` by `services.residence.policy`."""

    by_code: Mapping[str, Relationship]

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_code", MappingProxyType(dict(self.by_code)))

    def get(self, code: str) -> Relationship | None:
        return self.by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def __len__(self) -> int:
        return len(self.by_code)

    def __iter__(self) -> Iterator[Relationship]:
        return iter(self.by_code.values())

    def order_key(self, code: str) -> tuple[int, str]:
        relationship = self.by_code.get(code)
        return (relationship.rank if relationship else 9, code)

    def member_code_problem(self, code: str, sex: Sex | None) -> str | None:
        """The field-violation reason for a household member's relationship code, or None."""
        if not code:
            return REQUIRED
        relationship = self.by_code.get(code)
        if relationship is None:
            return UNKNOWN_RELATIONSHIP_CODE
        if code == SELF_CODE:
            return RELATIONSHIP_NOT_FOR_MEMBER
        if sex is not None and relationship.sex is not None and relationship.sex is not sex:
            return RELATIONSHIP_SEX_MISMATCH
        return None

    def is_spouse(self, code: str) -> bool:
        relationship = self.by_code.get(code)
        return relationship is not None and relationship.group == "10"


# -- policy --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidencePolicy:
    """Time limits and switches that may change by policy (docs/domain.md §3.4), loaded from
    ``policy.toml``."""

    birth_registration_months: int  # 出生登记: within 1 month of birth
    move_in_city_days: int  # 迁入: city, within 3 days of arrival
    move_in_countryside_days: int  # countryside, within 10 days
    death_countryside_months: int  # 死亡: countryside within 1 month (city: before burial, not checked)
    certificate_validity_days: int  # 迁移证 validity (U)
    accommodation_city_hours: int  # Exit-Entry Law Art. 39: 24 h in a city
    accommodation_countryside_hours: int  # 72 h in the countryside
    cancel_card_reasons: frozenset[DeregistrationReason]  # U: card cancelled on deregistration
    card_fields: frozenset[str]  # register items printed on the ID card: correcting one reissues it
    correctable_fields: frozenset[str]
    ethnicities: tuple[str, ...]  # GB 3304 names, in code order
    relationships: RelationshipTable


# -- state ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoliceStation:
    """A registration authority (派出所). `jurisdiction` is its county-level region code (GB/T 2260),
    the address code of numbers assigned there; `rural` chooses the countryside time limits."""

    code: str
    name: str
    jurisdiction: str
    rural: bool = False

    @property
    def province_code(self) -> str:
        return self.jurisdiction[:2]


@dataclass(frozen=True, slots=True)
class Arrival:
    """何时由何地迁来: where from (a place, as written on the register) and when."""

    from_place: str
    on: date


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One line of the entry's change and correction log (变更更正记录)."""

    kind: str  # NAME_CHANGE | CORRECTION
    field: str
    old: str
    new: str
    on: date


@dataclass(frozen=True, slots=True)
class PendingMove:
    """Where a MOVING_OUT person is going: with a migration certificate, or a same-city transfer."""

    origin_region_code: str
    destination_region_code: str
    destination_address: str
    certificate_number: str | None
    same_city: bool
    moved_out_on: date
    # What the move-out changed in the origin household, so that `cancel_move_out` can undo it: the person's
    # relationship code there, the other members' code changes (id number, old code, new code), the head it
    # named, and whether it closed the household.
    former_relationship_code: str = ""
    member_changes: tuple[tuple[str, str, str], ...] = ()
    new_head_id_number: str = ""
    closed_household: bool = False


@dataclass(frozen=True, slots=True)
class PersonEntry:
    """A register entry (常住人口登记表, docs/domain.md §3.2)."""

    id_number: str
    name: str
    sex: Sex
    birth_date: date
    ethnicity: str
    birth_place: str
    native_place: str
    household_number: str  # the current household, or the last one when no longer registered
    relationship_code: str
    registered_on: date
    former_names: tuple[str, ...] = ()
    education: Education | None = None
    marital_status: MaritalStatus | None = None
    military_service: MilitaryService | None = None
    occupation: str = ""
    employer: str = ""  # 服务处所
    arrived_in_city: Arrival | None = None  # 何时由何地迁来本市(县)
    arrived_at_address: Arrival | None = None  # 何时由何地迁来本址
    civil_capacity: CivilCapacity = field(default_factory=lambda: CivilCapacity.BY_AGE)
    civil_capacity_since: date | None = None  # the day a recorded basis took effect
    status: PersonStatus = PersonStatus.REGISTERED
    status_reason: DeregistrationReason | None = None
    status_since: date | None = None
    pending_move: PendingMove | None = None
    change_log: tuple[ChangeRecord, ...] = ()

    def age_on(self, on: date) -> int:
        return age_on(self.birth_date, on)

    def has_full_capacity(self, on: date) -> bool:
        """Full civil capacity (完全民事行为能力) on `on`: from 18; from 16 for a person recorded as living on
        their own earnings; never while a court decision has limited or removed it."""
        if self.civil_capacity is CivilCapacity.BY_AGE:
            return self.age_on(on) >= ADULT_AGE
        if self.civil_capacity is CivilCapacity.OWN_EARNINGS:
            return self.age_on(on) >= EARNINGS_CAPACITY_AGE
        return False

    def masked_id(self) -> str:
        return self.id_number[:6] + "*" * 8 + self.id_number[14:]

    def __repr__(self) -> str:  # no personal data in logs or tracebacks
        return f"PersonEntry({self.masked_id()}, {self.status.value})"


class CivilCapacity(enum.StrEnum):
    """The basis of a person's civil capacity (民事行为能力), its own field of the register entry."""

    BY_AGE = "BY_AGE"  # full from 18 (the default)
    OWN_EARNINGS = "OWN_EARNINGS"  # 16 or 17, living mainly on their own earnings: full (视为完全)
    LIMITED = "LIMITED"  # a court decision: limited capacity (限制民事行为能力)
    NONE = "NONE"  # a court decision: no capacity (无民事行为能力)


@dataclass(frozen=True, slots=True)
class Guardian:
    """Who the hall contacts for a household without a head who can act: a guardian of its members."""

    id_number: str
    name: str
    relationship: str  # in words, e.g. "祖母", "居民委员会"
    phone: str = ""


@dataclass(frozen=True, slots=True)
class Household:
    """A household page (居民户口簿): `members` are the people registered in it now, in register order.
    A household whose head left (died) with no member able to head it has no head for a while: its
    `guardian` is the contact and `follow_up` (since `follow_up_since`) flags it for the hall."""

    number: str
    type: HouseholdType
    address: str
    station: PoliceStation
    members: tuple[PersonEntry, ...]
    established_on: date
    closed_on: date | None = None
    guardian: Guardian | None = None
    follow_up: str = ""
    follow_up_since: date | None = None

    @property
    def region_code(self) -> str:
        return self.station.jurisdiction

    @property
    def head(self) -> PersonEntry:
        heads = [m for m in self.members if m.relationship_code == HEAD_CODE]
        if len(heads) != 1:
            raise FailedPrecondition(HOUSEHOLD_HEAD_COUNT, f"household has {len(heads)} heads, not one")
        return heads[0]

    def member(self, id_number: str) -> PersonEntry:
        for m in self.members:
            if m.id_number == id_number:
                return m
        raise NotFound("no such person registered in this household")

    def has_member(self, id_number: str) -> bool:
        return any(m.id_number == id_number for m in self.members)

    def __repr__(self) -> str:
        return f"Household({self.number}, {self.type.value}, {len(self.members)} members)"


@dataclass(frozen=True, slots=True)
class MigrationCertificate:
    """户口迁移证: issued on move-out, consumed once on move-in at the destination before `valid_until`."""

    number: str
    id_number: str
    name: str
    sex: Sex
    birth_date: date
    origin_region_code: str
    origin_address: str
    origin_household_number: str
    destination_region_code: str
    destination_address: str
    issued_on: date
    valid_until: date
    used_on: date | None = None
    used_by_household: str | None = None
    revoked_on: date | None = None

    def __repr__(self) -> str:
        return f"MigrationCertificate({self.number})"


@dataclass(frozen=True, slots=True)
class AccommodationHost:
    """Who registers the foreigner: a hotel (licence number) or a resident host (ID number)."""

    kind: HostKind
    name: str
    identifier: str


@dataclass(frozen=True, slots=True)
class AccommodationRegistration:
    """境外人员住宿登记 (Exit-Entry Law Art. 39)."""

    registration_number: str
    passport_number: str
    nationality: str
    name: str
    address: str
    station: PoliceStation
    host: AccommodationHost
    arrived_at: datetime
    from_date: date
    to_date: date
    registered_at: datetime
    late: bool
    deadline: datetime | None = None
    cancelled_at: datetime | None = None
    cancellation_reason: str = ""

    def __repr__(self) -> str:
        return f"AccommodationRegistration({self.registration_number})"


# -- events --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Base of the register's events. `type` names the event on the outbox and in WatchEvents."""

    type: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        """JSON-ready payload (enums by value, dates in ISO 8601)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


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


@dataclass(frozen=True, slots=True)
class Result:
    """What an operation returns: the changed state and the events to emit, in order. Fields that the
    operation did not touch are None."""

    events: tuple[DomainEvent, ...]
    household: Household | None = None
    person: PersonEntry | None = None
    certificate: MigrationCertificate | None = None
    origin_household: Household | None = None
    accommodation: AccommodationRegistration | None = None


# -- small helpers -------------------------------------------------------------------------------------


def same_city(region_a: str, region_b: str) -> bool:
    """Same prefecture-level city (同城): the 4-digit prefix, or the whole province for the four
    municipalities, whose counties (``3102xx`` 县) sit under a second prefix."""
    if region_a[:2] != region_b[:2]:
        return False
    if region_a[:2] in _MUNICIPALITIES:
        return True
    return region_a[:4] == region_b[:4]


def order_members(
    members: Iterable[PersonEntry], relationships: RelationshipTable
) -> tuple[PersonEntry, ...]:
    """Register order (§3.2): by relationship group, then code, then age (elder first)."""
    return tuple(
        sorted(
            members,
            key=lambda m: (*relationships.order_key(m.relationship_code), m.birth_date, m.id_number),
        )
    )


def _check_name(v: ValidationCollector, field_name: str, value: str) -> None:
    text = value.strip()
    if not text:
        v.add(field_name, REQUIRED, "A name is required.")
    elif len(text) > NAME_MAX_LENGTH:
        v.add(field_name, TOO_LONG, f"A name has at most {NAME_MAX_LENGTH} characters.")
    elif not _NAME_RE.match(text):
        v.add(field_name, BAD_CHARACTERS, "A name has Han characters, letters and the middle dot only.")


def _check_text(v: ValidationCollector, field_name: str, value: str, *, required: bool = True) -> None:
    text = value.strip()
    if not text:
        if required:
            v.add(field_name, REQUIRED, "This item is required.")
    elif len(text) > TEXT_MAX_LENGTH:
        v.add(field_name, TOO_LONG, f"At most {TEXT_MAX_LENGTH} characters.")


def _check_region(v: ValidationCollector, field_name: str, value: str) -> None:
    if not value:
        v.add(field_name, REQUIRED, "A six-digit region code is required.")
    elif not _REGION_RE.match(value) or value.endswith("00"):
        v.add(field_name, BAD_REGION_CODE, "A county-level region code has six digits, not ending in 00.")


def _check_past(v: ValidationCollector, field_name: str, value: date | None, today: date) -> None:
    if value is None:
        v.add(field_name, REQUIRED, "A date is required.")
    elif value > today:
        v.add(field_name, FUTURE_DATE, "This date is in the future.")


def _require_open(household: Household) -> None:
    if household.closed_on is not None:
        raise FailedPrecondition(HOUSEHOLD_CLOSED, "This household has been closed.")


def check_household(household: Household, today: date) -> None:
    """The household invariants: an open household has distinct members, registered here, and exactly one
    head who is an adult with full civil capacity; at most one spouse of the head."""
    if household.closed_on is not None:
        if household.members:
            raise FailedPrecondition(HOUSEHOLD_CLOSED, "A closed household has no members.")
        return
    seen: set[str] = set()
    for m in household.members:
        if m.id_number in seen:
            raise FailedPrecondition(DUPLICATE_MEMBER, "A person is listed twice in the household.")
        seen.add(m.id_number)
        if m.status is not PersonStatus.REGISTERED or m.household_number != household.number:
            raise FailedPrecondition(
                PERSON_NOT_REGISTERED_HERE, "A member is not registered in this household."
            )
    if household.follow_up and not any(m.relationship_code == HEAD_CODE for m in household.members):
        if household.guardian is None:
            raise FailedPrecondition(
                GUARDIAN_REQUIRED, "A household without a head has a guardian as contact."
            )
    else:
        check_head(household.head, today)  # exactly one, or HOUSEHOLD_HEAD_COUNT
    spouse_codes = {"10", "11", "12"}
    if sum(1 for m in household.members if m.relationship_code in spouse_codes) > 1:
        raise FailedPrecondition(SECOND_SPOUSE, "The head has at most one spouse in the household.")


def check_head(head: PersonEntry, today: date) -> None:
    """A head has full civil capacity (its own field, not an age test): ``HEAD_NOT_ADULT`` for a minor
    without it, ``HEAD_LACKS_CIVIL_CAPACITY`` for a person whose capacity a court limited or removed."""
    if head.has_full_capacity(today):
        return
    if head.civil_capacity in (CivilCapacity.BY_AGE, CivilCapacity.OWN_EARNINGS):
        raise FailedPrecondition(
            HEAD_NOT_ADULT,
            f"The household head must be at least {ADULT_AGE} years old "
            f"(or {EARNINGS_CAPACITY_AGE} and living on their own earnings).",
        )
    raise FailedPrecondition(HEAD_LACKS_CIVIL_CAPACITY, "The household head must have full civil capacity.")


def _with_members(
    household: Household, members: Iterable[PersonEntry], policy: ResidencePolicy, today: date
) -> Household:
    members = order_members(members, policy.relationships)
    if not members:
        return replace(household, members=(), closed_on=today)
    updated = replace(household, members=members)
    check_household(updated, today)
    return updated


def _validate_relationship_updates(
    v: ValidationCollector,
    household: Household,
    updates: Mapping[str, str],
    policy: ResidencePolicy,
    field_name: str,
) -> None:
    for index, (id_number, code) in enumerate(updates.items()):
        member = next((m for m in household.members if m.id_number == id_number), None)
        problem = policy.relationships.member_code_problem(code, member.sex if member else None)
        if problem is None and code == HEAD_CODE:
            problem = RELATIONSHIP_NOT_FOR_MEMBER
        if problem:
            v.add(f"{field_name}[{index}]", problem, "Not a valid relationship for this member.")


def _replace_head(
    household: Household,
    leaving: PersonEntry,
    new_head_id_number: str | None,
    relationship_updates: Mapping[str, str],
    policy: ResidencePolicy,
    today: date,
    cause: str,
    guardian: Guardian | None = None,
) -> tuple[Household, tuple[DomainEvent, ...]]:
    """Remove `leaving` from the household, naming a new head in the same operation when it is the head.
    When the head leaves and no member left has full civil capacity (children, a person a court placed
    under guardianship), no head can be named: with a `guardian` the household stays open without a head,
    the guardian as its contact and the register flagged for follow-up (``GUARDIAN_REQUIRED`` without one).
    Returns the new household and the HeadChanged / HouseholdAwaitingHead / HouseholdClosed event."""
    remaining = [m for m in household.members if m.id_number != leaving.id_number]
    is_head = leaving.relationship_code == HEAD_CODE
    if not remaining:
        closed = replace(
            household, members=(), closed_on=today, guardian=None, follow_up="", follow_up_since=None
        )
        return closed, (HouseholdClosed(household.number, today, cause),)
    if not is_head:
        if new_head_id_number:
            raise FailedPrecondition(
                HEAD_NOT_LEAVING, "A new head is named only when the head leaves the household."
            )
        return _with_members(household, _apply_updates(remaining, relationship_updates), policy, today), ()
    if not new_head_id_number and not any(m.has_full_capacity(today) for m in remaining):
        if guardian is None:
            raise FailedPrecondition(
                GUARDIAN_REQUIRED,
                "No member left can head the household: name a guardian as its contact.",
            )
        awaiting = replace(
            household,
            guardian=guardian,
            follow_up=FOLLOW_UP_NO_CAPABLE_HEAD,
            follow_up_since=today,
        )
        updated = _with_members(awaiting, _apply_updates(remaining, relationship_updates), policy, today)
        event = HouseholdAwaitingHead(
            household.number, leaving.id_number, cause, today, guardian.id_number, FOLLOW_UP_NO_CAPABLE_HEAD
        )
        return updated, (event,)
    if not new_head_id_number:
        raise FailedPrecondition(
            HEAD_REPLACEMENT_REQUIRED,
            "The household head is leaving: name the new head (an adult member) in the same operation.",
        )
    if not any(m.id_number == new_head_id_number for m in remaining):
        raise FailedPrecondition(NEW_HEAD_NOT_A_MEMBER, "The new head must be a member of this household.")
    changes: list[tuple[str, str, str]] = []
    members: list[PersonEntry] = []
    for m in remaining:
        new_code = HEAD_CODE if m.id_number == new_head_id_number else relationship_updates.get(m.id_number)
        if new_code and new_code != m.relationship_code:
            changes.append((m.id_number, m.relationship_code, new_code))
            m = replace(m, relationship_code=new_code)
        members.append(m)
    updated = _with_members(household, members, policy, today)
    event = HeadChanged(household.number, leaving.id_number, new_head_id_number, cause, today, tuple(changes))
    return updated, (event,)


def _apply_updates(members: Iterable[PersonEntry], updates: Mapping[str, str]) -> list[PersonEntry]:
    return [
        replace(m, relationship_code=updates[m.id_number]) if m.id_number in updates else m for m in members
    ]


# -- establishing a household ----------------------------------------------------------------------------


def establish_household(
    number: str,
    household_type: HouseholdType,
    address: str,
    station: PoliceStation,
    members: Iterable[PersonEntry],
    *,
    policy: ResidencePolicy,
    today: date,
) -> Household:
    """A new household (立户) with its members, checked: exactly one adult head, valid codes, one spouse.
    Used by the population generator and by move-in to a new household."""
    members = tuple(
        m if m.household_number == number else replace(m, household_number=number) for m in members
    )
    v = ValidationCollector()
    _check_text(v, "household.number", number)
    _check_text(v, "household.address", address)
    _check_region(v, "household.station.jurisdiction", station.jurisdiction)
    for i, m in enumerate(members):
        problem = policy.relationships.member_code_problem(m.relationship_code, m.sex)
        if problem:
            v.add(f"members[{i}].relationship_code", problem, "Not a valid relationship-to-head code.")
    v.raise_if_any()
    household = Household(
        number=number,
        type=household_type,
        address=address.strip(),
        station=station,
        members=order_members(members, policy.relationships),
        established_on=today,
    )
    check_household(household, today)
    return household


# -- birth registration ------------------------------------------------------------------------------------


def free_sequences(sex: Sex, used: Container[int]) -> Iterator[int]:
    """Free sequence numbers for `sex` in increasing order: odd (1, 3 … 999) for men, even (2, 4 … 998) for
    women; 000 is never assigned."""
    start = 1 if sex is Sex.MALE else 2
    for sequence in range(start, 1000, 2):
        if sequence not in used:
            yield sequence


def sequence_of(id_number: str) -> int:
    """The 3-digit sequence of an 18-digit number (positions 14-16)."""
    return int(id_number[14:17])


def assign_id_number(region_code: str, birth_date: date, sex: Sex, used_sequences: Container[int]) -> str:
    """The newborn's ID number: `region_code` + birth date + the lowest free sequence of the right parity +
    check digit.

    `used_sequences` are the sequences already taken for this region code and birth date (the store reads
    them from the numbers it holds with that 14-digit prefix). The store keeps a unique constraint on the ID
    number; when a concurrent registration took the same number first, the insert fails, the store adds
    that sequence to `used_sequences` (or reads them again) and calls the operation again. Assignment is
    deterministic, so a retry never skips a number and never repeats one."""
    for sequence in free_sequences(sex, used_sequences):
        number = build_id_number(region_code, birth_date, sequence)
        check = check_id_number(number)
        if not check.valid:
            raise FailedPrecondition(
                REGION_CODE_NOT_ASSIGNABLE,
                f"Region code {region_code} cannot be used for a number with birth date {birth_date}: "
                + ", ".join(check.problems),
            )
        return number
    raise FailedPrecondition(
        SEQUENCES_EXHAUSTED, "Every sequence number for this area, birth date and sex is already assigned."
    )


@dataclass(frozen=True, slots=True)
class NewbornDetails:
    name: str
    sex: Sex | None
    birth_date: date | None
    birth_place: str
    ethnicity: str
    native_place: str


@dataclass(frozen=True, slots=True)
class RegisterBirth:
    """出生登记. Field names follow the request: ``person.birth_date``, ``relationship_code`` …"""

    household_number: str
    person: NewbornDetails
    relationship_code: str
    # Who registers the birth, and the parents they name (a declarant who is not the household's head or
    # guardian must be one of them).
    declarant_id_number: str = ""
    mother_id_number: str = ""
    father_id_number: str = ""


def _check_declarant(v: ValidationCollector, cmd: RegisterBirth, today: date) -> None:
    if not cmd.declarant_id_number:
        v.add("declarant_id_number", REQUIRED, "Who registers the birth: a parent, a guardian or the head.")
    elif not check_id_number(cmd.declarant_id_number, today).valid:
        v.add("declarant_id_number", BAD_VALUE, "Not a valid ID number.")
    for field_name, value, sex in (
        ("mother_id_number", cmd.mother_id_number, Sex.FEMALE),
        ("father_id_number", cmd.father_id_number, Sex.MALE),
    ):
        if not value:
            continue
        check = check_id_number(value, today)
        if not check.valid:
            v.add(field_name, BAD_VALUE, "Not a valid ID number.")
        elif check.sex is not sex:
            v.add(field_name, PARENT_SEX_MISMATCH, "The ID number is not a " + sex.value.lower() + "'s.")


def register_birth(
    household: Household,
    cmd: RegisterBirth,
    *,
    policy: ResidencePolicy,
    today: date,
    used_sequences: Container[int],
) -> Result:
    """Register a newborn in `household` and assign its ID number from the registering area's code.

    A registration after the deadline (1 month, policy) is accepted and flagged ``late=True``."""
    p = cmd.person
    v = ValidationCollector()
    _check_name(v, "person.name", p.name)
    if p.sex is None:
        v.add("person.sex", REQUIRED, "The newborn's sex is required.")
    _check_past(v, "person.birth_date", p.birth_date, today)
    _check_text(v, "person.birth_place", p.birth_place)
    _check_text(v, "person.native_place", p.native_place)
    if not p.ethnicity:
        v.add("person.ethnicity", REQUIRED, "The ethnicity is required.")
    elif p.ethnicity not in policy.ethnicities:
        v.add("person.ethnicity", UNKNOWN_ETHNICITY, "Not one of the 56 ethnic groups of GB 3304.")
    problem = policy.relationships.member_code_problem(cmd.relationship_code, p.sex)
    if problem is None:
        relationship = policy.relationships.get(cmd.relationship_code)
        if relationship is None or not relationship.newborn:
            problem = RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN
    if problem:
        v.add("relationship_code", problem, "Not a possible relationship of a newborn to the head.")
    _check_declarant(v, cmd, today)
    v.raise_if_any()
    assert p.sex is not None and p.birth_date is not None
    _require_open(household)
    entitled = {cmd.mother_id_number, cmd.father_id_number} - {""}
    entitled |= {m.id_number for m in household.members if m.relationship_code == HEAD_CODE}
    if household.guardian is not None:
        entitled.add(household.guardian.id_number)
    if cmd.declarant_id_number not in entitled:
        raise FailedPrecondition(
            DECLARANT_NOT_ENTITLED,
            "Only a parent, a guardian or the household's head may register a birth into this household.",
        )

    region_code = household.region_code
    id_number = assign_id_number(region_code, p.birth_date, p.sex, used_sequences)
    deadline = add_months(p.birth_date, policy.birth_registration_months)
    person = PersonEntry(
        id_number=id_number,
        name=p.name.strip(),
        sex=p.sex,
        birth_date=p.birth_date,
        ethnicity=p.ethnicity,
        birth_place=p.birth_place.strip(),
        native_place=p.native_place.strip(),
        household_number=household.number,
        relationship_code=cmd.relationship_code,
        registered_on=today,
        marital_status=MaritalStatus.UNMARRIED,
        status_since=today,
    )
    updated = _with_members(household, (*household.members, person), policy, today)
    event = BirthRegistered(
        id_number=id_number,
        name=person.name,
        sex=p.sex,
        birth_date=p.birth_date,
        household_number=household.number,
        region_code=region_code,
        station_code=household.station.code,
        registered_on=today,
        deadline=deadline,
        late=today > deadline,
    )
    return Result(events=(event,), household=updated, person=person)


# -- move-out --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoveOut:
    """迁出: `new_head_id_number` and `relationship_updates` are needed when the head leaves."""

    id_number: str
    destination_region_code: str
    destination_address: str
    new_head_id_number: str | None = None
    relationship_updates: Mapping[str, str] = field(default_factory=dict)


def move_out(
    household: Household,
    cmd: MoveOut,
    *,
    policy: ResidencePolicy,
    today: date,
    certificate_number: str,
) -> Result:
    """The person leaves `household` and becomes MOVING_OUT. A migration certificate (number from the
    store, validity from policy) is issued, except for a transfer between districts of the same city
    (同城办理), which needs none. The head may leave only when a new head is named in the same command."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    _check_region(v, "destination_region_code", cmd.destination_region_code)
    _check_text(v, "destination_address", cmd.destination_address)
    _validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    _require_open(household)
    person = household.member(cmd.id_number)
    if cmd.destination_region_code == household.region_code:
        raise FailedPrecondition(
            SAME_REGISTERING_AREA,
            "A move within the same registering area is an address change, not a move-out.",
        )
    transfer = same_city(household.region_code, cmd.destination_region_code)
    updated, head_events = _replace_head(
        household, person, cmd.new_head_id_number, cmd.relationship_updates, policy, today, "MOVED_OUT"
    )
    certificate = None
    if not transfer:
        if not certificate_number:
            raise ValueError("certificate_number is required for a move out of the city")
        certificate = MigrationCertificate(
            number=certificate_number,
            id_number=person.id_number,
            name=person.name,
            sex=person.sex,
            birth_date=person.birth_date,
            origin_region_code=household.region_code,
            origin_address=household.address,
            origin_household_number=household.number,
            destination_region_code=cmd.destination_region_code,
            destination_address=cmd.destination_address.strip(),
            issued_on=today,
            valid_until=today + timedelta(days=policy.certificate_validity_days),
        )
    before = {m.id_number: m.relationship_code for m in household.members}
    head_event = next((e for e in head_events if isinstance(e, HeadChanged)), None)
    pending = PendingMove(
        origin_region_code=household.region_code,
        destination_region_code=cmd.destination_region_code,
        destination_address=cmd.destination_address.strip(),
        certificate_number=certificate.number if certificate else None,
        same_city=transfer,
        moved_out_on=today,
        former_relationship_code=person.relationship_code,
        member_changes=tuple(
            (m.id_number, before[m.id_number], m.relationship_code)
            for m in updated.members
            if before[m.id_number] != m.relationship_code
        ),
        new_head_id_number=head_event.new_head_id_number if head_event else "",
        closed_household=updated.closed_on is not None,
    )
    leaving = replace(person, status=PersonStatus.MOVING_OUT, status_since=today, pending_move=pending)
    event = PersonMovedOut(
        id_number=person.id_number,
        household_number=household.number,
        region_code=household.region_code,
        destination_region_code=cmd.destination_region_code,
        destination_address=pending.destination_address,
        certificate_number=pending.certificate_number,
        certificate_valid_until=certificate.valid_until if certificate else None,
        same_city=transfer,
        moved_out_on=today,
    )
    return Result(events=(event, *head_events), household=updated, person=leaving, certificate=certificate)


# -- move-in ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewHousehold:
    """The household a person founds on moving in (立户); the person becomes its head."""

    number: str
    type: HouseholdType
    address: str
    station: PoliceStation


@dataclass(frozen=True, slots=True)
class MoveIn:
    """迁入 into an existing household (`household_number`, with `relationship_code`), or founding one
    (`new_household`). `certificate_number` is empty only for a same-city transfer."""

    id_number: str
    arrived_on: date | None
    relationship_code: str
    certificate_number: str = ""
    household_number: str = ""
    new_household: NewHousehold | None = None


def move_in(
    person: PersonEntry,
    receiving: Household | None,
    cmd: MoveIn,
    *,
    policy: ResidencePolicy,
    today: date,
    certificate: MigrationCertificate | None,
) -> Result:
    """Register a MOVING_OUT person in the receiving household (or in a new one), consuming the migration
    certificate: it must be this person's, unexpired, unused and made out to the receiving area. A same-city
    transfer needs no certificate. Late registration (3 days in a city, 10 in the countryside after arrival)
    is flagged. The event tells identity to update the card's address record (no renewal, §2.3)."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    _check_past(v, "arrived_on", cmd.arrived_on, today)
    founding = cmd.new_household is not None
    if founding:
        if cmd.relationship_code and cmd.relationship_code != HEAD_CODE:
            v.add("relationship_code", RELATIONSHIP_NOT_FOR_MEMBER, "The founder of a household is its head.")
        nh = cmd.new_household
        assert nh is not None
        _check_text(v, "new_household.number", nh.number)
        _check_text(v, "new_household.address", nh.address)
        _check_region(v, "new_household.station.jurisdiction", nh.station.jurisdiction)
    else:
        if not cmd.household_number:
            v.add("household_number", REQUIRED, "The receiving household is required.")
        problem = policy.relationships.member_code_problem(cmd.relationship_code, person.sex)
        if problem is None and cmd.relationship_code == HEAD_CODE:
            problem = RELATIONSHIP_NOT_FOR_MEMBER
        if problem:
            v.add("relationship_code", problem, "Not a valid relationship to the receiving household's head.")
    v.raise_if_any()
    assert cmd.arrived_on is not None

    if person.id_number != cmd.id_number:
        raise NotFound("no such person")
    if person.status is PersonStatus.REGISTERED:
        raise FailedPrecondition(
            PERSON_ALREADY_REGISTERED,
            "The person is registered elsewhere: a person is registered in one place only.",
        )
    if person.status is not PersonStatus.MOVING_OUT or person.pending_move is None:
        raise FailedPrecondition(PERSON_NOT_MOVING_OUT, "The person has not moved out of a household.")

    if founding:
        nh = cmd.new_household
        assert nh is not None
        station, address, number = nh.station, nh.address.strip(), nh.number
    else:
        if receiving is None or receiving.number != cmd.household_number:
            raise NotFound("no such household")
        _require_open(receiving)
        station, address, number = receiving.station, receiving.address, receiving.number
    region_code = station.jurisdiction

    pending = person.pending_move
    if cmd.arrived_on < pending.moved_out_on:
        raise InvalidArgument.one("arrived_on", BEFORE_MOVE_OUT, "The arrival is before the move-out.")
    used_certificate = None
    if pending.same_city and not cmd.certificate_number:
        if not same_city(region_code, pending.origin_region_code):
            raise FailedPrecondition(NOT_SAME_CITY, "A transfer without a certificate must stay in the city.")
        if region_code != pending.destination_region_code:
            raise FailedPrecondition(
                CERTIFICATE_DESTINATION_MISMATCH, "The transfer was made out to another registering area."
            )
    else:
        if certificate is None or not cmd.certificate_number or certificate.number != cmd.certificate_number:
            raise FailedPrecondition(CERTIFICATE_REQUIRED, "A valid migration certificate is required.")
        if certificate.id_number != person.id_number:
            raise FailedPrecondition(
                CERTIFICATE_PERSON_MISMATCH, "The certificate was issued to someone else."
            )
        if certificate.used_on is not None:
            raise FailedPrecondition(
                CERTIFICATE_ALREADY_USED, "The migration certificate has already been used."
            )
        if certificate.revoked_on is not None:
            raise FailedPrecondition(CERTIFICATE_REVOKED, "The migration certificate has been revoked.")
        if today > certificate.valid_until:
            raise FailedPrecondition(CERTIFICATE_EXPIRED, "The migration certificate has expired.")
        if certificate.destination_region_code != region_code:
            raise FailedPrecondition(
                CERTIFICATE_DESTINATION_MISMATCH, "The certificate is made out to another registering area."
            )
        used_certificate = replace(certificate, used_on=today, used_by_household=number)

    origin_place = used_certificate.origin_address if used_certificate else pending.origin_region_code
    arrival = Arrival(origin_place, cmd.arrived_on)
    moved = replace(
        person,
        household_number=number,
        relationship_code=HEAD_CODE if founding else cmd.relationship_code,
        status=PersonStatus.REGISTERED,
        status_reason=None,
        status_since=today,
        pending_move=None,
        arrived_at_address=arrival,
        arrived_in_city=person.arrived_in_city
        if not used_certificate or same_city(used_certificate.origin_region_code, region_code)
        else arrival,
    )
    if founding:
        nh = cmd.new_household
        assert nh is not None
        updated = establish_household(
            nh.number, nh.type, nh.address, nh.station, (moved,), policy=policy, today=today
        )
    else:
        assert receiving is not None
        if receiving.has_member(person.id_number):
            raise FailedPrecondition(DUPLICATE_MEMBER, "The person is already a member of this household.")
        updated = _with_members(receiving, (*receiving.members, moved), policy, today)

    days = policy.move_in_countryside_days if station.rural else policy.move_in_city_days
    deadline = cmd.arrived_on + timedelta(days=days)
    event = PersonMovedIn(
        id_number=person.id_number,
        household_number=number,
        region_code=region_code,
        station_code=station.code,
        address=address,
        relationship_code=moved.relationship_code,
        certificate_number=used_certificate.number if used_certificate else None,
        arrived_on=cmd.arrived_on,
        registered_on=today,
        deadline=deadline,
        late=today > deadline,
    )
    return Result(events=(event,), household=updated, person=moved, certificate=used_certificate)


# -- undoing a move-out (compensation) -------------------------------------------------------------------


def cancel_move_out(
    person: PersonEntry,
    origin: Household,
    certificate: MigrationCertificate | None,
    *,
    policy: ResidencePolicy,
    today: date,
    reason: str = "",
) -> Result:
    """Undo a move-out that has not been completed: the certificate (if any) is revoked and the person is
    REGISTERED in the origin household again with the former relationship code. What the move-out changed
    there is reverted: the other members' codes, the head it named (the person is head again), a household
    it closed (reopened). If the household changed since in a way that conflicts, the move-out stands
    (HOUSEHOLD_CHANGED_SINCE_MOVE_OUT)."""
    pending = person.pending_move
    if person.status is not PersonStatus.MOVING_OUT or pending is None:
        raise FailedPrecondition(PERSON_NOT_MOVING_OUT, "The person has no move-out to cancel.")
    if origin.number != person.household_number:
        raise ValueError("origin must be the household the person moved out of")
    revoked = None
    if pending.certificate_number:
        if certificate is None or certificate.number != pending.certificate_number:
            raise ValueError("the certificate issued on the move-out is required")
        if certificate.used_on is not None:
            raise FailedPrecondition(
                CERTIFICATE_ALREADY_USED, "The migration certificate has already been used."
            )
        revoked = (
            certificate if certificate.revoked_on is not None else replace(certificate, revoked_on=today)
        )
    code = pending.former_relationship_code or person.relationship_code
    restored = replace(
        person,
        household_number=origin.number,
        relationship_code=code,
        status=PersonStatus.REGISTERED,
        status_reason=None,
        status_since=today,
        pending_move=None,
    )
    changed = FailedPrecondition(
        HOUSEHOLD_CHANGED_SINCE_MOVE_OUT, "The household changed since the move-out; it cannot be undone."
    )
    reopened = False
    events: list[DomainEvent] = []
    if origin.closed_on is not None:
        if not pending.closed_household or origin.members:
            raise changed
        reopened = True
        updated = replace(origin, closed_on=None)
        try:
            updated = _with_members(updated, (restored,), policy, today)
        except FailedPrecondition:
            raise changed from None
    else:
        if pending.closed_household:
            raise changed
        current = {m.id_number: m for m in origin.members}
        if restored.id_number in current:
            raise FailedPrecondition(DUPLICATE_MEMBER, "The person is already a member of this household.")
        reverted: dict[str, str] = {}
        for id_number, old, new in pending.member_changes:
            member = current.get(id_number)
            if member is None or member.relationship_code != new:
                raise changed
            reverted[id_number] = old
        try:
            updated = _with_members(
                origin, (*_apply_updates(origin.members, reverted), restored), policy, today
            )
        except FailedPrecondition:
            raise changed from None
        if pending.new_head_id_number:
            events.append(
                HeadChanged(
                    origin.number,
                    pending.new_head_id_number,
                    restored.id_number,
                    "MOVE_OUT_CANCELLED",
                    today,
                    tuple((i, new, old) for i, old, new in pending.member_changes),
                )
            )
    event = MoveOutCancelled(
        id_number=person.id_number,
        household_number=origin.number,
        region_code=origin.region_code,
        certificate_number=pending.certificate_number,
        relationship_code=code,
        head_restored=bool(pending.new_head_id_number) or (reopened and code == HEAD_CODE),
        household_reopened=reopened,
        cancelled_on=today,
        reason=reason.strip(),
    )
    return Result(events=(event, *events), household=updated, person=restored, certificate=revoked)


# -- deregistration --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deregister:
    """注销: death, conscription, arrest, emigration or another reason (§3.4)."""

    id_number: str
    reason: DeregistrationReason | None
    occurred_on: date | None
    new_head_id_number: str | None = None
    relationship_updates: Mapping[str, str] = field(default_factory=dict)
    guardian: Guardian | None = None


def check_guardian(v: ValidationCollector, guardian: Guardian | None, field_name: str, today: date) -> None:
    if guardian is None:
        return
    if not guardian.id_number:
        v.add(f"{field_name}.id_number", REQUIRED, "The guardian's ID number is required.")
    elif not check_id_number(guardian.id_number, today).valid:
        v.add(f"{field_name}.id_number", BAD_VALUE, "Not a valid ID number.")
    _check_name(v, f"{field_name}.name", guardian.name)
    _check_text(v, f"{field_name}.relationship", guardian.relationship)


def deregister(household: Household, cmd: Deregister, *, policy: ResidencePolicy, today: date) -> Result:
    """The person is deregistered and leaves the household; a head is replaced in the same operation, and
    a household left empty is closed. Whether the ID card is cancelled is policy (DOMAIN §3.4, U)."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    if cmd.reason is None:
        v.add("reason", REQUIRED, "The reason is required.")
    _check_past(v, "occurred_on", cmd.occurred_on, today)
    _validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    check_guardian(v, cmd.guardian, "guardian", today)
    v.raise_if_any()
    assert cmd.reason is not None and cmd.occurred_on is not None
    _require_open(household)
    person = household.member(cmd.id_number)
    if cmd.occurred_on < person.birth_date:
        raise FailedPrecondition(BEFORE_BIRTH, "The date is before the person's birth.")
    updated, head_events = _replace_head(
        household,
        person,
        cmd.new_head_id_number,
        cmd.relationship_updates,
        policy,
        today,
        cmd.reason.value,
        guardian=cmd.guardian,
    )
    gone = replace(
        person,
        status=PersonStatus.DEREGISTERED,
        status_reason=cmd.reason,
        status_since=cmd.occurred_on,
        pending_move=None,
    )
    late = (
        cmd.reason is DeregistrationReason.DEATH
        and household.station.rural
        and today > add_months(cmd.occurred_on, policy.death_countryside_months)
    )
    event = PersonDeregistered(
        id_number=person.id_number,
        household_number=household.number,
        reason=cmd.reason,
        occurred_on=cmd.occurred_on,
        registered_on=today,
        cancel_id_card=cmd.reason in policy.cancel_card_reasons,
        late=late,
    )
    return Result(events=(event, *head_events), household=updated, person=gone)


# -- head change -----------------------------------------------------------------------------------------


def _head_for_awaiting(
    household: Household, cmd: ChangeHead, *, policy: ResidencePolicy, today: date
) -> Result:
    """A household flagged for follow-up gets its head (e.g. a child who turned 18, or an adult who moved
    in): the member must have full civil capacity; the guardian contact and the flag are cleared."""
    v = ValidationCollector()
    if not cmd.new_head_id_number:
        v.add("new_head_id_number", REQUIRED, "The new head is required.")
    _validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    _require_open(household)
    if not household.has_member(cmd.new_head_id_number):
        raise FailedPrecondition(NEW_HEAD_NOT_A_MEMBER, "The new head must be a member of this household.")
    updates = {**cmd.relationship_updates, cmd.new_head_id_number: HEAD_CODE}
    changes = tuple(
        (m.id_number, m.relationship_code, updates[m.id_number])
        for m in household.members
        if m.id_number in updates and updates[m.id_number] != m.relationship_code
    )
    headed = replace(household, guardian=None, follow_up="", follow_up_since=None)
    updated = _with_members(headed, _apply_updates(household.members, updates), policy, today)
    event = HeadChanged(household.number, "", cmd.new_head_id_number, "FOLLOW_UP", today, changes)
    return Result(events=(event,), household=updated)


@dataclass(frozen=True, slots=True)
class RecordCivilCapacity:
    """A change of a person's civil capacity: OWN_EARNINGS (16 or 17, on their own earnings), LIMITED or
    NONE (a court decision, `reference` its number), BY_AGE (a court restores it)."""

    id_number: str
    civil_capacity: CivilCapacity | None
    since: date | None
    reference: str = ""


def record_civil_capacity(
    household: Household, cmd: RecordCivilCapacity, *, policy: ResidencePolicy, today: date
) -> Result:
    """Record the basis of a member's civil capacity. OWN_EARNINGS only at 16 or 17
    (``NOT_SIXTEEN_OR_SEVENTEEN``); a court decision names its reference. The head cannot lose full
    capacity while heading the household (``HEAD_CHANGE_REQUIRED``: change the head first)."""
    v = ValidationCollector()
    if cmd.civil_capacity is None:
        v.add("civil_capacity", REQUIRED, "The basis of the capacity is required.")
    _check_past(v, "since", cmd.since, today)
    if cmd.civil_capacity in (CivilCapacity.LIMITED, CivilCapacity.NONE, CivilCapacity.BY_AGE):
        _check_text(v, "reference", cmd.reference)
    v.raise_if_any()
    assert cmd.civil_capacity is not None and cmd.since is not None
    _require_open(household)
    person = household.member(cmd.id_number)
    if cmd.civil_capacity is CivilCapacity.OWN_EARNINGS and person.age_on(today) not in (16, 17):
        raise FailedPrecondition(
            NOT_SIXTEEN_OR_SEVENTEEN, "Own earnings give full capacity only at 16 or 17."
        )
    if cmd.since < person.birth_date:
        raise FailedPrecondition(BEFORE_BIRTH, "The date is before the person's birth.")
    if cmd.civil_capacity is person.civil_capacity:
        raise FailedPrecondition(NOTHING_TO_CHANGE, "The register already records this.")
    changed = replace(person, civil_capacity=cmd.civil_capacity, civil_capacity_since=cmd.since)
    if person.relationship_code == HEAD_CODE and not changed.has_full_capacity(today):
        raise FailedPrecondition(
            HEAD_CHANGE_REQUIRED, "The head would lose full capacity: change the head first."
        )
    updated = replace(
        household, members=tuple(changed if m.id_number == person.id_number else m for m in household.members)
    )
    event = CivilCapacityRecorded(
        person.id_number, cmd.civil_capacity, cmd.since, changed.has_full_capacity(today)
    )
    return Result(events=(event,), household=updated, person=changed)


@dataclass(frozen=True, slots=True)
class ChangeHead:
    """户主变更 while the old head stays a member: the old head takes `old_head_relationship_code`."""

    new_head_id_number: str
    old_head_relationship_code: str
    relationship_updates: Mapping[str, str] = field(default_factory=dict)


def change_head(household: Household, cmd: ChangeHead, *, policy: ResidencePolicy, today: date) -> Result:
    if household.follow_up and not any(m.relationship_code == HEAD_CODE for m in household.members):
        return _head_for_awaiting(household, cmd, policy=policy, today=today)
    v = ValidationCollector()
    if not cmd.new_head_id_number:
        v.add("new_head_id_number", REQUIRED, "The new head is required.")
    old_head = household.head
    problem = policy.relationships.member_code_problem(cmd.old_head_relationship_code, old_head.sex)
    if problem is None and cmd.old_head_relationship_code == HEAD_CODE:
        problem = RELATIONSHIP_NOT_FOR_MEMBER
    if problem:
        v.add("old_head_relationship_code", problem, "Not a valid relationship to the new head.")
    _validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    _require_open(household)
    if not household.has_member(cmd.new_head_id_number) or cmd.new_head_id_number == old_head.id_number:
        raise FailedPrecondition(
            NEW_HEAD_NOT_A_MEMBER, "The new head must be another member of this household."
        )
    updates = dict(cmd.relationship_updates)
    updates[old_head.id_number] = cmd.old_head_relationship_code
    updates[cmd.new_head_id_number] = HEAD_CODE
    changes = tuple(
        (m.id_number, m.relationship_code, updates[m.id_number])
        for m in household.members
        if m.id_number in updates and updates[m.id_number] != m.relationship_code
    )
    updated = _with_members(household, _apply_updates(household.members, updates), policy, today)
    event = HeadChanged(
        household.number, old_head.id_number, cmd.new_head_id_number, "VOLUNTARY", today, changes
    )
    return Result(events=(event,), household=updated)


# -- name change and correction ---------------------------------------------------------------------------

_CHILD_CODES = frozenset({*(str(c) for c in range(20, 28)), "29", *(str(c) for c in range(30, 38)), "39"})
_SPOUSE_CODES = frozenset({"10", "11", "12"})
_HEAD_PARENT_CODES = frozenset({"50", "51", "52", "57", "58"})
_SPOUSE_PARENT_CODES = frozenset({"53", "54", "55", "56"})
_GRANDCHILD_CODES = frozenset({"40", "41", "42", "43", "44", "49"})
_CHILD_OR_IN_LAW_CODES = frozenset({*_CHILD_CODES, "28", "38"})
_SIBLING_CODES = frozenset({"70", "71", "73", "75", "77"})


def is_parent_in_household(household: Household, parent_id_number: str, child_id_number: str) -> bool:
    """Whether the register shows `parent` as a parent of `child`, as far as the relationship-to-head
    codes tell: the head or the head's spouse for the head's children; the head's parents for the head and
    the head's siblings; the spouse's parents (公婆, 岳父母) for the spouse; a child (or child-in-law) of
    the head for a grandchild."""
    if not household.has_member(parent_id_number) or not household.has_member(child_id_number):
        return False
    parent = household.member(parent_id_number).relationship_code
    child = household.member(child_id_number).relationship_code
    if child in _CHILD_CODES:
        return parent == HEAD_CODE or parent in _SPOUSE_CODES
    if child == HEAD_CODE or child in _SIBLING_CODES:
        return parent in _HEAD_PARENT_CODES
    if child in _SPOUSE_CODES:
        return parent in _SPOUSE_PARENT_CODES
    if child in _GRANDCHILD_CODES:
        return parent in _CHILD_OR_IN_LAW_CODES
    return False


@dataclass(frozen=True, slots=True)
class ChangeName:
    """姓名变更: the person if 18 or over; a minor themselves or a parent."""

    id_number: str
    new_name: str
    applicant_id_number: str


def change_name(household: Household, cmd: ChangeName, *, policy: ResidencePolicy, today: date) -> Result:
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    if not cmd.applicant_id_number:
        v.add("applicant_id_number", REQUIRED, "The applicant's ID number is required.")
    _check_name(v, "new_name", cmd.new_name)
    v.raise_if_any()
    _require_open(household)
    person = household.member(cmd.id_number)
    new_name = cmd.new_name.strip()
    if new_name == person.name:
        raise FailedPrecondition(NOTHING_TO_CHANGE, "The new name is the registered name.")
    applicant_is_self = cmd.applicant_id_number == person.id_number
    if person.age_on(today) >= ADULT_AGE:
        if not applicant_is_self:
            raise FailedPrecondition(
                APPLICANT_NOT_ALLOWED, "An adult applies for a change of name in person."
            )
    elif not applicant_is_self and not is_parent_in_household(
        household, cmd.applicant_id_number, person.id_number
    ):
        raise FailedPrecondition(
            APPLICANT_NOT_ALLOWED, "A minor's change of name is applied for by the minor or a parent."
        )
    renamed = replace(
        person,
        name=new_name,
        former_names=(*person.former_names, person.name),
        change_log=(*person.change_log, ChangeRecord("NAME_CHANGE", "name", person.name, new_name, today)),
    )
    updated = _with_members(
        household,
        (renamed if m.id_number == person.id_number else m for m in household.members),
        policy,
        today,
    )
    event = NameChanged(person.id_number, person.name, new_name, today, cmd.applicant_id_number)
    return Result(events=(event,), household=updated, person=renamed)


@dataclass(frozen=True, slots=True)
class CorrectEntry:
    """更正: one registered item, with its new value as text (enum values by name, e.g. ``BACHELOR``)."""

    id_number: str
    field: str
    new_value: str


_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "education": Education,
    "marital_status": MaritalStatus,
    "military_service": MilitaryService,
}


def _as_text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return "、".join(value)
    return "" if value is None else str(value)


def correct_entry(household: Household, cmd: CorrectEntry, *, policy: ResidencePolicy, today: date) -> Result:
    """Correct a wrongly registered item. Items that are part of the ID number (sex, birth date) change
    the number and are not corrected here. A corrected item printed on the card makes the PSB reissue it."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    new_value: Any = cmd.new_value.strip()
    if cmd.field not in policy.correctable_fields:
        v.add("field", NOT_CORRECTABLE, "This item cannot be corrected here.")
    elif cmd.field == "name":
        _check_name(v, "new_value", new_value)
    elif cmd.field == "ethnicity":
        if new_value not in policy.ethnicities:
            v.add("new_value", UNKNOWN_ETHNICITY, "Not one of the 56 ethnic groups of GB 3304.")
    elif cmd.field in _ENUM_FIELDS:
        try:
            new_value = _ENUM_FIELDS[cmd.field](new_value)
        except ValueError:
            v.add("new_value", BAD_VALUE, f"Not a {cmd.field} value.")
    elif cmd.field == "former_names":
        new_value = tuple(n.strip() for n in re.split(r"[、,，]", new_value) if n.strip())
        for name in new_value:
            _check_name(v, "new_value", name)
    else:
        _check_text(v, "new_value", new_value, required=cmd.field in {"birth_place", "native_place"})
    v.raise_if_any()
    _require_open(household)
    person = household.member(cmd.id_number)
    old_value = getattr(person, cmd.field)
    if old_value == new_value:
        raise FailedPrecondition(NOTHING_TO_CHANGE, "The new value is the registered one.")
    old_text, new_text = _as_text(old_value), _as_text(new_value)
    corrected = replace(
        person,
        **{cmd.field: new_value},
        change_log=(*person.change_log, ChangeRecord("CORRECTION", cmd.field, old_text, new_text, today)),
    )
    updated = _with_members(
        household,
        (corrected if m.id_number == person.id_number else m for m in household.members),
        policy,
        today,
    )
    event = EntryCorrected(
        person.id_number,
        cmd.field,
        old_text,
        new_text,
        today,
        card_reissue_required=cmd.field in policy.card_fields,
    )
    return Result(events=(event,), household=updated, person=corrected)


# -- foreigners' accommodation registration ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterAccommodation:
    passport_number: str
    nationality: str
    name: str
    address: str
    host: AccommodationHost | None
    arrived_at: datetime | None
    from_date: date | None
    to_date: date | None


def register_accommodation(
    cmd: RegisterAccommodation,
    *,
    station: PoliceStation,
    policy: ResidencePolicy,
    now: datetime,
    registration_number: str,
) -> Result:
    """住宿登记 of a foreigner at `station` (Exit-Entry Law Art. 39): within 24 hours of arrival in a city,
    72 in the countryside (policy); a later registration is accepted and flagged ``late``."""
    v = ValidationCollector()
    problem = passport_number_problem(cmd.passport_number)
    if problem:
        v.add("passport_number", problem, "Not a plausible passport number.")
    problem = nationality_problem(cmd.nationality)
    if problem:
        v.add("nationality", problem, "An ISO 3166-1 alpha-3 code of a foreign country.")
    _check_name(v, "name", cmd.name)
    _check_text(v, "address", cmd.address)
    if cmd.host is None:
        v.add("host", REQUIRED, "The registering host is required.")
    else:
        _check_text(v, "host.name", cmd.host.name)
        if cmd.host.kind is HostKind.RESIDENT:
            check = check_id_number(cmd.host.identifier)
            for problem in check.problems:
                v.add("host.identifier", problem, "The resident host's citizen ID number.")
        else:
            _check_text(v, "host.identifier", cmd.host.identifier)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if cmd.arrived_at is None:
        v.add("arrived_at", REQUIRED, "The arrival time is required.")
    elif cmd.arrived_at.tzinfo is None:
        v.add("arrived_at", NOT_TIMEZONE_AWARE, "The arrival time needs a time zone.")
    elif cmd.arrived_at > now:
        v.add("arrived_at", FUTURE_DATE, "The arrival is in the future.")
    if cmd.from_date is None:
        v.add("from_date", REQUIRED, "The first night is required.")
    if cmd.to_date is None:
        v.add("to_date", REQUIRED, "The last day is required.")
    elif cmd.from_date is not None and cmd.to_date < cmd.from_date:
        v.add("to_date", BEFORE_START, "The stay ends before it starts.")
    v.raise_if_any()
    assert cmd.host is not None and cmd.arrived_at is not None
    assert cmd.from_date is not None and cmd.to_date is not None

    hours = policy.accommodation_countryside_hours if station.rural else policy.accommodation_city_hours
    deadline = cmd.arrived_at + timedelta(hours=hours)
    late = now > deadline
    passport = normalise_passport_number(cmd.passport_number)
    registration = AccommodationRegistration(
        registration_number=registration_number,
        passport_number=passport,
        nationality=cmd.nationality,
        name=cmd.name.strip(),
        address=cmd.address.strip(),
        station=station,
        host=cmd.host,
        arrived_at=cmd.arrived_at,
        from_date=cmd.from_date,
        to_date=cmd.to_date,
        registered_at=now,
        late=late,
        deadline=deadline,
    )
    event = AccommodationRegistered(
        registration_number=registration_number,
        passport_number=passport,
        nationality=cmd.nationality,
        region_code=station.jurisdiction,
        station_code=station.code,
        host_kind=cmd.host.kind,
        from_date=cmd.from_date,
        to_date=cmd.to_date,
        arrived_at=cmd.arrived_at,
        registered_at=now,
        deadline=deadline,
        late=late,
    )
    return Result(events=(event,), accommodation=registration)


def cancel_accommodation(registration: AccommodationRegistration, *, reason: str, now: datetime) -> Result:
    """Cancel an accommodation registration (compensation, or a stay that did not happen)."""
    v = ValidationCollector()
    _check_text(v, "reason", reason, required=False)
    v.raise_if_any()
    if registration.cancelled_at is not None:
        raise FailedPrecondition(REGISTRATION_CANCELLED, "The registration is already cancelled.")
    cancelled = replace(registration, cancelled_at=now, cancellation_reason=reason.strip())
    event = AccommodationRegistrationCancelled(
        registration_number=registration.registration_number,
        passport_number=registration.passport_number,
        nationality=registration.nationality,
        reason=reason.strip(),
        cancelled_at=now,
    )
    return Result(events=(event,), accommodation=cancelled)
