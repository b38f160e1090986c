"""Loads the permits department's policy data (``policy.toml``, packaged beside this module) into the frozen
dataclasses of ``services.permits.domain``; the working-day calendar comes from ``services.permits.calendar``.

The file is decoded by the typed structs below through the one strict reader (``services.common.tomlfile``):
unknown or missing keys and wrong types are refused with the file and the path of the value. The rules a
type cannot say are checked here: thresholds strictly ordered, age brackets without gaps or overlaps, known
enum values and flags. Bad data raises ``PolicyError``; it never limps on.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from services.common.tomlfile import Policy, PolicyError, decode, read_packaged
from services.permits.calendar import default_calendar
from services.permits.domain import (
    OTHER_REJECTION,
    POINT_FLAGS,
    AgeBracket,
    CategoryRules,
    Deadlines,
    Education,
    ExperienceRule,
    FeeTier,
    HolidayCalendar,
    LocalAverageSalary,
    MaterialItem,
    PermitsPolicy,
    PointsTable,
    Stage,
    Threshold,
    ValidityLimits,
    frozen_mapping,
)

__all__ = ["PolicyError", "PolicyFile", "default_policy", "load_policy", "parse_policy"]

SOURCE = "services/permits/policy.toml"

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Text = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
Region = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
# A rejection reason's machine code (UPPER_SNAKE).
ReasonCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=40)]


# -- the file's shape -------------------------------------------------------------------------------------


class ThresholdRow(Policy, frozen=True):
    minimum: NonNegative
    points: NonNegative


class AgeRow(Policy, frozen=True):
    start: NonNegative = msgspec.field(name="from")
    points: NonNegative
    end: NonNegative | None = msgspec.field(name="to", default=None)


class EducationPoints(Policy, frozen=True):
    DOCTORATE: NonNegative
    MASTER: NonNegative
    BACHELOR: NonNegative
    OTHER: NonNegative


class ExperiencePoints(Policy, frozen=True):
    min_years: NonNegative
    base: NonNegative
    per_year: NonNegative
    maximum: NonNegative


class HskPoints(Policy, frozen=True):
    level1: NonNegative = msgspec.field(name="1")
    level2: NonNegative = msgspec.field(name="2")
    level3: NonNegative = msgspec.field(name="3")
    level4: NonNegative = msgspec.field(name="4")
    level5: NonNegative = msgspec.field(name="5")
    level6: NonNegative = msgspec.field(name="6")


class ChinesePoints(Policy, frozen=True):
    degree_taught_in_chinese: NonNegative
    hsk: HskPoints


class PointsTableRow(Policy, frozen=True):
    version: Text
    effective_from: dt.date
    max_total: Positive
    provincial_bonus_max: NonNegative
    salary_yuan: list[ThresholdRow]
    months_in_china: list[ThresholdRow]
    age: list[AgeRow]
    education: EducationPoints
    experience: ExperiencePoints
    chinese: ChinesePoints
    flags: dict[str, NonNegative]


class CategoryRulesRow(Policy, frozen=True):
    a_min_points: NonNegative
    a_salary_multiple: Positive
    b_min_points: NonNegative
    b_salary_multiple: Positive
    b_min_education: Education
    b_min_experience_years: NonNegative
    b_max_age: NonNegative


class LocalAverageSalaryRow(Policy, frozen=True):
    region: Region
    effective_from: dt.date
    annual_yuan: Positive


class DeadlinesRow(Policy, frozen=True):
    work_permit_working_days: Positive
    work_permit_extension_working_days: Positive
    work_permit_short_stay_working_days: Positive
    residence_apply_within_days_of_entry: Positive
    residence_decision_calendar_days: Positive
    residence_target_working_days: Positive
    residence_extension_min_days_before_expiry: Positive


class ValidityRow(Policy, frozen=True):
    work_permit_max_years: Positive
    residence_min_days: Positive
    residence_max_years: Positive
    min_age: Positive


class FeeTierRow(Policy, frozen=True):
    min_months: NonNegative
    fee_yuan: NonNegative


class MaterialRow(Policy, frozen=True):
    code: Text
    label: Text
    deferrable: bool = False
    alternatives: tuple[Text, ...] = ()
    min_age: NonNegative | None = None
    max_age: NonNegative | None = None


class PolicyFile(Policy, frozen=True):
    points_tables: Annotated[list[PointsTableRow], msgspec.Meta(min_length=1)]
    category_rules: CategoryRulesRow
    local_average_salaries: list[LocalAverageSalaryRow]
    deadlines: DeadlinesRow
    validity: ValidityRow
    residence_fee_tiers: Annotated[list[FeeTierRow], msgspec.Meta(min_length=1)]
    materials: dict[str, Annotated[list[MaterialRow], msgspec.Meta(min_length=1)]]  # by Stage
    rejection_codes: dict[ReasonCode, Text]


# -- the rules a type cannot say ----------------------------------------------------------------------------


def _rejection_codes(codes: dict[str, str]) -> dict[str, str]:
    if OTHER_REJECTION not in codes:
        raise PolicyError(f"{SOURCE}: rejection_codes: {OTHER_REJECTION} is required")
    return codes


def _thresholds(rows: list[ThresholdRow], path: str) -> tuple[Threshold, ...]:
    minimums = [r.minimum for r in rows]
    if not rows or minimums != sorted(minimums, reverse=True) or len(set(minimums)) != len(minimums):
        raise PolicyError(f"{SOURCE}: {path}: minimums must be strictly decreasing")
    if minimums[-1] != 0:
        raise PolicyError(f"{SOURCE}: {path}: the last row must start at 0")
    points = [r.points for r in rows]
    if points != sorted(points, reverse=True):
        raise PolicyError(f"{SOURCE}: {path}: points must not grow as the value falls")
    return tuple(Threshold(r.minimum, r.points) for r in rows)


def _age_brackets(rows: list[AgeRow], path: str) -> tuple[AgeBracket, ...]:
    if not rows:
        raise PolicyError(f"{SOURCE}: {path}: empty")
    brackets = tuple(AgeBracket(r.start, r.end, r.points) for r in rows)
    for prev, nxt in itertools.pairwise(brackets):
        if prev.to_age is None or prev.to_age < prev.from_age or nxt.from_age != prev.to_age + 1:
            raise PolicyError(f"{SOURCE}: {path}: brackets must be contiguous ({prev} then {nxt})")
    if brackets[-1].to_age is not None:
        raise PolicyError(f"{SOURCE}: {path}: the last bracket must have no upper end")
    return brackets


def _points_table(row: PointsTableRow, path: str) -> PointsTable:
    unknown = set(row.flags) - POINT_FLAGS
    if unknown:
        raise PolicyError(f"{SOURCE}: {path}.flags: unknown flags {sorted(unknown)}")
    hsk = row.chinese.hsk
    return PointsTable(
        version=row.version,
        effective_from=row.effective_from,
        max_total=row.max_total,
        salary_yuan=_thresholds(row.salary_yuan, f"{path}.salary_yuan"),
        education=frozen_mapping({level: getattr(row.education, level.value) for level in Education}),
        experience=ExperienceRule(
            row.experience.min_years, row.experience.base, row.experience.per_year, row.experience.maximum
        ),
        months_in_china=_thresholds(row.months_in_china, f"{path}.months_in_china"),
        chinese_hsk=frozen_mapping(
            {1: hsk.level1, 2: hsk.level2, 3: hsk.level3, 4: hsk.level4, 5: hsk.level5, 6: hsk.level6}
        ),
        chinese_degree=row.chinese.degree_taught_in_chinese,
        age=_age_brackets(row.age, f"{path}.age"),
        flags=frozen_mapping(dict(row.flags)),
        provincial_bonus_max=row.provincial_bonus_max,
    )


def _materials(rows: Mapping[str, list[MaterialRow]]) -> dict[Stage, tuple[MaterialItem, ...]]:
    unknown = set(rows) - {s.value for s in Stage}
    if unknown:
        raise PolicyError(f"{SOURCE}: materials: unknown stages {sorted(unknown)}")
    missing = {s.value for s in Stage} - set(rows)
    if missing:
        raise PolicyError(f"{SOURCE}: materials: no list for {sorted(missing)}")
    result = {}
    for stage in Stage:
        items = tuple(
            MaterialItem(
                code=r.code,
                label=r.label,
                deferrable=r.deferrable,
                alternatives=tuple(r.alternatives),
                min_age=r.min_age,
                max_age=r.max_age,
            )
            for r in rows[stage.value]
        )
        codes = [i.code for i in items]
        if len(set(codes)) != len(codes):
            raise PolicyError(f"{SOURCE}: materials.{stage.value}: duplicate codes")
        result[stage] = items
    return result


def build_policy(doc: PolicyFile, calendar: HolidayCalendar) -> PermitsPolicy:
    """The domain's policy from the decoded file; raises ``PolicyError``."""
    tables = tuple(
        sorted(
            (_points_table(t, f"points_tables[{i}]") for i, t in enumerate(doc.points_tables)),
            key=lambda p: p.effective_from,
        )
    )
    if len({p.version for p in tables}) != len(tables) or len({p.effective_from for p in tables}) != len(
        tables
    ):
        raise PolicyError(f"{SOURCE}: points_tables: versions and effective dates must be unique")
    c = doc.category_rules
    rules = CategoryRules(
        a_min_points=c.a_min_points,
        a_salary_multiple=c.a_salary_multiple,
        b_min_points=c.b_min_points,
        b_salary_multiple=c.b_salary_multiple,
        b_min_education=c.b_min_education,
        b_min_experience_years=c.b_min_experience_years,
        b_max_age=c.b_max_age,
    )
    if rules.a_min_points <= rules.b_min_points or rules.a_salary_multiple <= rules.b_salary_multiple:
        raise PolicyError(f"{SOURCE}: category_rules: category A thresholds must be above category B's")
    validity = ValidityLimits(**msgspec.structs.asdict(doc.validity))
    if validity.residence_min_days > 366 * validity.residence_max_years:
        raise PolicyError(f"{SOURCE}: validity: minimum validity above the maximum")
    months = [t.min_months for t in doc.residence_fee_tiers]
    if months != sorted(set(months)) or months[0] != 0:
        raise PolicyError(f"{SOURCE}: residence_fee_tiers: min_months must rise strictly from 0")
    return PermitsPolicy(
        points_tables=tables,
        category_rules=rules,
        local_average_salaries=tuple(
            LocalAverageSalary(s.region, s.effective_from, s.annual_yuan) for s in doc.local_average_salaries
        ),
        deadlines=Deadlines(**msgspec.structs.asdict(doc.deadlines)),
        validity=validity,
        residence_fee_tiers=tuple(FeeTier(t.min_months, t.fee_yuan) for t in doc.residence_fee_tiers),
        materials=frozen_mapping(_materials(doc.materials)),
        calendar=calendar,
        rejection_codes=frozen_mapping(_rejection_codes(doc.rejection_codes)),
    )


def parse_policy(data: Mapping[str, Any], calendar: HolidayCalendar | None = None) -> PermitsPolicy:
    """Decode and check parsed ``policy.toml`` data (tests mutate it); raises ``PolicyError``."""
    return build_policy(decode(data, PolicyFile, SOURCE), calendar or default_calendar())


def load_policy(name: str = "policy.toml") -> PermitsPolicy:
    return build_policy(read_packaged("services.permits", name, PolicyFile), default_calendar())


@functools.cache
def default_policy() -> PermitsPolicy:
    """The packaged policy, loaded once per process."""
    return load_policy()
