"""services.common.dates: one 29 February rule for validity ends and ages, month arithmetic clamped."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.common.dates import add_months, add_years, age_on


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (date(2005, 3, 27), 20, date(2025, 3, 27)),  # DOMAIN §2.1's own example
        (date(2016, 2, 29), 5, date(2021, 3, 1)),  # into a common year: 1 March
        (date(2016, 2, 29), 20, date(2036, 2, 29)),  # into a leap year: 29 February stays
        (date(2016, 2, 29), 4, date(2020, 2, 29)),
        (date(2016, 2, 29), -1, date(2015, 3, 1)),
        (date(2017, 2, 28), 3, date(2020, 2, 28)),
        (date(2016, 12, 31), 1, date(2017, 12, 31)),
    ],
)
def test_add_years(day: date, years: int, expected: date) -> None:
    assert add_years(day, years) == expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2016, 1, 31), 1, date(2016, 2, 29)),  # leap year: the end of February
        (date(2017, 1, 31), 1, date(2017, 2, 28)),  # common year
        (date(2015, 12, 15), 1, date(2016, 1, 15)),  # across the year
        (date(2016, 3, 31), -1, date(2016, 2, 29)),
        (date(2016, 5, 31), -3, date(2016, 2, 29)),
        (date(2016, 1, 15), -13, date(2014, 12, 15)),
        (date(2016, 8, 31), 12, date(2017, 8, 31)),
        (date(2016, 2, 29), 12, date(2017, 2, 28)),
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2000, 1, 1), date(2016, 1, 1), 16),
        (date(2000, 1, 2), date(2016, 1, 1), 15),
        (date(2000, 2, 29), date(2016, 2, 28), 15),
        (date(2000, 2, 29), date(2016, 2, 29), 16),  # leap year: the birthday itself
        (date(2000, 2, 29), date(2017, 2, 28), 16),  # common year: not yet on 28 February
        (date(2000, 2, 29), date(2017, 3, 1), 17),  # ... but on 1 March
        (date(1990, 6, 15), date(2017, 6, 14), 26),
        (date(1990, 6, 15), date(2017, 6, 15), 27),
        (date(1970, 12, 31), date(2016, 12, 30), 45),
        (date(1970, 12, 31), date(2016, 12, 31), 46),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


def test_a_29_february_birthday_and_validity_agree() -> None:
    """The age rule and the year rule are one rule: the birthday N years on is the day one is N older."""
    born = date(2000, 2, 29)
    for years in range(1, 9):
        birthday = add_years(born, years)
        assert age_on(born, birthday) == years
        assert age_on(born, birthday - timedelta(days=1)) == years - 1
