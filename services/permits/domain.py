"""Pure rules of the permits department (docs/domain.md §4): employers, the foreigner's work permit
(外国人工作许可) and the work-type residence permit (工作类居留许可).

No I/O, no grpc, no protobuf, no SQL, and no clock: every rule that depends on the date takes ``today``
as a parameter. Everything docs/domain.md marks U or policy-driven (points tables, local average salaries,
deadlines, validity limits, fee tiers, materials lists, the holiday calendar) is data, loaded by
``services.permits.policy`` into the frozen dataclasses defined here.

Errors (``services.common.errors``):

* ``InvalidArgument`` carries every field violation of a request at once. Field paths are the request's:
  ``unified_social_credit_code``, ``name``, ``address`` (employer); ``applicant.passport_number``,
  ``applicant.nationality``, ``applicant.surname``, ``applicant.given_names``, ``applicant.birth_date``,
  ``employer_uscc``, ``position``, ``work_region``, ``contract.start_date``, ``contract.end_date``,
  ``annual_salary``, ``experience_years``, ``chinese.hsk_level``, ``months_per_year_in_china``,
  ``provincial_bonus`` (work permit); ``entry_date``, ``requested_valid_until`` (residence permit);
  ``reasons`` (rejection); ``materials`` (unknown material codes).
* ``FailedPrecondition`` reasons (stable, UPPER_SNAKE_CASE):

  ``EMPLOYER_NOT_ELIGIBLE``        the employer has a serious record of illegal or dishonest conduct
  ``EMPLOYER_NOT_ACTIVE``          the employer is suspended or deregistered
  ``APPLICANT_UNDER_AGE``          the applicant is under 18 on the application date (a business rule, not a
                                   malformed field, so it is checked after the fields are valid)
  ``NO_POINTS_TABLE``              no points table is in force on that date
  ``LOCAL_AVERAGE_SALARY_UNKNOWN`` no local average salary for the work region on that date
  ``CALENDAR_NOT_COVERED``         a working-day computation reaches a year no holiday notice covers
                                   (``CalendarNotCovered``; the message names the year)
  ``ILLEGAL_TRANSITION``           the application is not in a state that allows the step
  ``MATERIALS_INCOMPLETE``         a step needs materials that are still missing (the message lists them all)
  ``EXTENSION_NOT_ALLOWED``        a review extension for a stay ≤ 90 days
  ``ALREADY_EXTENDED``             the review was already extended once
  ``CONTRACT_ENDED``               the contract ends before the permit could start
  ``WORK_PERMIT_REQUIRED``         residence permit without an approved or issued work permit of the same
                                   person
  ``APPLICATION_TOO_LATE``         residence permit applied for more than 30 days after entry
  ``VALIDITY_TOO_SHORT``           the residence permit would be valid for less than 90 days
  ``EXTENSION_TOO_LATE``           residence permit extension asked for less than 30 days before expiry
  ``PERMIT_NOT_ISSUED``            extension of a permit that is not issued
  ``PERMIT_EXPIRED``               extension of a permit that has already expired
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import uscc as stdnum_uscc
from stdnum.iso7064 import mod_11_2

from services.common.dates import add_months, add_years, age_on
from services.common.errors import FailedPrecondition, InvalidArgument, ValidationCollector
from services.common.foreigner import nationality_problem, normalise_passport_number, passport_number_problem

ONE_DAY = dt.timedelta(days=1)

# ----------------------------------------------------------------------------------------------------------
# Working-day calendar (holidays and 调休 as data)
# ----------------------------------------------------------------------------------------------------------


class CalendarNotCovered(FailedPrecondition):
    """A working-day computation reached a year for which no holiday notice is known. An operator's
    matter (the calendar data must be updated), refused rather than guessed."""

    def __init__(self, year: int) -> None:
        super().__init__(
            "CALENDAR_NOT_COVERED",
            f"the working-day calendar has no State Council holiday notice for {year} yet; "
            "working days in that year cannot be counted",
        )
        self.year = year


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Public holidays and adjusted working days (调休) of the State Council's yearly notices.

    A day is a working day when it is an adjusted working day, or a Monday to Friday that is not a
    holiday. A date in a year outside `years` raises ``CalendarNotCovered`` (FAILED_PRECONDITION,
    ``CALENDAR_NOT_COVERED``) rather than silently assuming a plain Monday-to-Friday week.

    `provisional_years` (a subset of `years`, all after the published ones) have no notice yet: their
    holidays are derived from the holiday law, without the notice's bridging days and 调休. A caller whose
    answer reaches one says so (``provisional_year``).
    """

    years: frozenset[int]
    holidays: frozenset[dt.date]
    adjusted_working_days: frozenset[dt.date]
    provisional_years: frozenset[int] = frozenset()
    # Weekday holidays and adjusted working days, sorted, for counting spans without walking them.
    _weekday_holidays: tuple[dt.date, ...] = field(init=False, repr=False, compare=False)
    _workdays: tuple[dt.date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        both = self.holidays & self.adjusted_working_days
        if both:
            raise ValueError(f"both a holiday and an adjusted working day: {sorted(both)}")
        weekend_workdays = [day for day in self.adjusted_working_days if day.weekday() < 5]
        if weekend_workdays:
            raise ValueError(f"adjusted working days must be weekend days: {sorted(weekend_workdays)}")
        object.__setattr__(
            self, "_weekday_holidays", tuple(sorted(day for day in self.holidays if day.weekday() < 5))
        )
        object.__setattr__(self, "_workdays", tuple(sorted(self.adjusted_working_days)))
        published = self.years - self.provisional_years
        if not self.provisional_years <= self.years or (
            self.provisional_years and published and min(self.provisional_years) < max(published)
        ):
            raise ValueError("provisional years must be covered years after every published one")

    @property
    def last_year(self) -> int | None:
        """The latest year the calendar covers, provisionally or not (None when it covers none)."""
        return max(self.years) if self.years else None

    @property
    def last_published_year(self) -> int | None:
        """The latest year with a published notice (None when there is none)."""
        published = self.years - self.provisional_years
        return max(published) if published else None

    def is_provisional(self, day: dt.date | None) -> bool:
        """Whether `day` is in a provisional year: a deadline counted to it relies on the derived calendar
        (provisional years come after every published one, so the deadline's own year decides)."""
        return day is not None and day.year in self.provisional_years

    def provisional_year(self, start: dt.date, end: dt.date) -> int | None:
        """The first provisional year among the days after `start` up to and including `end` (the days a
        working-day count or deadline from `start` to `end` relies on); None when all are published."""
        if end <= start:
            return None
        for year in range((start + ONE_DAY).year, end.year + 1):
            if year in self.provisional_years:
                return year
        return None

    def _cover(self, first: dt.date, last: dt.date) -> None:
        for year in range(first.year, last.year + 1):
            if year not in self.years:
                raise CalendarNotCovered(year)

    def is_working_day(self, day: dt.date) -> bool:
        self._cover(day, day)
        if day in self.adjusted_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The `n`-th working day after `start` (`start` itself never counts; ``n == 0`` gives `start`).
        A deadline of 20 working days from a Friday is the 20th working day after that Friday."""
        if n < 0:
            raise ValueError("n must not be negative")
        day = start
        while n:
            day += ONE_DAY
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days `d` with ``start < d <= end`` (0 when `end` is not after `start`), so that
        ``working_days_between(s, add_working_days(s, n)) == n``. Counted, not walked: any span length
        costs the same."""
        if end <= start:
            return 0
        first = start + ONE_DAY
        self._cover(first, end)
        return (
            _weekdays_through(end)
            - _weekdays_through(start)
            - _count_in(self._weekday_holidays, first, end)
            + _count_in(self._workdays, first, end)
        )


def _weekdays_through(day: dt.date) -> int:
    """Mondays to Fridays from an arbitrary fixed Monday up to and including `day`."""
    weeks, rest = divmod(day.toordinal() - 1, 7)  # ordinal 1 (0001-01-01) is a Monday
    return weeks * 5 + min(rest + 1, 5)


def _count_in(days: tuple[dt.date, ...], first: dt.date, last: dt.date) -> int:
    return bisect.bisect_right(days, last) - bisect.bisect_left(days, first)


# ----------------------------------------------------------------------------------------------------------
# Employers
# ----------------------------------------------------------------------------------------------------------


class EmployerStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    SERIOUS_BAD_RECORD = "SERIOUS_BAD_RECORD"  # 严重违法失信记录 (§4.3)
    DEREGISTERED = "DEREGISTERED"


def uscc_problem(raw: str) -> str | None:
    """``None`` if `raw` is a unified social credit code (GB 32100-2015) with the right check character."""
    if not raw or not raw.strip():
        return "REQUIRED"
    try:
        stdnum_uscc.validate(raw)
    except stdnum_exceptions.InvalidLength:
        return "BAD_LENGTH"
    except stdnum_exceptions.InvalidChecksum:
        return "BAD_CHECK_CHARACTER"
    except stdnum_exceptions.ValidationError:
        return "BAD_FORMAT"
    return None


@dataclass(frozen=True, slots=True)
class Employer:
    uscc: str
    name: str
    address: str
    status: EmployerStatus = EmployerStatus.ACTIVE

    def with_status(self, status: EmployerStatus) -> Employer:
        return Employer(self.uscc, self.name, self.address, status)

    def ensure_can_sponsor(self) -> None:
        if self.status is EmployerStatus.SERIOUS_BAD_RECORD:
            raise FailedPrecondition(
                "EMPLOYER_NOT_ELIGIBLE", "the employer has a serious record of illegal or dishonest conduct"
            )
        if self.status is not EmployerStatus.ACTIVE:
            raise FailedPrecondition("EMPLOYER_NOT_ACTIVE", f"the employer is {self.status.value.lower()}")


def register_employer(
    uscc: str, name: str, address: str, status: EmployerStatus = EmployerStatus.ACTIVE
) -> Employer:
    """A validated employer; every bad field is reported at once."""
    errors = ValidationCollector()
    problem = uscc_problem(uscc)
    if problem:
        errors.add("unified_social_credit_code", problem, "not a valid unified social credit code")
    if not name.strip():
        errors.add("name", "REQUIRED")
    if not address.strip():
        errors.add("address", "REQUIRED")
    errors.raise_if_any()
    return Employer(stdnum_uscc.compact(uscc), name.strip(), address.strip(), status)


# ----------------------------------------------------------------------------------------------------------
# Policy data (built by services.permits.policy)
# ----------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Deadlines:
    work_permit_working_days: int  # stay > 90 days
    work_permit_extension_working_days: int
    work_permit_short_stay_working_days: int  # stay ≤ 90 days
    residence_apply_within_days_of_entry: int
    residence_decision_calendar_days: int
    residence_target_working_days: int
    residence_extension_min_days_before_expiry: int


@dataclass(frozen=True, slots=True)
class ValidityLimits:
    work_permit_max_years: int
    residence_min_days: int
    residence_max_years: int
    min_age: int  # applicant (§4.3: aged 18 or over)


@dataclass(frozen=True, slots=True)
class FeeTier:
    """``fee_yuan`` for a validity of at least ``min_months`` (the highest matching tier wins)."""

    min_months: int
    fee_yuan: int


class Stage(enum.StrEnum):
    WORK_PERMIT_NOTICE = "WORK_PERMIT_NOTICE"  # 《外国人工作许可通知》, applied for from abroad
    WORK_PERMIT = "WORK_PERMIT"  # 《外国人工作许可证》, after entry
    RESIDENCE_PERMIT = "RESIDENCE_PERMIT"  # work-type residence permit


@dataclass(frozen=True, slots=True)
class MaterialItem:
    """One item of a checklist. It is satisfied by its own code or any of `alternatives`; it is required only
    for applicants aged `min_age`..`max_age` (inclusive, None = unbounded); `deferrable` items may be
    missing when a category A file is accepted (容缺受理), but must be supplied before issue."""

    code: str
    label: str
    deferrable: bool = False
    alternatives: tuple[str, ...] = ()
    min_age: int | None = None
    max_age: int | None = None

    def applies_to(self, age: int) -> bool:
        return (self.min_age is None or age >= self.min_age) and (self.max_age is None or age <= self.max_age)

    def satisfied_by(self, supplied: frozenset[str]) -> bool:
        return self.code in supplied or any(a in supplied for a in self.alternatives)


@dataclass(frozen=True, slots=True)
class PermitsPolicy:
    points_tables: tuple[PointsTable, ...]  # sorted by effective_from
    category_rules: CategoryRules
    local_average_salaries: tuple[LocalAverageSalary, ...]
    deadlines: Deadlines
    validity: ValidityLimits
    residence_fee_tiers: tuple[FeeTier, ...]
    materials: Mapping[Stage, tuple[MaterialItem, ...]]
    calendar: HolidayCalendar
    # The rejection reasons the department answers with: machine code -> the words an applicant reads
    # (always holds OTHER, for a reason given only in words).
    rejection_codes: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({OTHER_REJECTION: "其他原因"})
    )

    def points_table_on(self, day: dt.date) -> PointsTable:
        tables = [t for t in self.points_tables if t.effective_from <= day]
        if not tables:
            raise FailedPrecondition("NO_POINTS_TABLE", f"no points table is in force on {day.isoformat()}")
        return max(tables, key=lambda t: t.effective_from)

    def local_average_salary(self, region: str, day: dt.date) -> int:
        """The most specific entry for `region` (county, then prefecture, then province) in force on `day`."""
        for code in (region, region[:4] + "00", region[:2] + "0000"):
            entries = [e for e in self.local_average_salaries if e.region == code and e.effective_from <= day]
            if entries:
                return max(entries, key=lambda e: e.effective_from).annual_yuan
        raise FailedPrecondition(
            "LOCAL_AVERAGE_SALARY_UNKNOWN",
            f"no local average salary for region {region} on {day.isoformat()}",
        )

    def all_material_codes(self) -> frozenset[str]:
        codes: set[str] = set()
        for items in self.materials.values():
            for item in items:
                codes.add(item.code)
                codes.update(item.alternatives)
        return frozenset(codes)


def frozen_mapping(data: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(data))


# ----------------------------------------------------------------------------------------------------------
# Work permit request, points and category
# ----------------------------------------------------------------------------------------------------------


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


_REGION = re.compile(r"^\d{6}$")


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
    if not _REGION.match(request.work_region):
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


# ----------------------------------------------------------------------------------------------------------
# Materials
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaterialsCheck:
    stage: Stage
    missing: tuple[MaterialItem, ...]  # every missing item, in checklist order
    deferred: tuple[MaterialItem, ...]  # missing but accepted under 容缺受理 (category A)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def acceptable(self) -> bool:
        """The file may be accepted (受理) now: nothing is missing that may not be deferred."""
        return len(self.missing) == len(self.deferred)

    @property
    def missing_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.missing)


def check_materials(
    stage: Stage, supplied: Iterable[str], age: int, category: Category | None, policy: PermitsPolicy
) -> MaterialsCheck:
    """Every missing item of the stage's checklist at once. Only category A may defer ``deferrable`` items."""
    have = frozenset(supplied)
    missing = tuple(
        item for item in policy.materials[stage] if item.applies_to(age) and not item.satisfied_by(have)
    )
    deferred = tuple(item for item in missing if item.deferrable) if category is Category.A else ()
    return MaterialsCheck(stage, missing, deferred)


def _unknown_materials(items: Iterable[str], policy: PermitsPolicy) -> None:
    unknown = sorted(set(items) - policy.all_material_codes())
    if unknown:
        raise InvalidArgument.one("materials", "UNKNOWN_MATERIAL", "unknown: " + ", ".join(unknown))


def _require_complete(check: MaterialsCheck) -> None:
    if not check.complete:
        raise FailedPrecondition(
            "MATERIALS_INCOMPLETE", "missing materials: " + ", ".join(check.missing_codes)
        )


# ----------------------------------------------------------------------------------------------------------
# Permit numbers
# ----------------------------------------------------------------------------------------------------------

_PERMIT_NUMBER = re.compile(r"^\d{17}[\dX]$")


def permit_number(sequence: int, region: str) -> str:
    """The deterministic 18-character permit number for `sequence` in `region` (the 6-digit code of the
    issuing region, 11-digit zero-padded sequence, then an ISO 7064 MOD 11-2 check character as in a citizen
    ID number). The work permit number is kept per person for life, so the store asks for one only once."""
    if not _REGION.match(region) or not 0 < sequence < 10**11:
        raise ValueError("region must be 6 digits and sequence 1..99999999999")
    body = f"{region}{sequence:011d}"
    return body + mod_11_2.calc_check_digit(body)


def permit_number_problem(number: str) -> str | None:
    if not _PERMIT_NUMBER.match(number):
        return "BAD_FORMAT"
    if not mod_11_2.is_valid(number):
        return "BAD_CHECK_CHARACTER"
    return None


# ----------------------------------------------------------------------------------------------------------
# States
# ----------------------------------------------------------------------------------------------------------


OTHER_REJECTION = "OTHER"


def check_rejection_codes(codes: Iterable[str], policy: PermitsPolicy) -> tuple[str, ...]:
    """Rejection codes as given (upper-cased), each one of the policy's published codes; InvalidArgument
    ``reason_codes[i]`` UNKNOWN_REASON_CODE otherwise."""
    given = tuple(c.strip().upper() for c in codes)
    errors = ValidationCollector()
    for i, code in enumerate(given):
        if code not in policy.rejection_codes:
            errors.add(f"reason_codes[{i}]", "UNKNOWN_REASON_CODE", "not one of the department's codes")
    errors.raise_if_any()
    return given


class PermitState(enum.StrEnum):
    SUBMITTED = "SUBMITTED"
    AWAITING_MATERIALS = "AWAITING_MATERIALS"
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ISSUED = "ISSUED"
    CANCELLED = "CANCELLED"


_S = PermitState
# Allowed moves for both kinds of permit. An issued permit may still be cancelled (注销); REJECTED and
# CANCELLED are final.
TRANSITIONS: Mapping[PermitState, frozenset[PermitState]] = MappingProxyType(
    {
        _S.SUBMITTED: frozenset({_S.AWAITING_MATERIALS, _S.UNDER_REVIEW, _S.CANCELLED}),
        _S.AWAITING_MATERIALS: frozenset({_S.UNDER_REVIEW, _S.CANCELLED}),
        _S.UNDER_REVIEW: frozenset({_S.AWAITING_MATERIALS, _S.APPROVED, _S.REJECTED, _S.CANCELLED}),
        _S.APPROVED: frozenset({_S.ISSUED, _S.CANCELLED}),
        _S.ISSUED: frozenset({_S.CANCELLED}),
        _S.REJECTED: frozenset(),
        _S.CANCELLED: frozenset(),
    }
)


@dataclass(frozen=True, slots=True)
class PermitEvent:
    """An outbox event. No personal data: the application id, the kind of change and plain facts."""

    type: str
    application_id: str
    occurred_on: dt.date
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Validity:
    valid_from: dt.date
    valid_until: dt.date  # last valid day, inclusive

    @property
    def days(self) -> int:
        return (self.valid_until - self.valid_from).days + 1

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_until


@dataclass(kw_only=True)
class _Application:
    """Shared lifecycle of both permits; subclasses name their events with `_EVENT_PREFIX`."""

    _EVENT_PREFIX = ""

    id: str
    applicant: Applicant
    category: Category
    submitted_on: dt.date
    state: PermitState = PermitState.SUBMITTED
    supplied_materials: frozenset[str] = frozenset()
    materials_complete_on: dt.date | None = None  # when the file was accepted; the decision clock starts
    rejection_reasons: tuple[str, ...] = ()
    rejection_codes: tuple[str, ...] = ()
    permit_number: str | None = None
    validity: Validity | None = None
    events: list[PermitEvent] = field(default_factory=list)

    def _move(self, target: PermitState, today: dt.date, **data: Any) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to {target.value}"
            )
        self.state = target
        event = self._EVENT_PREFIX + "".join(part.capitalize() for part in target.value.split("_"))
        self.events.append(PermitEvent(event, self.id, today, MappingProxyType(data)))

    def _age(self, today: dt.date) -> int:
        return age_on(self.applicant.birth_date, today)

    def _supply(
        self, stage: Stage, items: Iterable[str], today: dt.date, policy: PermitsPolicy
    ) -> MaterialsCheck:
        items = frozenset(items)
        _unknown_materials(items, policy)
        if self.state not in (_S.SUBMITTED, _S.AWAITING_MATERIALS, _S.UNDER_REVIEW, _S.APPROVED):
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"materials cannot be supplied in state {self.state.value}"
            )
        self.supplied_materials |= items
        check = check_materials(stage, self.supplied_materials, self._age(today), self.category, policy)
        if self.state in (_S.SUBMITTED, _S.AWAITING_MATERIALS):
            if check.acceptable:
                self.materials_complete_on = today
                self._move(_S.UNDER_REVIEW, today)
                self._accepted(today, policy)
            elif self.state is _S.SUBMITTED:
                self._move(_S.AWAITING_MATERIALS, today, missing=",".join(check.missing_codes))
        return check

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> None:
        """Hook: set the decision deadlines when the file is accepted."""

    def request_materials(self, items: Iterable[str], today: dt.date) -> None:
        """The reviewer asks for (more) materials: UNDER_REVIEW → AWAITING_MATERIALS. The listed items are
        taken as not supplied; the decision clock restarts when the file is complete again."""
        if self.state is not _S.UNDER_REVIEW:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"materials can be asked for only under review, not in {self.state.value}",
            )
        items = frozenset(items)
        self._move(_S.AWAITING_MATERIALS, today, missing=",".join(sorted(items)))
        self.supplied_materials -= items
        self.materials_complete_on = None

    def reject(self, reasons: Iterable[str], today: dt.date, codes: Iterable[str] = ()) -> None:
        """UNDER_REVIEW → REJECTED with the reasons (words the applicant reads) and the machine code of each
        (``check_rejection_codes``; all OTHER when none are given, else one per reason: COUNT_MISMATCH)."""
        reasons = tuple(r.strip() for r in reasons if r.strip())
        if not reasons:
            raise InvalidArgument.one("reasons", "REQUIRED", "a rejection needs at least one reason")
        checked = tuple(codes) or tuple(OTHER_REJECTION for _ in reasons)
        if len(checked) != len(reasons):
            raise InvalidArgument.one(
                "reason_codes", "COUNT_MISMATCH", "one code per reason, in the same order"
            )
        self._move(_S.REJECTED, today, reason_codes=list(checked), reasons=list(reasons))
        self.rejection_reasons = reasons
        self.rejection_codes = checked

    def cancel(self, today: dt.date, **facts: Any) -> None:
        self._move(_S.CANCELLED, today, **facts)


def _validate_permit_number(number: str) -> None:
    if problem := permit_number_problem(number):
        raise InvalidArgument.one("permit_number", problem)


# ----------------------------------------------------------------------------------------------------------
# Work permit
# ----------------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class WorkPermitApplication(_Application):
    _EVENT_PREFIX = "WorkPermit"

    request: WorkPermitRequest
    points: PointsBreakdown
    category_grounds: tuple[str, ...] = ()
    extended: bool = False
    decision_due: dt.date | None = None

    def supply_materials(self, items: Iterable[str], today: dt.date, policy: PermitsPolicy) -> MaterialsCheck:
        """Add materials for the work permit notice. From SUBMITTED or AWAITING_MATERIALS the file moves to
        UNDER_REVIEW as soon as it is acceptable (complete, or category A with only deferrable items
        missing: 容缺受理), else to / stays in AWAITING_MATERIALS. Returns the check with every missing
        item."""
        return self._supply(Stage.WORK_PERMIT_NOTICE, items, today, policy)

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> None:
        d = policy.deadlines
        days = (
            d.work_permit_working_days
            if self.request.stay_over_90_days
            else d.work_permit_short_stay_working_days
        )
        if self.extended:
            days += d.work_permit_extension_working_days
        self.decision_due = policy.calendar.add_working_days(today, days)

    def request_materials(self, items: Iterable[str], today: dt.date) -> None:
        super().request_materials(items, today)
        self.decision_due = None

    def extend_review(self, today: dt.date, policy: PermitsPolicy) -> dt.date:
        """Extend the decision deadline once by the extension working days ("special cases"), stays > 90
        days only. Returns the new deadline."""
        if self.state is not _S.UNDER_REVIEW or self.materials_complete_on is None:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"cannot extend the review in state {self.state.value}"
            )
        if not self.request.stay_over_90_days:
            raise FailedPrecondition("EXTENSION_NOT_ALLOWED", "no extension for stays of 90 days or less")
        if self.extended:
            raise FailedPrecondition("ALREADY_EXTENDED", "the review was already extended")
        self.extended = True
        self._accepted(self.materials_complete_on, policy)
        assert self.decision_due is not None
        self.events.append(
            PermitEvent(
                "WorkPermitReviewExtended",
                self.id,
                today,
                MappingProxyType({"decision_due": str(self.decision_due)}),
            )
        )
        return self.decision_due

    def approve(self, today: dt.date) -> None:
        """UNDER_REVIEW → APPROVED (the work permit notice). The file is acceptable in UNDER_REVIEW by
        construction; deferred (容缺) items may still be missing and are needed before issue."""
        self._move(_S.APPROVED, today, category=self.category.value)

    def issue(self, number: str, today: dt.date, policy: PermitsPolicy) -> Validity:
        """APPROVED → ISSUED: the work permit card after entry. Needs every notice item (including any
        deferred under 容缺受理) and every after-entry item; `number` is the person's lifelong permit number.
        Validity runs from the later of today and the contract start to the earlier of the contract end and
        the maximum years."""
        if self.state is not _S.APPROVED:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to ISSUED")
        _validate_permit_number(number)
        _require_complete(self.issue_check(today, policy))
        validity = work_permit_validity(today, self.request.contract, policy.validity)
        self._move(
            _S.ISSUED,
            today,
            valid_until=validity.valid_until.isoformat(),
            valid_from=validity.valid_from.isoformat(),
            permit_number=number,
        )
        self.permit_number = number
        self.validity = validity
        return validity

    def supply_after_entry_materials(
        self, items: Iterable[str], today: dt.date, policy: PermitsPolicy
    ) -> MaterialsCheck:
        """Add the after-entry items (visa page and entry stamp, …); returns what is still missing for
        issue."""
        if self.state is not _S.APPROVED:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"after-entry materials need an approved notice, not {self.state.value}"
            )
        items = frozenset(items)
        _unknown_materials(items, policy)
        self.supplied_materials |= items
        return self.issue_check(today, policy)

    def issue_check(self, today: dt.date, policy: PermitsPolicy) -> MaterialsCheck:
        """Everything still missing before the card can be issued: the notice items (including any deferred
        under 容缺受理) and the after-entry items, each code once."""
        age = self._age(today)
        notice = check_materials(Stage.WORK_PERMIT_NOTICE, self.supplied_materials, age, None, policy)
        after = check_materials(Stage.WORK_PERMIT, self.supplied_materials, age, None, policy)
        seen = {item.code for item in notice.missing}
        missing = notice.missing + tuple(item for item in after.missing if item.code not in seen)
        return MaterialsCheck(Stage.WORK_PERMIT, missing, ())


def work_permit_validity(today: dt.date, contract: Contract, limits: ValidityLimits) -> Validity:
    start = max(today, contract.start_date)
    until = min(contract.end_date, add_years(start, limits.work_permit_max_years) - ONE_DAY)
    if until < start:
        raise FailedPrecondition("CONTRACT_ENDED", "the contract has ended")
    return Validity(start, until)


def submit_work_permit(
    application_id: str,
    request: WorkPermitRequest,
    employer: Employer,
    today: dt.date,
    policy: PermitsPolicy,
) -> WorkPermitApplication:
    """A new application in SUBMITTED: the fields are validated (all problems at once), then the business
    rules (employer may sponsor, applicant at least 18), then points and category are fixed with the table
    in force today. The employer's registration counts as supplied (it is done once, online)."""
    request = validate_work_permit_request(request, today)
    if request.employer_uscc != employer.uscc:
        raise InvalidArgument.one("employer_uscc", "EMPLOYER_MISMATCH", "not the sponsoring employer")
    employer.ensure_can_sponsor()
    age = age_on(request.applicant.birth_date, today)
    if age < policy.validity.min_age:
        raise FailedPrecondition(
            "APPLICANT_UNDER_AGE", f"the applicant must be at least {policy.validity.min_age}"
        )
    points = score_points(request, age, policy.points_table_on(today))
    average = policy.local_average_salary(request.work_region, today)
    decision = classify(request, points.total, age, average, policy.category_rules)
    app = WorkPermitApplication(
        id=application_id,
        applicant=request.applicant,
        category=decision.category,
        category_grounds=decision.grounds,
        submitted_on=today,
        request=request,
        points=points,
        supplied_materials=frozenset({"employer_registration"}),
    )
    app.events.append(
        PermitEvent(
            "WorkPermitSubmitted",
            application_id,
            today,
            MappingProxyType({"category": decision.category.value}),
        )
    )
    return app


# ----------------------------------------------------------------------------------------------------------
# Residence permit (work type)
# ----------------------------------------------------------------------------------------------------------


def residence_validity(
    valid_from: dt.date,
    requested_until: dt.date | None,
    work_permit: WorkPermitApplication,
    limits: ValidityLimits,
) -> Validity:
    """From `valid_from` to the earliest of the request, the maximum years, the work permit's validity
    (its contract end while it is only approved) and the contract end; at least the minimum days."""
    caps = [
        add_years(valid_from, limits.residence_max_years) - ONE_DAY,
        work_permit.request.contract.end_date,
    ]
    if work_permit.validity is not None:
        caps.append(work_permit.validity.valid_until)
    if requested_until is not None:
        caps.append(requested_until)
    validity = Validity(valid_from, min(caps))
    if validity.days < limits.residence_min_days:
        raise FailedPrecondition(
            "VALIDITY_TOO_SHORT", f"a residence permit is valid for at least {limits.residence_min_days} days"
        )
    return validity


def residence_fee(validity: Validity, tiers: tuple[FeeTier, ...]) -> int:
    """The fee of the highest tier whose minimum whole months the validity reaches (a validity of exactly one
    year, e.g. 2017-04-01..2018-03-31, is "1 year" and pays the 1–3 year fee)."""
    end = validity.valid_until + ONE_DAY
    reached = [t for t in tiers if add_months(validity.valid_from, t.min_months) <= end]
    return max(reached, key=lambda t: t.min_months).fee_yuan


WORK_PERMIT_DECIDED = frozenset({_S.APPROVED, _S.ISSUED})
WORK_PERMIT_PENDING = frozenset({_S.SUBMITTED, _S.AWAITING_MATERIALS, _S.UNDER_REVIEW})


def _require_work_permit(
    applicant: Applicant, work_permit: WorkPermitApplication | None, *, pending_ok: bool = False
) -> WorkPermitApplication:
    """The work permit a residence permit rests on: approved or issued (or, with `pending_ok`, still in
    review: the one-window case lodges both together). ``WORK_PERMIT_NOT_YET_APPROVED`` for one still in
    review when a decision needs it, ``WORK_PERMIT_REQUIRED`` for none, another person's, or one rejected
    or cancelled."""
    allowed = WORK_PERMIT_DECIDED | (WORK_PERMIT_PENDING if pending_ok else frozenset())
    if work_permit is not None and work_permit.applicant.same_person(applicant):
        if work_permit.state in allowed:
            return work_permit
        if work_permit.state in WORK_PERMIT_PENDING:
            raise FailedPrecondition(
                "WORK_PERMIT_NOT_YET_APPROVED",
                "the residence permit is decided once the work permit it rests on is approved",
            )
    raise FailedPrecondition(
        "WORK_PERMIT_REQUIRED", "a work-type residence permit needs an approved or issued work permit"
    )


@dataclass(kw_only=True)
class ResidencePermitApplication(_Application):
    _EVENT_PREFIX = "ResidencePermit"

    work_permit_id: str
    entry_date: dt.date | None  # None for a job change inside China
    requested_valid_until: dt.date | None = None
    decision_due: dt.date | None = None  # statutory: calendar days
    decision_target: dt.date | None = None  # practice: working days
    fee_yuan: int | None = None
    # Lodged while the work permit was in review: no decision clock until the work permit is approved.
    awaiting_work_permit: bool = False
    # A job change inside China: the issued residence permit (application id) this one replaces.
    replaces_id: str | None = None

    def supply_materials(self, items: Iterable[str], today: dt.date, policy: PermitsPolicy) -> MaterialsCheck:
        """As for the work permit, with the residence checklist (health certificate only for ages 18–70)."""
        return self._supply(Stage.RESIDENCE_PERMIT, items, today, policy)

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> None:
        if self.awaiting_work_permit:  # the clock starts when the work permit is approved
            return
        d = policy.deadlines
        self.decision_due = today + dt.timedelta(days=d.residence_decision_calendar_days)
        self.decision_target = policy.calendar.add_working_days(today, d.residence_target_working_days)

    def work_permit_approved(self, today: dt.date, policy: PermitsPolicy) -> bool:
        """The work permit it was lodged with is approved: the application may now be decided, and a file
        already complete starts its decision clock today (ResidencePermitUnderReview again, with the
        deadlines). False when it was not waiting."""
        if not self.awaiting_work_permit or self.state in (_S.REJECTED, _S.CANCELLED):
            return False
        self.awaiting_work_permit = False
        if self.state is _S.UNDER_REVIEW:
            self._accepted(today, policy)
            self.events.append(PermitEvent("ResidencePermitUnderReview", self.id, today))
        return True

    def follow_work_permit_end(self, today: dt.date, cause: str) -> bool:
        """The work permit it rests on was rejected or cancelled: an open application is cancelled, an
        issued permit is cancelled (注销) and verifies invalid from now on. False when already final."""
        if self.state in (_S.REJECTED, _S.CANCELLED):
            return False
        facts: dict[str, Any] = {"cause": cause}
        if self.state is _S.ISSUED and self.validity is not None:
            last = max(self.validity.valid_from, min(self.validity.valid_until, today - ONE_DAY))
            facts["valid_until"] = last.isoformat()
        self.cancel(today, **facts)
        return True

    def request_materials(self, items: Iterable[str], today: dt.date) -> None:
        super().request_materials(items, today)
        self.decision_due = self.decision_target = None

    def approve(
        self, work_permit: WorkPermitApplication | None, today: dt.date, policy: PermitsPolicy
    ) -> Validity:
        """UNDER_REVIEW → APPROVED, fixing validity (from today) and fee. The work permit is checked again:
        one still in review refuses with ``WORK_PERMIT_NOT_YET_APPROVED``."""
        if self.state is not _S.UNDER_REVIEW:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to APPROVED")
        work_permit = _require_work_permit(self.applicant, work_permit)
        validity = residence_validity(today, self.requested_valid_until, work_permit, policy.validity)
        fee = residence_fee(validity, policy.residence_fee_tiers)
        self._move(
            _S.APPROVED,
            today,
            valid_until=validity.valid_until.isoformat(),
            valid_from=validity.valid_from.isoformat(),
            fee_yuan=str(fee),
            fee_fen=fee * 100,
        )
        self.validity = validity
        self.fee_yuan = fee
        return validity

    def issue(self, number: str, today: dt.date) -> None:
        _validate_permit_number(number)
        facts: dict[str, Any] = {"permit_number": number}
        if self.validity is not None:
            facts |= {
                "valid_from": self.validity.valid_from.isoformat(),
                "valid_until": self.validity.valid_until.isoformat(),
            }
        self._move(_S.ISSUED, today, **facts)
        self.permit_number = number

    def replaced(self, today: dt.date) -> bool:
        """A job change's new permit was issued: this issued permit is cancelled (its holder has one new
        permit, not two). False when it is no longer issued."""
        if self.state is not _S.ISSUED:
            return False
        assert self.validity is not None
        last = max(self.validity.valid_from, min(self.validity.valid_until, today - ONE_DAY))
        self.cancel(today, cause="REPLACED", valid_until=last.isoformat())
        return True

    def extend(
        self,
        requested_until: dt.date | None,
        work_permit: WorkPermitApplication | None,
        today: dt.date,
        policy: PermitsPolicy,
    ) -> Validity:
        """Extend an issued permit (Art. 32): asked at least the minimum days before expiry; the new end is
        capped like a new permit counted from the current start (so never beyond 5 years, the work permit or
        the contract). Returns the new validity."""
        if self.state is not _S.ISSUED or self.validity is None:
            raise FailedPrecondition("PERMIT_NOT_ISSUED", "only an issued residence permit can be extended")
        if today > self.validity.valid_until:
            raise FailedPrecondition("PERMIT_EXPIRED", "the residence permit has expired")
        days_left = (self.validity.valid_until - today).days
        if days_left < policy.deadlines.residence_extension_min_days_before_expiry:
            raise FailedPrecondition(
                "EXTENSION_TOO_LATE",
                f"extensions must be asked for at least "
                f"{policy.deadlines.residence_extension_min_days_before_expiry} days before expiry",
            )
        work_permit = _require_work_permit(self.applicant, work_permit)
        if requested_until is not None and requested_until <= self.validity.valid_until:
            raise InvalidArgument.one("requested_valid_until", "NOT_AFTER_CURRENT_EXPIRY")
        new = residence_validity(self.validity.valid_from, requested_until, work_permit, policy.validity)
        if new.valid_until <= self.validity.valid_until:
            raise FailedPrecondition("VALIDITY_TOO_SHORT", "the limits leave nothing to extend")
        self.validity = new
        self.events.append(
            PermitEvent(
                "ResidencePermitExtended",
                self.id,
                today,
                MappingProxyType({"valid_until": str(new.valid_until)}),
            )
        )
        return new


def submit_residence_permit(
    application_id: str,
    applicant: Applicant,
    work_permit: WorkPermitApplication | None,
    entry_date: dt.date | None,
    requested_valid_until: dt.date | None,
    today: dt.date,
    policy: PermitsPolicy,
    *,
    held_permit: ResidencePermitApplication | None = None,
    job_change: bool = False,
) -> ResidencePermitApplication:
    """A new work-type residence permit application in SUBMITTED, its category the work permit's.

    It may be lodged together with the work permit (the one-window case): the same person (passport number
    and nationality) must hold a work permit that is pending, approved or issued; while it is pending the
    application is `awaiting_work_permit` and is decided after the work permit. The days after entry are
    counted to `today`, this application's date, whatever the work permit's review takes. A `job_change`
    inside China rests on the person's issued residence permit valid today (`held_permit`,
    ``RESIDENCE_PERMIT_NOT_HELD`` otherwise) instead of an entry date, and replaces it when issued."""
    errors = ValidationCollector()
    if entry_date is None and not job_change:
        errors.add("entry_date", "REQUIRED", "the date of entry into China")
    if entry_date is not None and entry_date > today:
        errors.add("entry_date", "IN_FUTURE")
    if requested_valid_until is not None and requested_valid_until < today:
        errors.add("requested_valid_until", "IN_PAST")
    errors.raise_if_any()
    work_permit = _require_work_permit(applicant, work_permit, pending_ok=True)
    if job_change:
        if (
            held_permit is None
            or not held_permit.applicant.same_person(applicant)
            or held_permit.state is not _S.ISSUED
            or held_permit.validity is None
            or not held_permit.validity.covers(today)
        ):
            raise FailedPrecondition(
                "RESIDENCE_PERMIT_NOT_HELD", "a job change rests on the person's valid residence permit"
            )
    else:
        assert entry_date is not None
        limit = policy.deadlines.residence_apply_within_days_of_entry
        if (today - entry_date).days > limit:
            raise FailedPrecondition("APPLICATION_TOO_LATE", f"apply within {limit} days of entry")
    app = ResidencePermitApplication(
        id=application_id,
        applicant=work_permit.applicant,
        category=work_permit.category,
        submitted_on=today,
        work_permit_id=work_permit.id,
        entry_date=entry_date,
        requested_valid_until=requested_valid_until,
        # The department holds the work permit itself: it never asks the applicant for a copy of it.
        supplied_materials=frozenset({"work_permit"}),
        awaiting_work_permit=work_permit.state in WORK_PERMIT_PENDING,
        replaces_id=held_permit.id if job_change and held_permit is not None else None,
    )
    facts: dict[str, Any] = {
        "work_permit_id": work_permit.id,
        "awaiting_work_permit": app.awaiting_work_permit,
        "job_change": job_change,
        "replaces_id": app.replaces_id,
    }
    app.events.append(PermitEvent("ResidencePermitSubmitted", application_id, today, MappingProxyType(facts)))
    return app


# ----------------------------------------------------------------------------------------------------------
# Verification for other government systems
# ----------------------------------------------------------------------------------------------------------


class PermitKind(enum.StrEnum):
    WORK_PERMIT = "WORK_PERMIT"
    RESIDENCE_PERMIT = "RESIDENCE_PERMIT"


@dataclass(frozen=True, slots=True)
class PermitVerification:
    """What another government system may learn: no name, passport number or birth date."""

    kind: PermitKind
    valid_now: bool
    state: PermitState
    category: Category
    validity: Validity | None


def verify_permit(
    permit: WorkPermitApplication | ResidencePermitApplication, today: dt.date
) -> PermitVerification:
    kind = (
        PermitKind.WORK_PERMIT if isinstance(permit, WorkPermitApplication) else PermitKind.RESIDENCE_PERMIT
    )
    valid_now = permit.state is _S.ISSUED and permit.validity is not None and permit.validity.covers(today)
    return PermitVerification(kind, valid_now, permit.state, permit.category, permit.validity)
