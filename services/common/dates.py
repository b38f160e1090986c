"""Calendar arithmetic shared by every department: one rule each, pure (no clock, no I/O).

29 February: the resident ID card law (docs/domain.md §2.1, S) counts a 29 February birthday as 1 March in a
common year, and a validity "ends on the same month and day N years later". ``add_years`` and ``age_on``
follow that one rule, so a card issued on 29 February 2016 for 5 years runs to 1 March 2021, and a person
born on 29 February turns a year older on 1 March in a common year. ``add_months`` instead clamps to the
last day of a shorter month (31 January + 1 month = the end of February): a month has no "same day".
"""

from __future__ import annotations

import calendar
from datetime import date

__all__ = ["add_months", "add_years", "age_on"]


def add_years(day: date, years: int) -> date:
    """The same month and day `years` later (negative: earlier); 29 February becomes 1 March in a common
    year."""
    year = day.year + years
    if day.month == 2 and day.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return day.replace(year=year)


def add_months(day: date, months: int) -> date:
    """The same day `months` later (negative: earlier), clamped to the last day of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def age_on(birth_date: date, on: date) -> int:
    """Completed years (周岁) on `on`. A 29 February birthday counts as 1 March in a common year."""
    age = on.year - birth_date.year
    birthday = (birth_date.month, birth_date.day)
    if birthday == (2, 29) and not calendar.isleap(on.year):
        birthday = (3, 1)
    return age - ((on.month, on.day) < birthday)
