"""The register's state: households and their members' entries, migration certificates, foreigners'
accommodation registrations; the enums, the relationship-code table, the policy and the reason codes."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType

from services.common.dates import age_on
from services.common.errors import FailedPrecondition, NotFound
from services.common.events import DomainEvent
from services.common.idnumber import Sex

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


# -- results --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """What an operation returns: the changed state and the events to emit, in order (a
    ``services.common.events.HasEvents``: an operation may change several aggregates, so it has its own
    result type rather than ``Changed[T]``). Fields that the operation did not touch are None."""

    events: tuple[DomainEvent, ...]
    household: Household | None = None
    person: PersonEntry | None = None
    certificate: MigrationCertificate | None = None
    accommodation: AccommodationRegistration | None = None
