"""Changes to a register entry: deregistration (注销), name change (姓名变更) and correction (更正)
(docs/domain.md §3.4)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from services.common.dates import add_months
from services.common.errors import FailedPrecondition, ValidationCollector
from services.common.idnumber import check_id_number
from services.residence.domain.events import (
    EntryCorrected,
    NameChanged,
    PersonDeregistered,
)
from services.residence.domain.model import (
    ADULT_AGE,
    APPLICANT_NOT_ALLOWED,
    BAD_VALUE,
    BEFORE_BIRTH,
    HEAD_CODE,
    NOT_CORRECTABLE,
    NOTHING_TO_CHANGE,
    REQUIRED,
    UNKNOWN_ETHNICITY,
    ChangeRecord,
    DeregistrationReason,
    Education,
    Guardian,
    Household,
    MaritalStatus,
    MilitaryService,
    PersonStatus,
    ResidencePolicy,
    Result,
)
from services.residence.domain.register import (
    check_name,
    check_past,
    check_text,
    replace_head,
    require_open,
    validate_relationship_updates,
    with_members,
)

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
    check_name(v, f"{field_name}.name", guardian.name)
    check_text(v, f"{field_name}.relationship", guardian.relationship)


def deregister(household: Household, cmd: Deregister, *, policy: ResidencePolicy, today: date) -> Result:
    """The person is deregistered and leaves the household; a head is replaced in the same operation, and
    a household left empty is closed. Whether the ID card is cancelled is policy (DOMAIN §3.4, U)."""
    v = ValidationCollector()
    if not cmd.id_number:
        v.add("id_number", REQUIRED, "The person's ID number is required.")
    if cmd.reason is None:
        v.add("reason", REQUIRED, "The reason is required.")
    check_past(v, "occurred_on", cmd.occurred_on, today)
    validate_relationship_updates(v, household, cmd.relationship_updates, policy, "relationship_updates")
    check_guardian(v, cmd.guardian, "guardian", today)
    v.raise_if_any()
    assert cmd.reason is not None and cmd.occurred_on is not None
    require_open(household)
    person = household.member(cmd.id_number)
    if cmd.occurred_on < person.birth_date:
        raise FailedPrecondition(BEFORE_BIRTH, "The date is before the person's birth.")
    updated, head_events = replace_head(
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
    check_name(v, "new_name", cmd.new_name)
    v.raise_if_any()
    require_open(household)
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
    updated = with_members(
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
        return str(value.value)
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
        check_name(v, "new_value", new_value)
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
            check_name(v, "new_value", name)
    else:
        check_text(v, "new_value", new_value, required=cmd.field in {"birth_place", "native_place"})
    v.raise_if_any()
    require_open(household)
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
    updated = with_members(
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
