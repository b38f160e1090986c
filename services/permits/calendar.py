"""The permits department's working-day calendar, from kept sources, and its operator alarm.

Sources, one per year: the ``chinese-calendar`` package (the State Council's yearly holiday notices with
their adjusted working days, 调休), and ``calendar_overrides.toml`` for years the installed package does
not cover yet. Years after the last published notice (up to ``holiday_law.toml``'s horizon) are
*provisional*: their holidays are derived from the holiday law itself (《全国年节及纪念日放假办法》, the
version in force on 1 January), with lunar dates converted by ``lunardate`` and the Qingming solar term
taken from ``chinese-calendar``; each statutory holiday on a weekend gets its make-up weekday (补假).
An answer relying on a provisional year says so; ``CalendarAlarm.provisional`` logs a warning and counts
it (``govhub_calendar_provisional_total{year}``). A working-day computation that reaches a year no source
covers raises ``domain.CalendarNotCovered``; ``CalendarAlarm`` turns that into an error log and a
Prometheus counter (``govhub_calendar_not_covered_total{year}``) beside the refusal the caller gets.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

import chinese_calendar
import msgspec
import structlog
from lunardate import LunarDate
from prometheus_client import Counter, Gauge

from services.common.metrics import building
from services.common.tomlfile import Policy, PolicyError, decode, read_packaged
from services.permits.domain import CalendarNotCovered, HolidayCalendar

__all__ = [
    "CalendarAlarm",
    "HolidayLaw",
    "HolidaySpan",
    "LawVersion",
    "Notice",
    "Overrides",
    "StatutoryHoliday",
    "build_calendar",
    "default_calendar",
    "package_calendar",
    "provisional_holidays",
    "statutory_holidays",
]

log = structlog.get_logger("govhub.permits.calendar")

OVERRIDES_FILE = "calendar_overrides.toml"
LAW_FILE = "holiday_law.toml"
MAX_SPAN_DAYS = 10  # the longest holiday of a notice (国庆 with its bridging days) is 8 days
ONE_DAY = dt.timedelta(days=1)


class HolidaySpan(Policy, frozen=True):
    name: str
    start: dt.date = msgspec.field(name="from")
    end: dt.date = msgspec.field(name="to")


class Notice(Policy, frozen=True):
    """One year's State Council notice, copied into the override file."""

    year: int
    notice: str
    holidays: list[HolidaySpan]
    adjusted_working_days: tuple[dt.date, ...] = ()


class Overrides(Policy, frozen=True):
    notices: tuple[Notice, ...] = ()


class MonthDay(Policy, frozen=True):
    month: int
    day: int


class StatutoryHoliday(Policy, frozen=True):
    """A holiday of the law: `days` days from `offset` days after its one anchor."""

    name: str
    gregorian: MonthDay | None = None
    lunar: MonthDay | None = None
    solar_term: str | None = None
    offset: int = 0
    days: int = 1


class LawVersion(Policy, frozen=True):
    effective: dt.date
    source: str
    holidays: tuple[StatutoryHoliday, ...]


class HolidayLaw(Policy, frozen=True):
    """《全国年节及纪念日放假办法》 version by version, and how far past the last notice it is used."""

    horizon_years: int
    versions: tuple[LawVersion, ...]


def check_law(law: HolidayLaw, source: str = LAW_FILE) -> HolidayLaw:
    """`law` if well formed; raises ``PolicyError`` naming the version and holiday at fault."""
    if not 1 <= law.horizon_years <= 20:
        raise PolicyError(f"{source}: horizon_years must be 1 to 20")
    if not law.versions:
        raise PolicyError(f"{source}: no version of the law")
    effective = [v.effective for v in law.versions]
    if effective != sorted(set(effective)):
        raise PolicyError(f"{source}: versions must be in order of their effective dates, each once")
    terms = _term_names()
    for i, version in enumerate(law.versions):
        if not version.source.strip() or not version.holidays:
            raise PolicyError(f"{source}: versions[{i}]: name the source and list the holidays")
        for j, h in enumerate(version.holidays):
            where = f"{source}: versions[{i}].holidays[{j}] ({h.name})"
            anchors = [a for a in (h.gregorian, h.lunar, h.solar_term) if a is not None]
            if len(anchors) != 1:
                raise PolicyError(f"{where}: give exactly one of gregorian, lunar, solar_term")
            if not 1 <= h.days <= MAX_SPAN_DAYS or not -1 <= h.offset <= 1:
                raise PolicyError(f"{where}: days must be 1 to {MAX_SPAN_DAYS}, offset -1 to 1")
            if h.solar_term is not None and h.solar_term not in terms:
                raise PolicyError(f"{where}: unknown solar term {h.solar_term!r}")
            for md in (h.gregorian, h.lunar):
                if md is not None and not (
                    1 <= md.month <= 12 and 1 <= md.day <= (30 if md is h.lunar else 31)
                ):
                    raise PolicyError(f"{where}: no such date {md.month}-{md.day}")
            try:
                _anchor(h, version.effective.year)
            except ValueError as exc:  # e.g. 2-30, or a lunar date outside lunardate's range
                raise PolicyError(f"{where}: cannot place it in {version.effective.year}: {exc}") from None
    return law


def _term_names() -> frozenset[str]:
    """The 24 solar terms' names as chinese-calendar spells them."""
    terms = chinese_calendar.get_solar_terms(dt.date(2000, 1, 1), dt.date(2000, 12, 31))
    return frozenset(name for _, name in terms)


def _in_force(law: HolidayLaw, year: int) -> LawVersion | None:
    """The version in force on 1 January of `year` (None before the first)."""
    new_year = dt.date(year, 1, 1)
    found = None
    for version in law.versions:
        if version.effective <= new_year:
            found = version
    return found


def _anchor(h: StatutoryHoliday, year: int) -> dt.date:
    if h.gregorian is not None:
        return dt.date(year, h.gregorian.month, h.gregorian.day)
    if h.lunar is not None:
        solar: dt.date = LunarDate(year, h.lunar.month, h.lunar.day).to_solar_date()
        return solar
    terms = chinese_calendar.get_solar_terms(dt.date(year, 1, 1), dt.date(year, 12, 31))
    term: dt.date = next(day for day, name in terms if name == h.solar_term)
    return term


def statutory_holidays(law: HolidayLaw, year: int) -> dict[dt.date, str] | None:
    """The law's holidays for all citizens in `year` (date → name), None when no version is in force."""
    version = _in_force(law, year)
    if version is None:
        return None
    days: dict[dt.date, str] = {}
    for h in version.holidays:
        start = _anchor(h, year) + dt.timedelta(days=h.offset)
        for k in range(h.days):
            days[start + dt.timedelta(days=k)] = h.name
    return days


def provisional_holidays(law: HolidayLaw, year: int) -> frozenset[dt.date] | None:
    """The statutory holidays of `year` plus a make-up weekday (补假, Article 6 of the law) for each one on
    a Saturday or Sunday: the first Monday–Friday after it that is no holiday. None when no version is in
    force."""
    statutory = statutory_holidays(law, year)
    if statutory is None:
        return None
    days = set(statutory)
    for day in sorted(statutory):
        if day.weekday() < 5:
            continue
        make_up = day + ONE_DAY
        while make_up.weekday() >= 5 or make_up in days:
            make_up += ONE_DAY
        days.add(make_up)
    return frozenset(days)


def package_calendar() -> tuple[frozenset[int], frozenset[dt.date], frozenset[dt.date]]:
    """(years, holidays, adjusted working days) of the installed ``chinese-calendar``."""
    holidays = frozenset(chinese_calendar.holidays)
    workdays = frozenset(chinese_calendar.workdays)
    years = frozenset(range(min(holidays).year, max(holidays).year + 1))
    return years, holidays, workdays


def build_calendar(
    overrides: Overrides,
    package: tuple[frozenset[int], frozenset[dt.date], frozenset[dt.date]] | None = None,
    source: str = OVERRIDES_FILE,
    law: HolidayLaw | None = None,
) -> HolidayCalendar:
    """The package's years plus the override file's, then (with `law`) the provisional years after the
    last of them up to the law's horizon; raises ``PolicyError`` on malformed overrides."""
    years, holidays, workdays = package or package_calendar()
    extra_years: set[int] = set()
    extra_holidays: set[dt.date] = set()
    extra_workdays: set[dt.date] = set()
    for i, notice in enumerate(overrides.notices):
        where = f"{source}: notices[{i}] ({notice.year})"
        if notice.year in years:
            raise PolicyError(f"{where}: the chinese-calendar package already covers {notice.year}")
        if notice.year in extra_years:
            raise PolicyError(f"{where}: {notice.year} is listed twice")
        if not notice.notice.strip() or not notice.holidays:
            raise PolicyError(f"{where}: name the notice and list its holidays")
        extra_years.add(notice.year)
        for span in notice.holidays:
            if span.end < span.start or (span.end - span.start).days >= MAX_SPAN_DAYS:
                raise PolicyError(f"{where}: implausible holiday {span.name} {span.start}..{span.end}")
            # 元旦 may start on 31 December of the year before; every other day is in the notice's year.
            day = span.start
            while day <= span.end:
                if day.year != notice.year and not (day.month == 12 and day.year == notice.year - 1):
                    raise PolicyError(f"{where}: holiday {span.name} on {day} is outside {notice.year}")
                extra_holidays.add(day)
                day += ONE_DAY
        for day in notice.adjusted_working_days:
            if day.year != notice.year:
                raise PolicyError(f"{where}: adjusted working day {day} is outside {notice.year}")
            if day.weekday() < 5:
                raise PolicyError(f"{where}: adjusted working day {day} is not a Saturday or Sunday")
            extra_workdays.add(day)
    both = extra_holidays & extra_workdays
    if both:
        raise PolicyError(f"{source}: both a holiday and a working day: {sorted(both)}")
    published = years | frozenset(extra_years)
    provisional: set[int] = set()
    if law is not None and published:
        last = max(published)
        for year in range(last + 1, last + law.horizon_years + 1):
            days = provisional_holidays(law, year)
            if days is not None:
                provisional.add(year)
                extra_holidays |= days
    return HolidayCalendar(
        published | frozenset(provisional),
        holidays | frozenset(extra_holidays),
        workdays | frozenset(extra_workdays),
        provisional_years=frozenset(provisional),
    )


def parse_overrides(data: Mapping[str, object], source: str = OVERRIDES_FILE) -> Overrides:
    return decode(data, Overrides, source)


@functools.cache
def default_calendar() -> HolidayCalendar:
    """The package plus the packaged override file and the provisional years of the packaged holiday law,
    built once per process."""
    law = check_law(read_packaged("services.permits", LAW_FILE, HolidayLaw))
    return build_calendar(read_packaged("services.permits", OVERRIDES_FILE, Overrides), law=law)


class CalendarAlarm:
    """Error log and counter for a working-day computation that reached a year no source covers; a gauge
    with the last covered year, so that an operator is warned before the year turns."""

    def __init__(self, calendar: HolidayCalendar) -> None:
        metrics = building()
        registry = metrics.registry if metrics is not None else None
        self.not_covered = Counter(
            "govhub_calendar_not_covered",
            "Working-day computations refused because no holiday notice covers the year",
            ["year"],
            registry=registry,
        )
        self.provisional_answers = Counter(
            "govhub_calendar_provisional",
            "Working-day answers relying on a year without a published holiday notice (derived from the law)",
            ["year"],
            registry=registry,
        )
        self.last_covered = Gauge(
            "govhub_calendar_last_covered_year",
            "The last year with a published holiday notice (package or override file)",
            registry=registry,
        )
        if calendar.last_published_year is not None:
            self.last_covered.set(calendar.last_published_year)

    def provisional(self, year: int | None, what: str) -> bool:
        """Count and log an answer relying on provisional `year`; True when it does (`year` not None)."""
        if year is None:
            return False
        self.provisional_answers.labels(year=str(year)).inc()
        log.warning(
            "working-day calendar provisional",
            year=year,
            during=what,
            action=f"add the State Council holiday notice for {year} to services/permits/{OVERRIDES_FILE}"
            " or upgrade the chinese-calendar package",
        )
        return True

    def raised(self, exc: CalendarNotCovered, what: str) -> None:
        self.not_covered.labels(year=str(exc.year)).inc()
        log.error(
            "working-day calendar not covered",
            year=exc.year,
            during=what,
            action=f"add the State Council holiday notice for {exc.year} to services/permits/{OVERRIDES_FILE}"
            " or upgrade the chinese-calendar package",
        )
