"""The working-day calendar: State Council holidays and adjusted working days (调休) as data, and
working-day counts over them. Built from its sources by ``services.permits.calendar``."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

from services.common.errors import FailedPrecondition

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
