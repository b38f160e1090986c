"""Loads the residence department's policy data (``policy.toml`` and ``relationships.toml``, packaged beside
this module) into the frozen dataclasses of ``services.residence.domain``.

Everything is checked on load: unknown or missing keys, wrong types, non-positive time limits, unknown
deregistration reasons or register fields, duplicate ethnicities, and a relationship table that is not
GB/T 4761's shape (unique two-digit codes, each in a known group, that group's category code present,
``02`` 户主 present). Bad data raises `PolicyError` with the path of the offending value.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from typing import Any

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

_GROUPS = frozenset({"01", "02", "10", "20", "30", "40", "50", "60", "70", "80", "99"})
_SEXES = {"M": Sex.MALE, "F": Sex.FEMALE}
_PERSON_FIELDS = frozenset(f.name for f in fields(PersonEntry))


class PolicyError(ValueError):
    """The packaged policy data is malformed."""


class _Table:
    """A TOML table read strictly: every key must be taken, with the right type."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise PolicyError(f"{path}: expected a table")
        self.data, self.path, self.taken = data, path, set[str]()

    def _get(self, key: str, types: tuple[type, ...]) -> Any:
        self.taken.add(key)
        if key not in self.data:
            raise PolicyError(f"{self.path}.{key}: missing")
        value = self.data[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise PolicyError(f"{self.path}.{key}: wrong type {type(value).__name__}")
        return value

    def positive_int(self, key: str) -> int:
        value = self._get(key, (int,))
        if value < 1:
            raise PolicyError(f"{self.path}.{key}: must be at least 1")
        return value

    def str(self, key: str, *, optional: bool = False) -> str | None:
        if optional and key not in self.data:
            self.taken.add(key)
            return None
        value = self._get(key, (str,))
        if not value.strip():
            raise PolicyError(f"{self.path}.{key}: empty")
        return value

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._get(key, (list,))
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise PolicyError(f"{self.path}.{key}[{i}]: expected a non-empty string")
        if len(set(value)) != len(value):
            raise PolicyError(f"{self.path}.{key}: duplicate entries")
        return tuple(value)

    def table(self, key: str) -> _Table:
        self.taken.add(key)
        if key not in self.data:
            raise PolicyError(f"{self.path}.{key}: missing")
        return _Table(self.data[key], f"{self.path}.{key}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.taken)
        if unknown:
            raise PolicyError(f"{self.path}: unknown keys {', '.join(unknown)}")


def parse_relationships(doc: Mapping[str, Any]) -> RelationshipTable:
    """The GB/T 4761 table from a parsed ``relationships.toml``."""
    root = _Table(doc, "relationships")
    items = root._get("relationship", (list,))
    root.done()
    by_code: dict[str, Relationship] = {}
    for i, item in enumerate(items):
        t = _Table(item, f"relationships.relationship[{i}]")
        code, name, group = t.str("code"), t.str("name"), t.str("group")
        sex_text = t.str("sex", optional=True)
        newborn = t._get("newborn", (bool,)) if "newborn" in t.data else False
        t.taken.add("newborn")
        t.done()
        assert code is not None and name is not None and group is not None
        if len(code) != 2 or not code.isdigit():
            raise PolicyError(f"{t.path}.code: {code!r} is not a two-digit code")
        if code in by_code:
            raise PolicyError(f"{t.path}.code: duplicate code {code}")
        if group not in _GROUPS:
            raise PolicyError(f"{t.path}.group: unknown group {group!r}")
        expected = _group_of(code)
        if group != expected:
            raise PolicyError(f"{t.path}.group: code {code} belongs to group {expected}, not {group}")
        if sex_text is not None and sex_text not in _SEXES:
            raise PolicyError(f"{t.path}.sex: expected M or F")
        by_code[code] = Relationship(code, name, group, _SEXES[sex_text] if sex_text else None, newborn)
    for group in _GROUPS:
        if group not in by_code:
            raise PolicyError(f"relationships: the category code {group} is missing")
    if by_code[HEAD_CODE].name != "户主":
        raise PolicyError("relationships: code 02 must be 户主")
    if not any(r.newborn for r in by_code.values()):
        raise PolicyError("relationships: no code is marked newborn = true")
    return RelationshipTable(by_code)


def _group_of(code: str) -> str:
    number = int(code)
    if code in {"01", "02"} or number == 99:
        return code
    if number >= 80:
        return "80"
    if number < 10:
        return "??"
    return f"{number // 10}0"


def parse_policy(doc: Mapping[str, Any], relationships: RelationshipTable) -> ResidencePolicy:
    """A `ResidencePolicy` from a parsed ``policy.toml`` and the relationship table."""
    root = _Table(doc, "policy")
    deadlines = root.table("deadlines")
    certificate = root.table("migration_certificate")
    dereg = root.table("deregistration")
    register = root.table("register")
    root.done()

    reasons = []
    for name in dereg.str_list("cancel_id_card_reasons"):
        try:
            reasons.append(DeregistrationReason(name))
        except ValueError:
            raise PolicyError(
                f"policy.deregistration.cancel_id_card_reasons: unknown reason {name!r}"
            ) from None
    card_fields = register.str_list("card_fields")
    correctable = register.str_list("correctable_fields")
    for key, names in (("card_fields", card_fields), ("correctable_fields", correctable)):
        unknown = sorted(set(names) - _PERSON_FIELDS)
        if unknown:
            raise PolicyError(f"policy.register.{key}: not register items: {', '.join(unknown)}")
    not_correctable = {"id_number", "sex", "birth_date", "household_number", "relationship_code", "status"}
    if set(correctable) & not_correctable:
        raise PolicyError("policy.register.correctable_fields: identity and status items cannot be corrected")
    ethnicities = register.str_list("ethnicities")

    policy = ResidencePolicy(
        birth_registration_months=deadlines.positive_int("birth_registration_months"),
        move_in_city_days=deadlines.positive_int("move_in_city_days"),
        move_in_countryside_days=deadlines.positive_int("move_in_countryside_days"),
        death_countryside_months=deadlines.positive_int("death_countryside_months"),
        certificate_validity_days=certificate.positive_int("validity_days"),
        accommodation_city_hours=deadlines.positive_int("accommodation_city_hours"),
        accommodation_countryside_hours=deadlines.positive_int("accommodation_countryside_hours"),
        cancel_card_reasons=frozenset(reasons),
        card_fields=frozenset(card_fields),
        correctable_fields=frozenset(correctable),
        ethnicities=ethnicities,
        relationships=relationships,
    )
    for table in (deadlines, certificate, dereg, register):
        table.done()
    return policy


def load_policy(package: str = "services.residence") -> ResidencePolicy:
    """Read and check ``policy.toml`` and ``relationships.toml`` from `package`."""
    files = resources.files(package)
    try:
        relationships_doc = tomllib.loads(files.joinpath("relationships.toml").read_text(encoding="utf-8"))
        policy_doc = tomllib.loads(files.joinpath("policy.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy data is not valid TOML: {exc}") from exc
    return parse_policy(policy_doc, parse_relationships(relationships_doc))


@functools.cache
def default_policy() -> ResidencePolicy:
    """The packaged policy, read once."""
    return load_policy()
