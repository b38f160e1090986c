"""Loads the permits department's policy data (``policy.toml`` and ``calendar.toml``, packaged beside this
module) into the frozen dataclasses of ``services.permits.domain``.

Everything is checked on load: unknown or missing keys, wrong types, thresholds that are not strictly
ordered, age brackets with gaps or overlaps, unknown enum values, adjusted working days that are not
weekends. Bad data raises ``PolicyError`` with the path of the offending value; it never limps on.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

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

__all__ = ["PolicyError", "default_policy", "load_calendar", "load_policy", "parse_calendar", "parse_policy"]


class PolicyError(ValueError):
    """The packaged policy data is malformed."""


class _Table:
    """A TOML table read strictly: every key must be taken, with the right type."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise PolicyError(f"{path}: expected a table")
        self.data = data
        self.path = path
        self.taken: set[str] = set()

    def _get(self, key: str, types: tuple[type, ...], default: Any = ...) -> Any:
        self.taken.add(key)
        if key not in self.data:
            if default is ...:
                raise PolicyError(f"{self.path}.{key}: missing")
            return default
        value = self.data[key]
        # bool is an int, and a datetime is a date: refuse both where not meant.
        if (isinstance(value, bool) and bool not in types) or (
            isinstance(value, dt.datetime) and dt.datetime not in types
        ):
            raise PolicyError(f"{self.path}.{key}: wrong type {type(value).__name__}")
        if not isinstance(value, types):
            raise PolicyError(f"{self.path}.{key}: wrong type {type(value).__name__}")
        return value

    def int(self, key: str, *, minimum: int = 0, default: Any = ...) -> int:
        value = self._get(key, (int,), default)
        if value is not None and value < minimum:
            raise PolicyError(f"{self.path}.{key}: must be at least {minimum}")
        return value

    def str(self, key: str) -> str:
        value = self._get(key, (str,))
        if not value.strip():
            raise PolicyError(f"{self.path}.{key}: empty")
        return value

    def bool(self, key: str, default: bool) -> bool:
        return self._get(key, (bool,), default)

    def date(self, key: str) -> dt.date:
        return self._get(key, (dt.date,))

    def list(self, key: str, default: Any = ...) -> list[Any]:
        return self._get(key, (list,), default)

    def table(self, key: str) -> _Table:
        return _Table(self._get(key, (dict,)), f"{self.path}.{key}")

    def tables(self, key: str) -> list[_Table]:
        items = self.list(key)
        if not items:
            raise PolicyError(f"{self.path}.{key}: empty")
        return [_Table(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(items)]

    def done(self) -> None:
        extra = set(self.data) - self.taken
        if extra:
            raise PolicyError(f"{self.path}: unknown keys {sorted(extra)}")


def _thresholds(t: _Table, key: str) -> tuple[Threshold, ...]:
    rows = []
    for row in t.tables(key):
        rows.append(Threshold(row.int("minimum"), row.int("points")))
        row.done()
    minimums = [r.minimum for r in rows]
    if minimums != sorted(minimums, reverse=True) or len(set(minimums)) != len(minimums):
        raise PolicyError(f"{t.path}.{key}: minimums must be strictly decreasing")
    if minimums[-1] != 0:
        raise PolicyError(f"{t.path}.{key}: the last row must start at 0")
    points = [r.points for r in rows]
    if points != sorted(points, reverse=True):
        raise PolicyError(f"{t.path}.{key}: points must not grow as the value falls")
    return tuple(rows)


def _age_brackets(t: _Table) -> tuple[AgeBracket, ...]:
    brackets = []
    for row in t.tables("age"):
        b = AgeBracket(row.int("from"), row.int("to", default=None), row.int("points"))
        row.done()
        brackets.append(b)
    for prev, nxt in itertools.pairwise(brackets):
        if prev.to_age is None or prev.to_age < prev.from_age or nxt.from_age != prev.to_age + 1:
            raise PolicyError(f"{t.path}.age: brackets must be contiguous ({prev} then {nxt})")
    if brackets[-1].to_age is not None:
        raise PolicyError(f"{t.path}.age: the last bracket must have no upper end")
    return tuple(brackets)


def _points_table(t: _Table) -> PointsTable:
    education_t = t.table("education")
    education = {}
    for level in Education:
        education[level] = education_t.int(level.value)
    education_t.done()
    exp_t = t.table("experience")
    experience = ExperienceRule(
        exp_t.int("min_years"), exp_t.int("base"), exp_t.int("per_year"), exp_t.int("maximum")
    )
    exp_t.done()
    chinese_t = t.table("chinese")
    degree = chinese_t.int("degree_taught_in_chinese")
    hsk_t = chinese_t.table("hsk")
    hsk = {}
    for level in range(1, 7):
        hsk[level] = hsk_t.int(str(level))
    hsk_t.done()
    chinese_t.done()
    flags_t = t.table("flags")
    unknown = set(flags_t.data) - POINT_FLAGS
    if unknown:
        raise PolicyError(f"{flags_t.path}: unknown flags {sorted(unknown)}")
    flags = {name: flags_t.int(name) for name in flags_t.data}
    flags_t.done()
    table = PointsTable(
        version=t.str("version"),
        effective_from=t.date("effective_from"),
        max_total=t.int("max_total", minimum=1),
        salary_yuan=_thresholds(t, "salary_yuan"),
        education=frozen_mapping(education),
        experience=experience,
        months_in_china=_thresholds(t, "months_in_china"),
        chinese_hsk=frozen_mapping(hsk),
        chinese_degree=degree,
        age=_age_brackets(t),
        flags=frozen_mapping(flags),
        provincial_bonus_max=t.int("provincial_bonus_max"),
    )
    t.done()
    return table


def _materials(t: _Table) -> dict[Stage, tuple[MaterialItem, ...]]:
    unknown = set(t.data) - {s.value for s in Stage}
    if unknown:
        raise PolicyError(f"{t.path}: unknown stages {sorted(unknown)}")
    result = {}
    for stage in Stage:
        items = []
        for row in t.tables(stage.value):
            alternatives = row.list("alternatives", default=[])
            if not all(isinstance(a, str) and a for a in alternatives):
                raise PolicyError(f"{row.path}.alternatives: must be non-empty strings")
            item = MaterialItem(
                code=row.str("code"),
                label=row.str("label"),
                deferrable=row.bool("deferrable", default=False),
                alternatives=tuple(alternatives),
                min_age=row.int("min_age", default=None),
                max_age=row.int("max_age", default=None),
            )
            row.done()
            items.append(item)
        codes = [i.code for i in items]
        if len(set(codes)) != len(codes):
            raise PolicyError(f"{t.path}.{stage.value}: duplicate codes")
        result[stage] = tuple(items)
    t.done()
    return result


def parse_policy(data: Mapping[str, Any], calendar: HolidayCalendar) -> PermitsPolicy:
    """Validate the parsed ``policy.toml`` and build the policy; raises ``PolicyError``."""
    root = _Table(data, "policy")
    tables = tuple(
        sorted((_points_table(t) for t in root.tables("points_tables")), key=lambda p: p.effective_from)
    )
    if len({p.version for p in tables}) != len(tables) or len({p.effective_from for p in tables}) != len(
        tables
    ):
        raise PolicyError("policy.points_tables: versions and effective dates must be unique")

    c = root.table("category_rules")
    try:
        b_min_education = Education(c.str("b_min_education"))
    except ValueError as exc:
        raise PolicyError(f"{c.path}.b_min_education: unknown education") from exc
    rules = CategoryRules(
        a_min_points=c.int("a_min_points"),
        a_salary_multiple=c.int("a_salary_multiple", minimum=1),
        b_min_points=c.int("b_min_points"),
        b_salary_multiple=c.int("b_salary_multiple", minimum=1),
        b_min_education=b_min_education,
        b_min_experience_years=c.int("b_min_experience_years"),
        b_max_age=c.int("b_max_age"),
    )
    c.done()
    if rules.a_min_points <= rules.b_min_points or rules.a_salary_multiple <= rules.b_salary_multiple:
        raise PolicyError(f"{c.path}: category A thresholds must be above category B's")

    salaries = []
    for row in root.tables("local_average_salaries"):
        region = row.str("region")
        if len(region) != 6 or not region.isdigit():
            raise PolicyError(f"{row.path}.region: a 6-digit code")
        salaries.append(
            LocalAverageSalary(region, row.date("effective_from"), row.int("annual_yuan", minimum=1))
        )
        row.done()

    d = root.table("deadlines")
    deadlines = Deadlines(**{name: d.int(name, minimum=1) for name in Deadlines.__dataclass_fields__})
    d.done()
    v = root.table("validity")
    validity = ValidityLimits(
        **{name: v.int(name, minimum=1) for name in ValidityLimits.__dataclass_fields__}
    )
    v.done()
    if validity.residence_min_days > 366 * validity.residence_max_years:
        raise PolicyError(f"{v.path}: minimum validity above the maximum")

    tiers = []
    for row in root.tables("residence_fee_tiers"):
        tiers.append(FeeTier(row.int("min_months"), row.int("fee_yuan")))
        row.done()
    months = [t.min_months for t in tiers]
    if months != sorted(set(months)) or months[0] != 0:
        raise PolicyError("policy.residence_fee_tiers: min_months must rise strictly from 0")

    materials = _materials(root.table("materials"))
    codes_t = root.table("rejection_codes")
    codes = {key: codes_t.str(key) for key in list(codes_t.data)}
    codes_t.done()
    for key, text in codes.items():
        if not (key.isascii() and key.replace("_", "").isalnum() and key == key.upper()) or not text:
            raise PolicyError(f"{codes_t.path}.{key}: an UPPER_SNAKE code with the words the applicant reads")
    if OTHER_REJECTION not in codes:
        raise PolicyError(f"{codes_t.path}: {OTHER_REJECTION} is required")
    root.done()
    return PermitsPolicy(
        points_tables=tables,
        category_rules=rules,
        local_average_salaries=tuple(salaries),
        deadlines=deadlines,
        validity=validity,
        residence_fee_tiers=tuple(tiers),
        materials=frozen_mapping(materials),
        calendar=calendar,
        rejection_codes=frozen_mapping(codes),
    )


def parse_calendar(data: Mapping[str, Any]) -> HolidayCalendar:
    """Validate the parsed ``calendar.toml`` and build the calendar; raises ``PolicyError``."""
    root = _Table(data, "calendar")
    years = root.list("years")
    if not years or not all(isinstance(y, int) and not isinstance(y, bool) for y in years):
        raise PolicyError("calendar.years: a non-empty list of years")
    covered = frozenset(years)
    holidays: set[dt.date] = set()
    workdays: set[dt.date] = set()
    noticed: set[int] = set()
    for notice in root.tables("notices"):
        noticed.add(notice.int("year"))
        for i, h in enumerate(notice.list("holidays")):
            span = _Table(h, f"{notice.path}.holidays[{i}]")
            span.str("name")
            start, end = span.date("from"), span.date("to")
            span.done()
            if end < start or (end - start).days > 10:
                raise PolicyError(f"{span.path}: implausible span {start}..{end}")
            day = start
            while day <= end:
                holidays.add(day)
                day += dt.timedelta(days=1)
        for day in notice.list("adjusted_working_days"):
            if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
                raise PolicyError(f"{notice.path}.adjusted_working_days: dates only")
            if day.weekday() < 5:
                raise PolicyError(f"{notice.path}: adjusted working day {day} is not a weekend day")
            workdays.add(day)
        notice.done()
    root.done()
    if noticed != covered:
        raise PolicyError(f"calendar: years {sorted(covered)} but notices for {sorted(noticed)}")
    if holidays & workdays:
        raise PolicyError(f"calendar: both holiday and working day: {sorted(holidays & workdays)}")
    # A holiday may start on the last day of the year before (元旦), which is then outside the covered years.
    for day in workdays:
        if day.year not in covered:
            raise PolicyError(f"calendar: adjusted working day {day} outside the covered years")
    return HolidayCalendar(covered, frozenset(holidays), frozenset(workdays))


def _read(name: str) -> dict[str, Any]:
    text = resources.files("services.permits").joinpath(name).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{name}: {exc}") from exc


def load_calendar(name: str = "calendar.toml") -> HolidayCalendar:
    return parse_calendar(_read(name))


def load_policy(name: str = "policy.toml", calendar_name: str = "calendar.toml") -> PermitsPolicy:
    return parse_policy(_read(name), load_calendar(calendar_name))


@functools.cache
def default_policy() -> PermitsPolicy:
    """The packaged policy, loaded once per process."""
    return load_policy()
