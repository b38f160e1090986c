"""The working-day calendar (holidays and 调休 from the chinese-calendar package, plus the override file for
later years), its alarm, and the work permit decision deadline."""

from __future__ import annotations

import datetime as dt

import pytest
import structlog

from services.common.errors import FailedPrecondition
from services.common.metrics import ServiceMetrics, collecting
from services.common.tomlfile import PolicyError
from services.permits import domain as d
from services.permits.calendar import CalendarAlarm, build_calendar, parse_overrides

D = dt.date


@pytest.fixture
def cal(policy: d.PermitsPolicy) -> d.HolidayCalendar:
    return policy.calendar


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2016, 1, 1), False),  # 元旦 (Friday)
        (D(2016, 1, 4), True),
        (D(2016, 2, 6), True),  # Saturday, 调休 for 春节
        (D(2016, 2, 8), False),  # Monday in 春节
        (D(2016, 2, 12), False),  # Friday in 春节
        (D(2016, 2, 14), True),  # Sunday, 调休
        (D(2016, 2, 15), True),
        (D(2016, 2, 20), False),  # an ordinary Saturday
        (D(2016, 4, 4), False),  # 清明 (Monday)
        (D(2016, 5, 2), False),  # 劳动节 (Monday)
        (D(2016, 6, 10), False),  # 端午 (Friday)
        (D(2016, 6, 12), True),  # Sunday, 调休
        (D(2016, 9, 16), False),  # 中秋 (Friday)
        (D(2016, 9, 18), True),  # Sunday, 调休
        (D(2016, 10, 7), False),  # 国庆 (Friday)
        (D(2016, 10, 8), True),  # Saturday, 调休
        (D(2016, 10, 9), True),  # Sunday, 调休
        (D(2017, 1, 2), False),  # 元旦 2017 (Monday)
        (D(2017, 1, 22), True),  # Sunday, 调休 for 春节 2017
        (D(2017, 2, 2), False),  # Thursday in 春节 2017
        (D(2017, 2, 4), True),  # Saturday, 调休
        (D(2017, 4, 1), True),  # Saturday, 调休 for 清明
        (D(2017, 4, 4), False),  # 清明 (Tuesday)
        (D(2017, 5, 27), True),  # Saturday, 调休 for 端午
        (D(2017, 5, 30), False),  # 端午 (Tuesday)
        (D(2017, 9, 30), True),  # Saturday, 调休 for 国庆/中秋
        (D(2017, 10, 6), False),
        (D(2017, 10, 9), True),
    ],
)
def test_is_working_day(cal, day: dt.date, working: bool) -> None:
    assert cal.is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (D(2016, 2, 5), 0, D(2016, 2, 5)),
        (D(2016, 2, 5), 1, D(2016, 2, 6)),  # Friday → the 调休 Saturday
        (D(2016, 2, 5), 2, D(2016, 2, 14)),  # … then over 春节 to the 调休 Sunday
        (D(2016, 2, 5), 3, D(2016, 2, 15)),
        (D(2016, 9, 14), 1, D(2016, 9, 18)),  # over 中秋 to the 调休 Sunday
        (D(2016, 9, 30), 1, D(2016, 10, 8)),  # over 国庆
        (D(2016, 9, 30), 3, D(2016, 10, 10)),
        (D(2017, 9, 29), 3, D(2017, 10, 10)),  # 调休 Saturday 30 Sep, then over 国庆/中秋 1–8 Oct
        (D(2016, 3, 4), 5, D(2016, 3, 11)),  # an ordinary week
    ],
)
def test_add_working_days(cal, start, n, expected) -> None:
    assert cal.add_working_days(start, n) == expected


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (D(2016, 2, 5), D(2016, 2, 15), 3),
        (D(2016, 9, 30), D(2016, 10, 9), 2),
        (D(2016, 10, 9), D(2016, 9, 30), 0),
        (D(2016, 3, 4), D(2016, 3, 4), 0),
        (D(2016, 1, 1), D(2016, 12, 31), 250),  # 261 weekdays − 17 holiday weekdays + 6 调休
    ],
)
def test_working_days_between(cal, start, end, count) -> None:
    assert cal.working_days_between(start, end) == count


@pytest.mark.parametrize("n", [0, 1, 5, 7, 20, 30, 60])
@pytest.mark.parametrize("start", [D(2016, 1, 29), D(2016, 9, 12), D(2017, 1, 20), D(2017, 9, 25)])
def test_add_and_between_agree(cal, start, n) -> None:
    assert cal.working_days_between(start, cal.add_working_days(start, n)) == n


def test_negative_days_are_refused(cal) -> None:
    with pytest.raises(ValueError):
        cal.add_working_days(D(2016, 3, 1), -1)


@pytest.mark.parametrize("day", [D(2003, 12, 31), D(2060, 1, 5)])
def test_days_outside_the_calendar_fail_loudly(cal, day) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        cal.is_working_day(day)
    assert exc.value.reason == "CALENDAR_NOT_COVERED"
    assert str(day.year) in exc.value.message


def test_a_deadline_running_past_the_horizon_fails_naming_the_year(cal) -> None:
    beyond = cal.last_published_year + 11  # holiday_law.toml: provisional for 10 years after the last notice
    assert cal.last_year == beyond - 1
    with pytest.raises(d.CalendarNotCovered) as exc:
        cal.add_working_days(D(beyond - 1, 12, 20), 20)
    assert exc.value.year == beyond and exc.value.reason == "CALENDAR_NOT_COVERED"
    with pytest.raises(d.CalendarNotCovered):
        cal.working_days_between(D(beyond - 1, 12, 1), D(beyond, 1, 5))


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2020, 1, 31), False),  # 2020: 春节 extended for Covid-19 (the State Council's notice of 27 Jan)
        (D(2025, 1, 26), True),  # Sunday, 调休 for 春节 2025
        (D(2025, 1, 28), False),  # 除夕 2025, a statutory holiday from 2025
        (D(2026, 1, 4), True),  # Sunday, 调休 for 元旦 2026
        (D(2026, 10, 7), False),  # 国庆 2026 (Wednesday)
        (D(2026, 10, 10), True),  # Saturday, 调休
        (D(2026, 12, 1), True),
    ],
)
def test_the_package_covers_every_year_to_today(cal, day, working) -> None:
    assert cal.is_working_day(day) is working


def test_counting_agrees_with_walking_day_by_day(cal) -> None:
    start = D(2016, 1, 1)
    walked = 0
    for offset in range(1, 3 * 366, 7):
        end = start + dt.timedelta(days=offset)
        walked = sum(cal.is_working_day(start + dt.timedelta(days=k)) for k in range(1, offset + 1))
        assert cal.working_days_between(start, end) == walked
    assert walked > 0


def test_the_override_file_adds_a_year_the_package_lacks() -> None:
    doc = parse_overrides(
        {
            "notices": [
                {
                    "year": 2027,
                    "notice": "a synthetic notice for the test",
                    "holidays": [{"name": "元旦", "from": D(2027, 1, 1), "to": D(2027, 1, 3)}],
                    "adjusted_working_days": [D(2027, 1, 9)],
                }
            ]
        }
    )
    cal = build_calendar(doc)
    assert 2027 in cal.years and cal.last_year == 2027
    assert not cal.is_working_day(D(2027, 1, 1)) and cal.is_working_day(D(2027, 1, 9))
    assert cal.add_working_days(D(2026, 12, 30), 2) == D(2027, 1, 4)


def _notice(**changes):
    notice = {
        "year": 2027,
        "notice": "synthetic",
        "holidays": [{"name": "元旦", "from": D(2027, 1, 1), "to": D(2027, 1, 1)}],
        "adjusted_working_days": [],
    }
    notice.update(changes)
    return {"notices": [notice]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_notice(year=2026), "already covers 2026"),
        (_notice(adjusted_working_days=[D(2027, 1, 8)]), "not a Saturday or Sunday"),  # a Friday
        (_notice(adjusted_working_days=[D(2028, 1, 8)]), "outside 2027"),
        (_notice(holidays=[{"name": "x", "from": D(2027, 10, 1), "to": D(2027, 10, 20)}]), "implausible"),
        (
            _notice(holidays=[{"name": "x", "from": D(2027, 1, 1), "to": D(2027, 1, 1), "colour": "red"}]),
            "colour",
        ),
        (
            _notice(
                adjusted_working_days=[D(2027, 1, 2)],
                holidays=[{"name": "x", "from": D(2027, 1, 1), "to": D(2027, 1, 3)}],
            ),
            "both",
        ),
        ({"notice": []}, "unknown field `notice`"),
    ],
)
def test_bad_overrides_fail_loudly(data, message) -> None:
    with pytest.raises(PolicyError, match=message) as exc:
        build_calendar(parse_overrides(data))
    assert str(exc.value).startswith("calendar_overrides.toml")


def test_the_alarm_counts_and_logs_the_missing_year(cal) -> None:
    with collecting(ServiceMetrics("permits")) as metrics:
        alarm = CalendarAlarm(cal)
    registry = metrics.registry
    assert registry.get_sample_value("govhub_calendar_last_covered_year") == 2026
    with pytest.raises(d.CalendarNotCovered) as exc:
        cal.add_working_days(D(2036, 12, 28), 10)
    with structlog.testing.capture_logs() as logs:
        alarm.raised(exc.value, "test")
    assert registry.get_sample_value("govhub_calendar_not_covered_total", {"year": "2037"}) == 1
    assert logs[0]["log_level"] == "error" and logs[0]["year"] == 2037


# ---- work permit decision deadline: from the complete-materials date ----


@pytest.fixture
def complete_on(make_work_permit, policy, notice_items):
    """A work permit application whose notice materials are complete on `day`."""

    def make(day: dt.date, **overrides) -> d.WorkPermitApplication:
        app = make_work_permit(today=day, **overrides)
        app = app.supply_materials(notice_items, day, policy).state
        assert app.materials_complete_on == day
        return app

    return make


@pytest.mark.parametrize(
    ("stay_over_90_days", "extend", "due"),
    [
        # complete on Friday 2017-09-29; 调休 Saturday 30 Sep, 国庆/中秋 1–8 Oct
        (True, False, D(2017, 11, 2)),  # 20 working days
        (True, True, D(2017, 11, 16)),  # 20 + 10
        (False, False, D(2017, 10, 12)),  # 5 for a stay of 90 days or less
    ],
)
def test_work_permit_decision_due(complete_on, policy, stay_over_90_days, extend, due) -> None:
    app = complete_on(D(2017, 9, 29), stay_over_90_days=stay_over_90_days)
    if extend:
        app = app.extend_review(D(2017, 10, 20), policy).state
    assert app.decision_due == due


def test_short_stay_review_cannot_be_extended(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29), stay_over_90_days=False)
    with pytest.raises(FailedPrecondition) as exc:
        app.extend_review(D(2017, 10, 10), policy)
    assert exc.value.reason == "EXTENSION_NOT_ALLOWED"


def test_review_is_extended_only_once(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29))
    app = app.extend_review(D(2017, 10, 10), policy).state
    with pytest.raises(FailedPrecondition) as exc:
        app.extend_review(D(2017, 10, 11), policy)
    assert exc.value.reason == "ALREADY_EXTENDED"


def test_clock_restarts_when_materials_are_asked_for_again(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29))
    app = app.request_materials(["photo"], D(2017, 10, 10)).state
    assert app.decision_due is None
    app = app.supply_materials(["photo"], D(2017, 10, 13), policy).state  # Friday
    assert app.materials_complete_on == D(2017, 10, 13)
    assert app.decision_due == D(2017, 11, 10)
