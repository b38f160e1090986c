"""Loads the identity department's policy (``policy.toml``, packaged beside this module) into the frozen
dataclasses of ``services.identity.domain``.

Everything is checked on load: unknown or missing keys, wrong types, validity brackets with gaps or
overlaps, fee cases without a fee, reductions naming unknown cases, roll-out steps out of order or naming
unknown provinces, material lists naming undescribed materials. Bad data raises `PolicyError` with the
path of the offending value: the service refuses to start rather than apply half a policy.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import tomllib
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

from services.identity.domain import (
    ALL_FEE_CASES,
    OTHER_REJECTION,
    TEMPORARY_CARD,
    AgeBasis,
    ApplicationKind,
    CrossProvincePolicy,
    DeadlinePolicy,
    FeePolicy,
    FeeReduction,
    IdentityPolicy,
    Reduction,
    RolloutStep,
    TemporaryCardPolicy,
    ValidityBracket,
    ValidityPolicy,
)

__all__ = ["PolicyError", "default_policy", "load_policy", "parse_policy"]


class PolicyError(ValueError):
    """The policy data is malformed."""


class _Table:
    """A TOML table read strictly: every key must be read, with the right type."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise PolicyError(f"{path}: expected a table")
        self.data = data
        self.path = path
        self.taken: set[str] = set()

    def get(self, key: str, types: tuple[type, ...], default: Any = ...) -> Any:
        self.taken.add(key)
        if key not in self.data:
            if default is ...:
                raise PolicyError(f"{self.path}.{key}: missing")
            return default
        value = self.data[key]
        wrong_bool = isinstance(value, bool) and bool not in types
        wrong_datetime = isinstance(value, dt.datetime) and dt.datetime not in types
        if wrong_bool or wrong_datetime or not isinstance(value, types):
            raise PolicyError(f"{self.path}.{key}: wrong type {type(value).__name__}")
        return value

    def int(self, key: str, *, minimum: int = 0, maximum: int | None = None, default: Any = ...) -> Any:
        value = self.get(key, (int,), default)
        if value is not None and (value < minimum or (maximum is not None and value > maximum)):
            raise PolicyError(f"{self.path}.{key}: {value} out of range")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, (list,))
        if not values or not all(isinstance(v, str) and v for v in values):
            raise PolicyError(f"{self.path}.{key}: expected a non-empty list of strings")
        if len(set(values)) != len(values):
            raise PolicyError(f"{self.path}.{key}: duplicates")
        return tuple(values)

    def table(self, key: str) -> _Table:
        return _Table(self.get(key, (dict,)), f"{self.path}.{key}")

    def tables(self, key: str) -> list[_Table]:
        items = self.get(key, (list,))
        if not items:
            raise PolicyError(f"{self.path}.{key}: empty")
        return [_Table(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(items)]

    def done(self) -> None:
        extra = set(self.data) - self.taken
        if extra:
            raise PolicyError(f"{self.path}: unknown keys {sorted(extra)}")


def _enum(enum_type: Any, value: str, path: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        raise PolicyError(f"{path}: unknown value {value!r}") from None


def _validity(t: _Table) -> ValidityPolicy:
    brackets = []
    for row in t.tables("bracket"):
        long_term = row.get("long_term", (bool,), False)
        years = None if long_term else row.int("years", minimum=1)
        if long_term and "years" in row.data:
            raise PolicyError(f"{row.path}: a long-term bracket has no years")
        brackets.append(ValidityBracket(row.int("min_age"), row.int("max_age", default=None), years))
        row.done()
    if brackets[0].min_age != 0:
        raise PolicyError(f"{t.path}.bracket: the first bracket must start at age 0")
    for prev, nxt in itertools.pairwise(brackets):
        if prev.max_age is None or prev.max_age < prev.min_age or nxt.min_age != prev.max_age + 1:
            raise PolicyError(f"{t.path}.bracket: brackets must be contiguous ({prev} then {nxt})")
    if brackets[-1].max_age is not None:
        raise PolicyError(f"{t.path}.bracket: the last bracket must have no upper age")
    policy = ValidityPolicy(
        tuple(brackets),
        _enum(AgeBasis, t.get("age_basis", (str,)), f"{t.path}.age_basis"),
        t.int("early_renewal_months", minimum=1, maximum=12),
    )
    t.done()
    return policy


def _fees(t: _Table) -> FeePolicy:
    fen = {case: t.int(case) for case in (*ALL_FEE_CASES, TEMPORARY_CARD)}
    reductions_t = t.table("reduction")
    reductions = {}
    for name in list(reductions_t.data):
        kind = _enum(FeeReduction, name, f"{reductions_t.path}.{name}")
        if kind is FeeReduction.NONE:
            raise PolicyError(f"{reductions_t.path}.NONE: not a reduction")
        row = reductions_t.table(name)
        applies_to = row.strings("applies_to")
        unknown = set(applies_to) - set(ALL_FEE_CASES)
        if unknown:
            raise PolicyError(f"{row.path}.applies_to: unknown fee cases {sorted(unknown)}")
        reductions[kind] = Reduction(row.int("payable_percent", maximum=100), frozenset(applies_to))
        row.done()
    missing = set(FeeReduction) - {FeeReduction.NONE} - set(reductions)
    if missing:
        raise PolicyError(f"{reductions_t.path}: missing {sorted(m.value for m in missing)}")
    reductions_t.done()
    t.done()
    return FeePolicy(MappingProxyType(fen), MappingProxyType(reductions))


def _rollout(t: _Table, provinces: frozenset[str], acceptance: str) -> tuple[RolloutStep, ...]:
    steps = []
    for row in t.tables("rollout"):
        effective = row.get("effective", (dt.date,))
        value = row.get("provinces", (str, list))
        if value == "all":
            step = RolloutStep(effective, frozenset(), True)
        elif isinstance(value, list):
            codes = row.strings("provinces")
            bad = set(codes) - provinces | ({acceptance} & set(codes))
            if bad:
                raise PolicyError(f"{row.path}.provinces: not other mainland provinces {sorted(bad)}")
            step = RolloutStep(effective, frozenset(codes), False)
        else:
            raise PolicyError(f'{row.path}.provinces: a list of province codes or "all"')
        row.done()
        steps.append(step)
    for prev, nxt in itertools.pairwise(steps):
        if nxt.effective <= prev.effective:
            raise PolicyError(f"{t.path}.rollout: steps must be in date order")
        if prev.all_provinces:
            raise PolicyError(f'{t.path}.rollout: nothing can follow an "all" step')
    seen: set[str] = set()
    for step in steps:
        if step.province_codes & seen:
            raise PolicyError(f"{t.path}.rollout: {sorted(step.province_codes & seen)} added twice")
        seen |= step.province_codes
    return tuple(steps)


def _cross_province(t: _Table, provinces: frozenset[str]) -> CrossProvincePolicy:
    acceptance = t.get("acceptance_province_code", (str,))
    if acceptance not in provinces:
        raise PolicyError(f"{t.path}.acceptance_province_code: unknown province {acceptance!r}")
    kinds = frozenset(_enum(ApplicationKind, k, f"{t.path}.kinds") for k in t.strings("kinds"))
    policy = CrossProvincePolicy(
        acceptance_province_code=acceptance,
        kinds=kinds,
        rollout=_rollout(t, provinces, acceptance),
        residence_permit_required=t.get("residence_permit_required", (bool,)),
        ethnic_minority_from=t.get("ethnic_minority_from", (dt.date,), None),
        postal_delivery_from=t.get("postal_delivery_from", (dt.date,), None),
    )
    t.done()
    return policy


def _materials(t: _Table, names: Mapping[str, str]) -> Mapping[str, tuple[str, ...]]:
    allowed = set(ALL_FEE_CASES)
    allowed |= {f"{c}+CROSS_PROVINCE" for c in ALL_FEE_CASES} | {f"{c}+UNDER_16" for c in ALL_FEE_CASES}
    materials = {}
    for key in list(t.data):
        if key not in allowed:
            raise PolicyError(f"{t.path}.{key}: not a fee case")
        items = t.strings(key)
        undescribed = set(items) - set(names)
        if undescribed:
            raise PolicyError(f"{t.path}.{key}: materials without a name {sorted(undescribed)}")
        materials[key] = items
    missing = set(ALL_FEE_CASES) - set(materials)
    if missing:
        raise PolicyError(f"{t.path}: no materials for {sorted(missing)}")
    t.done()
    return MappingProxyType(materials)


def _rejection_codes(t: _Table) -> Mapping[str, str]:
    codes = {key: t.get(key, (str,)) for key in list(t.data)}
    t.done()
    for key, text in codes.items():
        if not (key.isascii() and key.replace("_", "").isalnum() and key == key.upper()) or not text:
            raise PolicyError(f"{t.path}.{key}: an UPPER_SNAKE code with the words the applicant reads")
    if OTHER_REJECTION not in codes:
        raise PolicyError(f"{t.path}: {OTHER_REJECTION} is required")
    return MappingProxyType(codes)


def parse_policy(data: Mapping[str, Any]) -> IdentityPolicy:
    """Validate parsed TOML and build the policy; raises `PolicyError`."""
    root = _Table(data, "policy")
    provinces = frozenset(root.strings("mainland_province_codes"))
    if not all(len(p) == 2 and p.isdigit() for p in provinces):
        raise PolicyError("policy.mainland_province_codes: two-digit codes only")
    names_t = root.table("material_names")
    names = MappingProxyType({k: names_t.get(k, (str,)) for k in list(names_t.data)})
    names_t.done()
    deadlines_t = root.table("deadlines")
    deadlines = DeadlinePolicy(
        deadlines_t.int("statutory_days", minimum=1), deadlines_t.int("remote_extension_days")
    )
    deadlines_t.done()
    temp_t = root.table("temporary_card")
    temporary = TemporaryCardPolicy(
        validity_months=temp_t.int("validity_months", minimum=1),
        issue_within_days=temp_t.int("issue_within_days", minimum=1),
        fee_fen=temp_t.int("fee_fen"),
        hukou_station_only=temp_t.get("hukou_station_only", (bool,)),
        urgent_need_required=temp_t.get("urgent_need_required", (bool,)),
    )
    temp_t.done()
    fees = _fees(root.table("fees"))
    if fees.fen[TEMPORARY_CARD] != temporary.fee_fen:
        raise PolicyError("policy.fees.TEMPORARY_CARD: differs from temporary_card.fee_fen")
    policy = IdentityPolicy(
        mainland_province_codes=provinces,
        validity=_validity(root.table("validity")),
        fees=fees,
        deadlines=deadlines,
        temporary_card=temporary,
        cross_province=_cross_province(root.table("cross_province"), provinces),
        materials=_materials(root.table("materials"), names),
        material_names=names,
        rejection_codes=_rejection_codes(root.table("rejection_codes")),
    )
    root.done()
    return policy


def load_policy(text: str) -> IdentityPolicy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy: not TOML: {exc}") from exc
    return parse_policy(data)


@functools.cache
def default_policy() -> IdentityPolicy:
    """The packaged ``policy.toml``."""
    return load_policy(resources.files("services.identity").joinpath("policy.toml").read_text("utf-8"))
