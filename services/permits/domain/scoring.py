"""The work permit request, its points (计点积分, docs/domain.md §4.2) and its category A, B or C."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from stdnum.cn import uscc as stdnum_uscc

from services.common.errors import ValidationCollector
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem
from services.permits.domain.employers import uscc_problem


class Education(enum.StrEnum):
    DOCTORATE = "DOCTORATE"
    MASTER = "MASTER"
    BACHELOR = "BACHELOR"
    OTHER = "OTHER"


EDUCATION_RANK = {Education.OTHER: 0, Education.BACHELOR: 1, Education.MASTER: 2, Education.DOCTORATE: 3}


class Sex(enum.StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


class Category(enum.StrEnum):
    A = "A"  # 高端人才
    B = "B"  # 专业人才
    C = "C"  # 其他


class SpecialCriterion(enum.StrEnum):
    """Category A criteria that need no points (§4.2)."""

    TALENT_PROGRAMME = "TALENT_PROGRAMME"
    INTERNATIONAL_AWARD = "INTERNATIONAL_AWARD"
    ENCOURAGED_POST = "ENCOURAGED_POST"
    INNOVATION_TALENT = "INNOVATION_TALENT"
    YOUNG_TALENT = "YOUNG_TALENT"


# Yes/no points items a table may score: the April 2017 trial table scores the first two, the 暂行版 adds
# patents.
POINT_FLAGS = frozenset({"special_region", "top_university_or_fortune500", "patent"})


@dataclass(frozen=True, slots=True)
class Threshold:
    """``points`` for a value of at least ``minimum`` (the highest matching threshold wins)."""

    minimum: int
    points: int


@dataclass(frozen=True, slots=True)
class AgeBracket:
    """``points`` for completed ages ``from_age`` to ``to_age`` inclusive (``to_age`` None: no upper end)."""

    from_age: int
    to_age: int | None
    points: int

    def contains(self, age: int) -> bool:
        return age >= self.from_age and (self.to_age is None or age <= self.to_age)


@dataclass(frozen=True, slots=True)
class ExperienceRule:
    """``base`` points at ``min_years``, ``per_year`` for each further whole year, capped at ``maximum``."""

    min_years: int
    base: int
    per_year: int
    maximum: int

    def points(self, years: int) -> int:
        if years < self.min_years:
            return 0
        return min(self.maximum, self.base + self.per_year * (years - self.min_years))


def _by_threshold(thresholds: tuple[Threshold, ...], value: int) -> int:
    return max((t.points for t in thresholds if value >= t.minimum), default=0)


@dataclass(frozen=True, slots=True)
class PointsTable:
    """One published version of the 计点积分 table (§4.2)."""

    version: str
    effective_from: dt.date
    max_total: int
    salary_yuan: tuple[Threshold, ...]
    education: Mapping[Education, int]
    experience: ExperienceRule
    months_in_china: tuple[Threshold, ...]
    chinese_hsk: Mapping[int, int]  # HSK level -> points
    chinese_degree: int  # a degree taught in Chinese
    age: tuple[AgeBracket, ...]
    flags: Mapping[str, int]  # keys from POINT_FLAGS
    provincial_bonus_max: int


@dataclass(frozen=True, slots=True)
class CategoryRules:
    a_min_points: int
    a_salary_multiple: int
    b_min_points: int
    b_salary_multiple: int
    b_min_education: Education
    b_min_experience_years: int
    b_max_age: int


@dataclass(frozen=True, slots=True)
class LocalAverageSalary:
    """The annual average wage (yuan) of `region` (a GB/T 2260 code) from `effective_from`."""

    region: str
    effective_from: dt.date
    annual_yuan: int


def frozen_mapping(data: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(data))


@dataclass(frozen=True, slots=True)
class Applicant:
    passport_number: str
    nationality: str  # ISO 3166-1 alpha-3
    surname: str
    given_names: str
    birth_date: dt.date
    sex: Sex

    def same_person(self, other: Applicant) -> bool:
        return (
            normalise_passport_number(self.passport_number)
            == normalise_passport_number(other.passport_number)
            and self.nationality == other.nationality
        )


@dataclass(frozen=True, slots=True)
class Contract:
    start_date: dt.date
    end_date: dt.date  # last day of the contract


@dataclass(frozen=True, slots=True)
class WorkPermitRequest:
    """What an employer submits for a foreign worker (field names as the request names them)."""

    applicant: Applicant
    employer_uscc: str
    position: str
    work_region: str  # GB/T 2260 code of the place of work, e.g. "310115"
    contract: Contract
    annual_salary: int  # yuan
    education: Education
    experience_years: int
    hsk_level: int = 0  # 0 = none, 1..6
    degree_taught_in_chinese: bool = False
    months_per_year_in_china: int = 0
    special_region: bool = False  # western region, old north-eastern industrial base or poor county
    top_university_or_fortune500: bool = False
    patent: bool = False  # scored only by tables that have the item
    provincial_bonus: int = 0
    special_criteria: frozenset[SpecialCriterion] = frozenset()
    international_skills_certificate: bool = False
    age_limit_relaxed: bool = False  # B category: age ≤ 60 "can be relaxed"
    stay_over_90_days: bool = True

    def flags(self) -> frozenset[str]:
        return frozenset(
            name
            for name, value in (
                ("special_region", self.special_region),
                ("top_university_or_fortune500", self.top_university_or_fortune500),
                ("patent", self.patent),
            )
            if value
        )


REGION = re.compile(r"^\d{6}$")


def validate_work_permit_request(request: WorkPermitRequest, today: dt.date) -> WorkPermitRequest:
    """The request with the passport number and USCC normalised; raises ``InvalidArgument`` listing every
    malformed field. Age and employer eligibility are business rules, checked by ``submit_work_permit``."""
    errors = ValidationCollector()
    a = request.applicant
    if problem := passport_number_problem(a.passport_number):
        errors.add("applicant.passport_number", problem)
    if problem := nationality_problem(a.nationality):
        errors.add("applicant.nationality", problem)
    if not a.surname.strip():
        errors.add("applicant.surname", "REQUIRED")
    if not a.given_names.strip():
        errors.add("applicant.given_names", "REQUIRED")
    if a.birth_date > today:
        errors.add("applicant.birth_date", "IN_FUTURE")
    if problem := uscc_problem(request.employer_uscc):
        errors.add("employer_uscc", problem)
    if not request.position.strip():
        errors.add("position", "REQUIRED")
    if not REGION.match(request.work_region):
        errors.add("work_region", "BAD_FORMAT", "a 6-digit administrative division code")
    if request.contract.end_date < request.contract.start_date:
        errors.add("contract.end_date", "END_BEFORE_START", "the contract ends before it starts")
    if request.annual_salary < 0:
        errors.add("annual_salary", "NEGATIVE")
    if request.experience_years < 0:
        errors.add("experience_years", "NEGATIVE")
    if not 0 <= request.hsk_level <= 6:
        errors.add("chinese.hsk_level", "OUT_OF_RANGE", "0 (none) to 6")
    if not 0 <= request.months_per_year_in_china <= 12:
        errors.add("months_per_year_in_china", "OUT_OF_RANGE", "0 to 12")
    if request.provincial_bonus < 0:
        errors.add("provincial_bonus", "NEGATIVE")
    errors.raise_if_any()
    return _normalised(request)


def _normalised(request: WorkPermitRequest) -> WorkPermitRequest:
    a = request.applicant
    applicant = Applicant(
        normalise_passport_number(a.passport_number),
        a.nationality,
        a.surname.strip(),
        a.given_names.strip(),
        a.birth_date,
        a.sex,
    )
    fields = {name: getattr(request, name) for name in WorkPermitRequest.__dataclass_fields__}
    fields.update(applicant=applicant, employer_uscc=stdnum_uscc.compact(request.employer_uscc))
    fields.update(position=request.position.strip())
    return WorkPermitRequest(**fields)


@dataclass(frozen=True, slots=True)
class PointsBreakdown:
    table_version: str
    items: Mapping[str, int]
    total: int  # capped at the table's maximum


def score_points(request: WorkPermitRequest, age: int, table: PointsTable) -> PointsBreakdown:
    """The points of §4.2 by `table`. A provincial bonus above the table's maximum counts as the maximum."""
    chinese = table.chinese_hsk.get(request.hsk_level, 0)
    if request.degree_taught_in_chinese:
        chinese = max(chinese, table.chinese_degree)
    items = {
        "annual_salary": _by_threshold(table.salary_yuan, request.annual_salary),
        "education": table.education.get(request.education, 0),
        "experience": table.experience.points(request.experience_years),
        "months_in_china": _by_threshold(table.months_in_china, request.months_per_year_in_china),
        "chinese": chinese,
        "age": next((b.points for b in table.age if b.contains(age)), 0),
        "provincial_bonus": min(request.provincial_bonus, table.provincial_bonus_max),
    }
    for flag in sorted(request.flags()):
        if flag in table.flags:
            items[flag] = table.flags[flag]
    return PointsBreakdown(table.version, frozen_mapping(items), min(table.max_total, sum(items.values())))


@dataclass(frozen=True, slots=True)
class CategoryDecision:
    category: Category
    grounds: tuple[str, ...]  # why, e.g. ("POINTS_AT_LEAST_85",); empty for C


def classify(
    request: WorkPermitRequest, points: int, age: int, local_average_salary: int, rules: CategoryRules
) -> CategoryDecision:
    """Category A, B or C (§4.2). A has no age, education or experience limit; B needs one criterion and an
    age of at most ``b_max_age`` unless the limit is relaxed; "bachelor" means bachelor or higher."""
    a = []
    if request.special_criteria:
        a.append("SPECIAL_CRITERIA")
    if request.annual_salary >= rules.a_salary_multiple * local_average_salary:
        a.append(f"SALARY_AT_LEAST_{rules.a_salary_multiple}X_LOCAL_AVERAGE")
    if points >= rules.a_min_points:
        a.append(f"POINTS_AT_LEAST_{rules.a_min_points}")
    if a:
        return CategoryDecision(Category.A, tuple(a))
    b = []
    if (
        EDUCATION_RANK[request.education] >= EDUCATION_RANK[rules.b_min_education]
        and request.experience_years >= rules.b_min_experience_years
    ):
        b.append("DEGREE_AND_EXPERIENCE")
    if request.international_skills_certificate:
        b.append("INTERNATIONAL_SKILLS_CERTIFICATE")
    if request.annual_salary >= rules.b_salary_multiple * local_average_salary:
        b.append(f"SALARY_AT_LEAST_{rules.b_salary_multiple}X_LOCAL_AVERAGE")
    if points >= rules.b_min_points:
        b.append(f"POINTS_AT_LEAST_{rules.b_min_points}")
    if b and (age <= rules.b_max_age or request.age_limit_relaxed):
        if age > rules.b_max_age:
            b.append("AGE_LIMIT_RELAXED")
        return CategoryDecision(Category.B, tuple(b))
    return CategoryDecision(Category.C, ())
