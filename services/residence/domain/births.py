"""Birth registration (出生登记) and the newborn's ID number (docs/domain.md §3.4)."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import date

from services.common.dates import add_months
from services.common.errors import FailedPrecondition, ValidationCollector
from services.common.idnumber import Sex, build_id_number, check_id_number
from services.residence.domain.events import (
    BirthRegistered,
)
from services.residence.domain.model import (
    BAD_VALUE,
    DECLARANT_NOT_ENTITLED,
    HEAD_CODE,
    PARENT_SEX_MISMATCH,
    REGION_CODE_NOT_ASSIGNABLE,
    RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN,
    REQUIRED,
    SEQUENCES_EXHAUSTED,
    UNKNOWN_ETHNICITY,
    Household,
    MaritalStatus,
    PersonEntry,
    ResidencePolicy,
    Result,
)
from services.residence.domain.register import (
    check_name,
    check_past,
    check_text,
    require_open,
    with_members,
)

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
    check_name(v, "person.name", p.name)
    if p.sex is None:
        v.add("person.sex", REQUIRED, "The newborn's sex is required.")
    check_past(v, "person.birth_date", p.birth_date, today)
    check_text(v, "person.birth_place", p.birth_place)
    check_text(v, "person.native_place", p.native_place)
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
    require_open(household)
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
    updated = with_members(household, (*household.members, person), policy, today)
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
