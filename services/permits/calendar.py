"""The permits department's working-day calendar, from kept sources, and its operator alarm.

Sources, one per year: the ``chinese-calendar`` package (the State Council's yearly holiday notices with
their adjusted working days, 调休), and ``calendar_overrides.toml`` for years the installed package does
not cover yet. A working-day computation that reaches a year neither covers raises
``domain.CalendarNotCovered``; ``CalendarAlarm`` turns that into an error log and a Prometheus counter
(``govhub_calendar_not_covered_total{year}``) beside the refusal the caller gets.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

import chinese_calendar
import msgspec
import structlog
from prometheus_client import Counter, Gauge

from services.common.metrics import building
from services.common.tomlfile import Policy, PolicyError, decode, read_packaged
from services.permits.domain import CalendarNotCovered, HolidayCalendar

__all__ = [
    "CalendarAlarm",
    "HolidaySpan",
    "Notice",
    "Overrides",
    "build_calendar",
    "default_calendar",
    "package_calendar",
]

log = structlog.get_logger("govhub.permits.calendar")

OVERRIDES_FILE = "calendar_overrides.toml"
MAX_SPAN_DAYS = 10  # the longest holiday of a notice (国庆 with its bridging days) is 8 days
ONE_DAY = dt.timedelta(days=1)


class HolidaySpan(Policy):
    name: str
    start: dt.date = msgspec.field(name="from")
    end: dt.date = msgspec.field(name="to")


class Notice(Policy):
    """One year's State Council notice, copied into the override file."""

    year: int
    notice: str
    holidays: list[HolidaySpan]
    adjusted_working_days: tuple[dt.date, ...] = ()


class Overrides(Policy):
    notices: tuple[Notice, ...] = ()


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
) -> HolidayCalendar:
    """The package's years plus the override file's; raises ``PolicyError`` on malformed overrides."""
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
    return HolidayCalendar(
        years | frozenset(extra_years),
        holidays | frozenset(extra_holidays),
        workdays | frozenset(extra_workdays),
    )


def parse_overrides(data: Mapping[str, object], source: str = OVERRIDES_FILE) -> Overrides:
    return decode(data, Overrides, source)


@functools.cache
def default_calendar() -> HolidayCalendar:
    """The package plus the packaged override file, built once per process."""
    return build_calendar(read_packaged("services.permits", OVERRIDES_FILE, Overrides))


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
        self.last_covered = Gauge(
            "govhub_calendar_last_covered_year",
            "The last year the working-day calendar covers (package or override file)",
            registry=registry,
        )
        if calendar.last_year is not None:
            self.last_covered.set(calendar.last_year)

    def raised(self, exc: CalendarNotCovered, what: str) -> None:
        self.not_covered.labels(year=str(exc.year)).inc()
        log.error(
            "working-day calendar not covered",
            year=exc.year,
            during=what,
            action=f"add the State Council holiday notice for {exc.year} to services/permits/{OVERRIDES_FILE}"
            " or upgrade the chinese-calendar package",
        )
