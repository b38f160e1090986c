"""The provisional working-day calendar: years after the last published State Council notice, derived from
the holiday law (holiday_law.toml), checked against the notices the chinese-calendar package carries."""

from __future__ import annotations

import datetime as dt

import chinese_calendar
import pytest
import structlog

from services.common.metrics import ServiceMetrics, collecting
from services.common.tomlfile import PolicyError, decode, read_packaged
from services.permits import domain as d
from services.permits.calendar import (
    LAW_FILE,
    CalendarAlarm,
    HolidayLaw,
    Overrides,
    build_calendar,
    check_law,
    package_calendar,
    provisional_holidays,
    statutory_holidays,
)

D = dt.date
ONE_DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def law() -> HolidayLaw:
    return check_law(read_packaged("services.permits", LAW_FILE, HolidayLaw))


def _package_working(day: dt.date) -> bool:
    return chinese_calendar.is_workday(day)


def _differing_days(law: HolidayLaw, year: int) -> list[dt.date]:
    """Days of `year` whose working-day status differs between the provisional derivation and the notice."""
    derived = provisional_holidays(law, year)
    assert derived is not None
    differ = []
    day = D(year, 1, 1)
    while day.year == year:
        provisional_working = day.weekday() < 5 and day not in derived
        if provisional_working != _package_working(day):
            differ.append(day)
        day += ONE_DAY
    return differ


@pytest.mark.parametrize("year", range(2008, 2027))
def test_every_statutory_holiday_is_a_holiday_of_the_published_notice(law, year) -> None:
    """The notices only add bridging days and 调休: the law's own holidays agree with every notice."""
    statutory = statutory_holidays(law, year)
    assert statutory
    for day, name in statutory.items():
        assert chinese_calendar.is_holiday(day), (day, name)


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (
            2025,
            {
                D(2025, 1, 1): "元旦",
                D(2025, 1, 28): "春节",  # 除夕, a holiday from the 2024 revision on
                D(2025, 1, 29): "春节",
                D(2025, 1, 30): "春节",
                D(2025, 1, 31): "春节",
                D(2025, 4, 4): "清明节",
                D(2025, 5, 1): "劳动节",
                D(2025, 5, 2): "劳动节",
                D(2025, 5, 31): "端午节",
                D(2025, 10, 6): "中秋节",
                D(2025, 10, 1): "国庆节",
                D(2025, 10, 2): "国庆节",
                D(2025, 10, 3): "国庆节",
            },
        ),
        (
            2026,
            {
                D(2026, 1, 1): "元旦",
                D(2026, 2, 16): "春节",  # 除夕
                D(2026, 2, 17): "春节",
                D(2026, 2, 18): "春节",
                D(2026, 2, 19): "春节",
                D(2026, 4, 5): "清明节",
                D(2026, 5, 1): "劳动节",
                D(2026, 5, 2): "劳动节",
                D(2026, 6, 19): "端午节",
                D(2026, 9, 25): "中秋节",
                D(2026, 10, 1): "国庆节",
                D(2026, 10, 2): "国庆节",
                D(2026, 10, 3): "国庆节",
            },
        ),
        (2016, None),  # the 2013 revision: 春节 is 正月初一 to 初三, no 除夕
    ],
)
def test_statutory_holidays_of_a_year(law, year, expected) -> None:
    days = statutory_holidays(law, year)
    if expected is not None:
        assert days == expected
    else:
        spring = sorted(day for day, name in days.items() if name == "春节")
        assert spring == [D(2016, 2, 8), D(2016, 2, 9), D(2016, 2, 10)]


def test_2027_is_derived_from_the_2024_revision(law) -> None:
    days = statutory_holidays(law, 2027)
    spring = sorted(day for day, name in days.items() if name == "春节")
    # 正月初一 of 2027 is Saturday 6 February; 除夕 Friday 5 February
    assert spring == [D(2027, 2, 5), D(2027, 2, 6), D(2027, 2, 7), D(2027, 2, 8)]
    assert [day for day, name in days.items() if name == "清明节"] == [D(2027, 4, 5)]
    derived = provisional_holidays(law, 2027)
    # 补假 for Saturday 6 and Sunday 7 February: Tuesday 9 and Wednesday 10 February
    assert {D(2027, 2, 9), D(2027, 2, 10)} <= derived
    assert len(derived) == len(days) + sum(day.weekday() >= 5 for day in days)
    assert D(2027, 2, 11) not in derived


@pytest.mark.parametrize(("year", "differ"), [(2017, 10), (2024, 16), (2025, 10), (2026, 12)])
def test_provisional_and_published_differ_only_by_the_notices_bridges_and_swaps(law, year, differ) -> None:
    """Measured: how many days of a published year the provisional derivation gets wrong (bridging days the
    notice gives off, weekends it makes working days). The figure is the price of a provisional year. Each
    day the notice gives off is paid back by a weekend worked, so the year's working days are the same."""
    days = _differing_days(law, year)
    assert len(days) == differ, days
    statutory = statutory_holidays(law, year)
    assert not set(days) & set(statutory)
    worked = [day for day in days if _package_working(day)]
    assert all(day.weekday() >= 5 for day in worked)  # the notice's 调休: weekends worked
    assert len(worked) == len(days) - len(worked)  # as many bridging days off


def test_the_calendar_is_provisional_after_the_last_published_year(law) -> None:
    cal = build_calendar(Overrides(), law=law)
    last = max(package_calendar()[0])
    assert cal.last_published_year == last
    assert cal.provisional_years == frozenset(range(last + 1, last + 11))
    assert cal.last_year == last + 10
    assert not cal.is_provisional(D(last, 12, 31)) and cal.is_provisional(D(last + 1, 1, 1))
    assert cal.provisional_year(D(last, 12, 1), D(last, 12, 31)) is None
    assert cal.provisional_year(D(last, 12, 31), D(last + 2, 1, 1)) == last + 1
    assert cal.provisional_year(D(last + 1, 1, 5), D(last + 1, 1, 5)) is None  # an empty span


def test_a_published_override_year_is_not_provisional(law) -> None:
    last = max(package_calendar()[0])
    doc = decode(
        {
            "notices": [
                {
                    "year": last + 1,
                    "notice": "a synthetic notice for the test",
                    "holidays": [{"name": "元旦", "from": D(last + 1, 1, 1), "to": D(last + 1, 1, 1)}],
                }
            ]
        },
        Overrides,
        "test",
    )
    cal = build_calendar(doc, law=law)
    assert cal.last_published_year == last + 1
    assert min(cal.provisional_years) == last + 2


def test_without_the_law_no_year_is_provisional() -> None:
    cal = build_calendar(Overrides())
    assert not cal.provisional_years
    with pytest.raises(d.CalendarNotCovered):
        cal.is_working_day(D(cal.last_year + 1, 1, 4))


def test_a_2027_deadline_counts_the_derived_spring_festival(law) -> None:
    cal = build_calendar(Overrides(), law=law)
    # complete on Friday 2027-01-29: working days Feb 1–4, then 除夕–初三 and the two 补假 (5–10 Feb) off
    assert cal.add_working_days(D(2027, 1, 29), 5) == D(2027, 2, 11)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"horizon_years": 0}, "horizon_years"),
        ({"versions": []}, "no version"),
        ({"holidays": [{"name": "x"}]}, "exactly one of"),
        ({"holidays": [{"name": "x", "solar_term": "清明", "lunar": {"month": 1, "day": 1}}]}, "exactly one"),
        ({"holidays": [{"name": "x", "solar_term": "Qingming"}]}, "unknown solar term"),
        ({"holidays": [{"name": "x", "lunar": {"month": 13, "day": 1}}]}, "no such date"),
        ({"holidays": [{"name": "x", "gregorian": {"month": 1, "day": 1}, "days": 0}]}, "days must be"),
        ({"holidays": [{"name": "x", "gregorian": {"month": 2, "day": 30}}]}, "cannot place it in 2025"),
        ({"holidays": [{"name": "x", "gregorian": {"month": 1, "day": 1}, "colour": "red"}]}, "colour"),
    ],
)
def test_a_malformed_law_file_fails_loudly(change, message) -> None:
    version = {"effective": D(2025, 1, 1), "source": "test", "holidays": change.get("holidays", [])}
    data = {"horizon_years": change.get("horizon_years", 10), "versions": change.get("versions", [version])}
    with pytest.raises(PolicyError, match=message):
        check_law(decode(data, HolidayLaw, "holiday_law.toml"))


def test_the_alarm_counts_and_warns_of_a_provisional_answer(law) -> None:
    cal = build_calendar(Overrides(), law=law)
    with collecting(ServiceMetrics("permits")) as metrics:
        alarm = CalendarAlarm(cal)
    registry = metrics.registry
    last = cal.last_published_year
    assert registry.get_sample_value("govhub_calendar_last_covered_year") == last
    with structlog.testing.capture_logs() as logs:
        assert alarm.provisional(None, "test") is False
        assert alarm.provisional(last + 1, "test") is True
    assert registry.get_sample_value("govhub_calendar_provisional_total", {"year": str(last + 1)}) == 1
    [entry] = logs
    assert entry["log_level"] == "warning" and entry["year"] == last + 1
    assert "calendar_overrides.toml" in entry["action"] and "chinese-calendar" in entry["action"]
