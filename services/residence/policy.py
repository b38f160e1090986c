"""Loads the residence department's policy data (``policy.toml`` and ``relationships.toml``, packaged beside
this module) into the frozen dataclasses of ``services.residence.domain``.

Both files are decoded by the typed structs below through the one strict reader
(``services.common.tomlfile``): unknown or missing keys, wrong types and non-positive time limits are refused
with the file and the path of the value. What a type cannot say is checked here: unknown register fields,
duplicate ethnicities, and a relationship table that is not GB/T 4761's shape (unique two-digit codes, each
in a known group, that group's category code present, ``02`` 户主 present). Bad data raises `PolicyError`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any, Literal

import msgspec

from services.common.tomlfile import Policy, PolicyError, decode, read_packaged
from services.residence.domain import (
    HEAD_CODE,
    DeregistrationReason,
    PersonEntry,
    Relationship,
    RelationshipTable,
    ResidencePolicy,
    Sex,
)

__all__ = ["PolicyError", "default_policy", "load_policy", "parse_policy", "parse_relationships"]

POLICY_SOURCE = "services/residence/policy.toml"
RELATIONSHIPS_SOURCE = "services/residence/relationships.toml"

_GROUPS = frozenset({"01", "02", "10", "20", "30", "40", "50", "60", "70", "80", "99"})
_SEXES = {"M": Sex.MALE, "F": Sex.FEMALE}
_PERSON_FIELDS = frozenset(f.name for f in fields(PersonEntry))

Positive = Annotated[int, msgspec.Meta(ge=1)]
Text = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
Texts = list[Text]


# -- the files' shapes ------------------------------------------------------------------------------------


class RelationshipRow(Policy, frozen=True):
    code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}$")]
    name: Text
    group: Text
    sex: Literal["M", "F"] | None = None
    # A relationship a newborn can have towards the head (birth registration).
    newborn: bool = False


class RelationshipsFile(Policy, frozen=True):
    relationship: Annotated[list[RelationshipRow], msgspec.Meta(min_length=1)]


class DeadlinesRow(Policy, frozen=True):
    birth_registration_months: Positive
    move_in_city_days: Positive
    move_in_countryside_days: Positive
    death_countryside_months: Positive
    accommodation_city_hours: Positive
    accommodation_countryside_hours: Positive


class CertificateRow(Policy, frozen=True):
    validity_days: Positive


class DeregistrationRow(Policy, frozen=True):
    cancel_id_card_reasons: list[DeregistrationReason]


class RegisterRow(Policy, frozen=True):
    card_fields: Texts
    correctable_fields: Texts
    ethnicities: Annotated[Texts, msgspec.Meta(min_length=1)]


class PolicyFile(Policy, frozen=True):
    deadlines: DeadlinesRow
    migration_certificate: CertificateRow
    deregistration: DeregistrationRow
    register: RegisterRow


# -- the rules a type cannot say ----------------------------------------------------------------------------


def build_relationships(doc: RelationshipsFile) -> RelationshipTable:
    by_code: dict[str, Relationship] = {}
    for i, row in enumerate(doc.relationship):
        where = f"{RELATIONSHIPS_SOURCE}: relationship[{i}]"
        if row.code in by_code:
            raise PolicyError(f"{where}.code: duplicate code {row.code}")
        if row.group not in _GROUPS:
            raise PolicyError(f"{where}.group: unknown group {row.group!r}")
        expected = _group_of(row.code)
        if row.group != expected:
            raise PolicyError(f"{where}.group: code {row.code} belongs to group {expected}, not {row.group}")
        by_code[row.code] = Relationship(
            row.code, row.name, row.group, _SEXES[row.sex] if row.sex else None, row.newborn
        )
    for group in _GROUPS:
        if group not in by_code:
            raise PolicyError(f"{RELATIONSHIPS_SOURCE}: the category code {group} is missing")
    if by_code[HEAD_CODE].name != "户主":
        raise PolicyError(f"{RELATIONSHIPS_SOURCE}: code 02 must be 户主")
    if not any(r.newborn for r in by_code.values()):
        raise PolicyError(f"{RELATIONSHIPS_SOURCE}: no code is marked newborn = true")
    return RelationshipTable(by_code)


def parse_relationships(doc: Mapping[str, Any]) -> RelationshipTable:
    """The GB/T 4761 table from a parsed ``relationships.toml``."""
    return build_relationships(decode(doc, RelationshipsFile, RELATIONSHIPS_SOURCE))


def _group_of(code: str) -> str:
    number = int(code)
    if code in {"01", "02"} or number == 99:
        return code
    if number >= 80:
        return "80"
    if number < 10:
        return "??"
    return f"{number // 10}0"


def _unique(values: list[str], path: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise PolicyError(f"{POLICY_SOURCE}: {path}: duplicate entries")
    return tuple(values)


def build_policy(doc: PolicyFile, relationships: RelationshipTable) -> ResidencePolicy:
    reasons = doc.deregistration.cancel_id_card_reasons
    if len(set(reasons)) != len(reasons):
        raise PolicyError(f"{POLICY_SOURCE}: deregistration.cancel_id_card_reasons: duplicate entries")
    register = doc.register
    card_fields = _unique(register.card_fields, "register.card_fields")
    correctable = _unique(register.correctable_fields, "register.correctable_fields")
    for key, names in (("card_fields", card_fields), ("correctable_fields", correctable)):
        unknown = sorted(set(names) - _PERSON_FIELDS)
        if unknown:
            raise PolicyError(f"{POLICY_SOURCE}: register.{key}: not register items: {', '.join(unknown)}")
    not_correctable = {"id_number", "sex", "birth_date", "household_number", "relationship_code", "status"}
    if set(correctable) & not_correctable:
        raise PolicyError(
            f"{POLICY_SOURCE}: register.correctable_fields: identity and status items cannot be corrected"
        )
    d = doc.deadlines
    return ResidencePolicy(
        birth_registration_months=d.birth_registration_months,
        move_in_city_days=d.move_in_city_days,
        move_in_countryside_days=d.move_in_countryside_days,
        death_countryside_months=d.death_countryside_months,
        certificate_validity_days=doc.migration_certificate.validity_days,
        accommodation_city_hours=d.accommodation_city_hours,
        accommodation_countryside_hours=d.accommodation_countryside_hours,
        cancel_card_reasons=frozenset(reasons),
        card_fields=frozenset(card_fields),
        correctable_fields=frozenset(correctable),
        ethnicities=_unique(register.ethnicities, "register.ethnicities"),
        relationships=relationships,
    )


def parse_policy(doc: Mapping[str, Any], relationships: RelationshipTable) -> ResidencePolicy:
    """A `ResidencePolicy` from a parsed ``policy.toml`` (tests mutate it) and the relationship table."""
    return build_policy(decode(doc, PolicyFile, POLICY_SOURCE), relationships)


def load_policy(package: str = "services.residence") -> ResidencePolicy:
    """Read and check ``policy.toml`` and ``relationships.toml`` from `package`."""
    relationships = build_relationships(read_packaged(package, "relationships.toml", RelationshipsFile))
    return build_policy(read_packaged(package, "policy.toml", PolicyFile), relationships)


@functools.cache
def default_policy() -> ResidencePolicy:
    """The packaged policy, read once."""
    return load_policy()
