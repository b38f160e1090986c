"""Loads the identity department's policy (``policy.toml``, packaged beside this module) into the frozen
dataclasses of ``services.identity.domain``.

The file is decoded by the typed structs below through the one strict reader (``services.common.tomlfile``):
unknown or missing keys and wrong types are refused with the file and the path of the value. What a type
cannot say is checked here: validity brackets with gaps or overlaps, fee cases without a fee, reductions
naming unknown cases, roll-out steps out of order or naming unknown provinces, material lists naming
undescribed materials. Bad data raises `PolicyError`: the service refuses to start rather than apply half a
policy.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

import msgspec

from services.common.tomlfile import Policy, PolicyError, decode, read_packaged
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

__all__ = ["PolicyError", "PolicyFile", "default_policy", "parse_policy"]

SOURCE = "services/identity/policy.toml"

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
Code = Annotated[str, msgspec.Meta(min_length=1)]
Codes = Annotated[list[Code], msgspec.Meta(min_length=1)]
ProvinceCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2}$")]
# A rejection reason's machine code (UPPER_SNAKE) and the words an applicant reads.
ReasonCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=40)]
Text = Annotated[str, msgspec.Meta(min_length=1)]


# -- the file's shape -------------------------------------------------------------------------------------


class BracketRow(Policy, frozen=True):
    min_age: NonNegative
    max_age: NonNegative | None = None
    years: Positive | None = None
    long_term: bool = False


class ValidityRow(Policy, frozen=True):
    age_basis: AgeBasis
    early_renewal_months: Annotated[int, msgspec.Meta(ge=1, le=12)]
    bracket: Annotated[list[BracketRow], msgspec.Meta(min_length=1)]


class ReductionRow(Policy, frozen=True):
    payable_percent: Percent
    applies_to: Codes


def _fee_attr(case: str) -> str:
    return case.lower().replace(".", "_")


_FEE_KEYS = (*ALL_FEE_CASES, TEMPORARY_CARD)
# One field per fee case (``RENEWAL.EXPIRY`` …), so that a missing or unknown case is a decoding error.
FeesRow = msgspec.defstruct(
    "FeesRow",
    [*((_fee_attr(case), NonNegative) for case in _FEE_KEYS), ("reduction", dict[str, ReductionRow])],
    bases=(Policy,),
    rename={_fee_attr(case): case for case in _FEE_KEYS},
    forbid_unknown_fields=True,
    frozen=True,
)


class DeadlinesRow(Policy, frozen=True):
    statutory_days: Positive
    remote_extension_days: NonNegative


class TemporaryCardRow(Policy, frozen=True):
    validity_months: Positive
    issue_within_days: Positive
    fee_fen: NonNegative
    hukou_station_only: bool
    urgent_need_required: bool


class RolloutRow(Policy, frozen=True):
    effective: dt.date
    provinces: Literal["all"] | Codes


class CrossProvinceRow(Policy, frozen=True):
    acceptance_province_code: str
    kinds: Annotated[list[ApplicationKind], msgspec.Meta(min_length=1)]
    residence_permit_required: bool
    rollout: Annotated[list[RolloutRow], msgspec.Meta(min_length=1)]
    ethnic_minority_from: dt.date | None = None
    postal_delivery_from: dt.date | None = None


class PolicyFile(Policy, frozen=True):
    mainland_province_codes: Annotated[list[ProvinceCode], msgspec.Meta(min_length=1)]
    validity: ValidityRow
    fees: FeesRow  # type: ignore[valid-type]
    deadlines: DeadlinesRow
    temporary_card: TemporaryCardRow
    cross_province: CrossProvinceRow
    materials: dict[str, Codes]
    material_names: dict[str, Code]
    rejection_codes: dict[ReasonCode, Text]


# -- the rules a type cannot say ----------------------------------------------------------------------------


def _unique(values: list[str], path: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise PolicyError(f"{SOURCE}: {path}: duplicates")
    return tuple(values)


def _validity(row: ValidityRow) -> ValidityPolicy:
    brackets = []
    for i, b in enumerate(row.bracket):
        where = f"{SOURCE}: validity.bracket[{i}]"
        if b.long_term and b.years is not None:
            raise PolicyError(f"{where}: a long-term bracket has no years")
        if not b.long_term and b.years is None:
            raise PolicyError(f"{where}: years missing (or long_term = true)")
        brackets.append(ValidityBracket(b.min_age, b.max_age, None if b.long_term else b.years))
    if brackets[0].min_age != 0:
        raise PolicyError(f"{SOURCE}: validity.bracket: the first bracket must start at age 0")
    for prev, nxt in itertools.pairwise(brackets):
        if prev.max_age is None or prev.max_age < prev.min_age or nxt.min_age != prev.max_age + 1:
            raise PolicyError(f"{SOURCE}: validity.bracket: brackets must be contiguous ({prev} then {nxt})")
    if brackets[-1].max_age is not None:
        raise PolicyError(f"{SOURCE}: validity.bracket: the last bracket must have no upper age")
    return ValidityPolicy(tuple(brackets), row.age_basis, row.early_renewal_months)


def _fees(row: Any) -> FeePolicy:
    fen = {case: getattr(row, _fee_attr(case)) for case in _FEE_KEYS}
    reductions: dict[FeeReduction, Reduction] = {}
    for name, r in row.reduction.items():
        where = f"{SOURCE}: fees.reduction.{name}"
        try:
            kind = FeeReduction(name)
        except ValueError:
            raise PolicyError(f"{where}: unknown value {name!r}") from None
        if kind is FeeReduction.NONE:
            raise PolicyError(f"{where}: not a reduction")
        applies_to = _unique(r.applies_to, f"fees.reduction.{name}.applies_to")
        unknown = set(applies_to) - set(ALL_FEE_CASES)
        if unknown:
            raise PolicyError(f"{where}.applies_to: unknown fee cases {sorted(unknown)}")
        reductions[kind] = Reduction(r.payable_percent, frozenset(applies_to))
    missing = set(FeeReduction) - {FeeReduction.NONE} - set(reductions)
    if missing:
        raise PolicyError(f"{SOURCE}: fees.reduction: missing {sorted(m.value for m in missing)}")
    return FeePolicy(MappingProxyType(fen), MappingProxyType(reductions))


def _rollout(rows: list[RolloutRow], provinces: frozenset[str], acceptance: str) -> tuple[RolloutStep, ...]:
    steps = []
    for i, row in enumerate(rows):
        if row.provinces == "all":
            steps.append(RolloutStep(row.effective, frozenset(), True))
            continue
        codes = _unique(list(row.provinces), f"cross_province.rollout[{i}].provinces")
        bad = set(codes) - provinces | ({acceptance} & set(codes))
        if bad:
            raise PolicyError(
                f"{SOURCE}: cross_province.rollout[{i}].provinces: not other mainland provinces {sorted(bad)}"
            )
        steps.append(RolloutStep(row.effective, frozenset(codes), False))
    for prev, nxt in itertools.pairwise(steps):
        if nxt.effective <= prev.effective:
            raise PolicyError(f"{SOURCE}: cross_province.rollout: steps must be in date order")
        if prev.all_provinces:
            raise PolicyError(f'{SOURCE}: cross_province.rollout: nothing can follow an "all" step')
    seen: set[str] = set()
    for step in steps:
        if step.province_codes & seen:
            twice = sorted(step.province_codes & seen)
            raise PolicyError(f"{SOURCE}: cross_province.rollout: {twice} added twice")
        seen |= step.province_codes
    return tuple(steps)


def _cross_province(row: CrossProvinceRow, provinces: frozenset[str]) -> CrossProvincePolicy:
    acceptance = row.acceptance_province_code
    if acceptance not in provinces:
        raise PolicyError(
            f"{SOURCE}: cross_province.acceptance_province_code: unknown province {acceptance!r}"
        )
    if len(set(row.kinds)) != len(row.kinds):
        raise PolicyError(f"{SOURCE}: cross_province.kinds: duplicates")
    return CrossProvincePolicy(
        acceptance_province_code=acceptance,
        kinds=frozenset(row.kinds),
        rollout=_rollout(row.rollout, provinces, acceptance),
        residence_permit_required=row.residence_permit_required,
        ethnic_minority_from=row.ethnic_minority_from,
        postal_delivery_from=row.postal_delivery_from,
    )


def _materials(rows: Mapping[str, list[str]], names: Mapping[str, str]) -> Mapping[str, tuple[str, ...]]:
    allowed = set(ALL_FEE_CASES)
    allowed |= {f"{c}+CROSS_PROVINCE" for c in ALL_FEE_CASES} | {f"{c}+UNDER_16" for c in ALL_FEE_CASES}
    materials = {}
    for key, values in rows.items():
        if key not in allowed:
            raise PolicyError(f"{SOURCE}: materials.{key}: not a fee case")
        items = _unique(values, f"materials.{key}")
        undescribed = set(items) - set(names)
        if undescribed:
            raise PolicyError(f"{SOURCE}: materials.{key}: materials without a name {sorted(undescribed)}")
        materials[key] = items
    missing = set(ALL_FEE_CASES) - set(materials)
    if missing:
        raise PolicyError(f"{SOURCE}: materials: no materials for {sorted(missing)}")
    return MappingProxyType(materials)


def _rejection_codes(codes: Mapping[str, str]) -> Mapping[str, str]:
    if OTHER_REJECTION not in codes:
        raise PolicyError(f"{SOURCE}: rejection_codes: {OTHER_REJECTION} is required")
    return MappingProxyType(dict(codes))


def build_policy(doc: PolicyFile) -> IdentityPolicy:
    """The domain's policy from the decoded file; raises `PolicyError`."""
    provinces = frozenset(_unique(doc.mainland_province_codes, "mainland_province_codes"))
    names = MappingProxyType(dict(doc.material_names))
    temp = doc.temporary_card
    temporary = TemporaryCardPolicy(
        validity_months=temp.validity_months,
        issue_within_days=temp.issue_within_days,
        fee_fen=temp.fee_fen,
        hukou_station_only=temp.hukou_station_only,
        urgent_need_required=temp.urgent_need_required,
    )
    fees = _fees(doc.fees)
    if fees.fen[TEMPORARY_CARD] != temporary.fee_fen:
        raise PolicyError(f"{SOURCE}: fees.TEMPORARY_CARD: differs from temporary_card.fee_fen")
    return IdentityPolicy(
        mainland_province_codes=provinces,
        validity=_validity(doc.validity),
        fees=fees,
        deadlines=DeadlinePolicy(doc.deadlines.statutory_days, doc.deadlines.remote_extension_days),
        temporary_card=temporary,
        cross_province=_cross_province(doc.cross_province, provinces),
        materials=_materials(doc.materials, names),
        material_names=names,
        rejection_codes=_rejection_codes(doc.rejection_codes),
    )


def parse_policy(data: Mapping[str, Any]) -> IdentityPolicy:
    """Decode and check parsed TOML (tests mutate it); raises `PolicyError`."""
    return build_policy(decode(data, PolicyFile, SOURCE))


@functools.cache
def default_policy() -> IdentityPolicy:
    """The packaged ``policy.toml``."""
    return build_policy(read_packaged("services.identity", "policy.toml", PolicyFile))
