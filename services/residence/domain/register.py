"""Households and their heads (docs/domain.md §3.1-3.3): the household invariants, the validation every
operation shares, establishing a household, naming a head, and a person's civil capacity."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from services.common.errors import FailedPrecondition, ValidationCollector
from services.common.events import DomainEvent
from services.residence.domain.events import (
    CivilCapacityRecorded,
    HeadChanged,
    HouseholdAwaitingHead,
    HouseholdClosed,
)
from services.residence.domain.model import (
    _MUNICIPALITIES,
    ADULT_AGE,
    BAD_CHARACTERS,
    BAD_REGION_CODE,
    BEFORE_BIRTH,
    DUPLICATE_MEMBER,
    EARNINGS_CAPACITY_AGE,
    FOLLOW_UP_NO_CAPABLE_HEAD,
    FUTURE_DATE,
    GUARDIAN_REQUIRED,
    HEAD_CHANGE_REQUIRED,
    HEAD_CODE,
    HEAD_LACKS_CIVIL_CAPACITY,
    HEAD_NOT_ADULT,
    HEAD_NOT_LEAVING,
    HEAD_REPLACEMENT_REQUIRED,
    HOUSEHOLD_CLOSED,
    NAME_MAX_LENGTH,
    NEW_HEAD_NOT_A_MEMBER,
    NOT_SIXTEEN_OR_SEVENTEEN,
    NOTHING_TO_CHANGE,
    PERSON_NOT_REGISTERED_HERE,
    RELATIONSHIP_NOT_FOR_MEMBER,
    REQUIRED,
    SECOND_SPOUSE,
    TEXT_MAX_LENGTH,
    TOO_LONG,
    CivilCapacity,
    Guardian,
    Household,
    HouseholdType,
    PersonEntry,
    PersonStatus,
    PoliceStation,
    RelationshipTable,
    ResidencePolicy,
    Result,
)

# Han characters, letters, the middle dot of minority and transliterated names (·, •), spaces.
_NAME_RE = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134fA-Za-z·•\u00b7 ]+$")
_REGION_RE = re.compile(r"^\d{6}$")


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


def check_name(v: ValidationCollector, field_name: str, value: str) -> None:
    text = value.strip()
    if not text:
        v.add(field_name, REQUIRED, "A name is required.")
    elif len(text) > NAME_MAX_LENGTH:
        v.add(field_name, TOO_LONG, f"A name has at most {NAME_MAX_LENGTH} characters.")
    elif not _NAME_RE.match(text):
        v.add(field_name, BAD_CHARACTERS, "A name has Han characters, letters and the middle dot only.")


def check_text(v: ValidationCollector, field_name: str, value: str, *, required: bool = True) -> None:
    text = value.strip()
    if not text:
        if required:
            v.add(field_name, REQUIRED, "This item is required.")
    elif len(text) > TEXT_MAX_LENGTH:
        v.add(field_name, TOO_LONG, f"At most {TEXT_MAX_LENGTH} characters.")


def check_region(v: ValidationCollector, field_name: str, value: str) -> None:
    if not value:
        v.add(field_name, REQUIRED, "A six-digit region code is required.")
    elif not _REGION_RE.match(value) or value.endswith("00"):
        v.add(field_name, BAD_REGION_CODE, "A county-level region code has six digits, not ending in 00.")


def check_past(v: ValidationCollector, field_name: str, value: date | None, today: date) -> None:
    if value is None:
        v.add(field_name, REQUIRED, "A date is required.")
    elif value > today:
        v.add(field_name, FUTURE_DATE, "This date is in the future.")


def require_open(household: Household) -> None:
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


def with_members(
    household: Household, members: Iterable[PersonEntry], policy: ResidencePolicy, today: date
) -> Household:
    members = order_members(members, policy.relationships)
    if not members:
        return replace(household, members=(), closed_on=today)
    updated = replace(household, members=members)
    check_household(updated, today)
    return updated


def validate_relationship_updates(
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


def replace_head(
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
        return with_members(household, apply_updates(remaining, relationship_updates), policy, today), ()
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
        updated = with_members(awaiting, apply_updates(remaining, relationship_updates), policy, today)
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
    updated = with_members(household, members, policy, today)
    changed = HeadChanged(
        household.number, leaving.id_number, new_head_id_number, cause, today, tuple(changes)
    )
    return updated, (changed,)


def apply_updates(members: Iterable[PersonEntry], updates: Mapping[str, str]) -> list[PersonEntry]:
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
    check_text(v, "household.number", number)
    check_text(v, "household.address", address)
    check_region(v, "household.station.jurisdiction", station.jurisdiction)
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


# -- head change -----------------------------------------------------------------------------------------


def _head_for_awaiting(
    household: Household, cmd: ChangeHead, *, policy: ResidencePolicy, today: date
) -> Result:
    """A household flagged for follow-up gets its head (e.g. a child who turned 18, or an adult who moved
    in): the member must have full civil capacity; the guardian contact and the flag are cleared."""
    v = ValidationCollector()
    if not cmd.new_head_id_number:
        v.add("new_head_id_number", REQUIRED, "The new head is required.")
    validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    require_open(household)
    if not household.has_member(cmd.new_head_id_number):
        raise FailedPrecondition(NEW_HEAD_NOT_A_MEMBER, "The new head must be a member of this household.")
    updates = {**cmd.relationship_updates, cmd.new_head_id_number: HEAD_CODE}
    changes = tuple(
        (m.id_number, m.relationship_code, updates[m.id_number])
        for m in household.members
        if m.id_number in updates and updates[m.id_number] != m.relationship_code
    )
    headed = replace(household, guardian=None, follow_up="", follow_up_since=None)
    updated = with_members(headed, apply_updates(household.members, updates), policy, today)
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
    check_past(v, "since", cmd.since, today)
    if cmd.civil_capacity in (CivilCapacity.LIMITED, CivilCapacity.NONE, CivilCapacity.BY_AGE):
        check_text(v, "reference", cmd.reference)
    v.raise_if_any()
    assert cmd.civil_capacity is not None and cmd.since is not None
    require_open(household)
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
    validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    v.raise_if_any()
    require_open(household)
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
    updated = with_members(household, apply_updates(household.members, updates), policy, today)
    event = HeadChanged(
        household.number, old_head.id_number, cmd.new_head_id_number, "VOLUNTARY", today, changes
    )
    return Result(events=(event,), household=updated)
