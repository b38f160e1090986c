"""The working-day calendar (holidays and 调休 from calendar.toml) and the work permit decision deadline."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.errors import FailedPrecondition
from services.permits import domain as d

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


@pytest.mark.parametrize("day", [D(2015, 12, 31), D(2019, 1, 2)])
def test_days_outside_the_calendar_fail_loudly(cal, day) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        cal.is_working_day(day)
    assert exc.value.reason == "CALENDAR_NOT_COVERED"


def test_a_deadline_running_out_of_the_calendar_fails(cal) -> None:
    with pytest.raises(FailedPrecondition):
        cal.add_working_days(D(2018, 12, 20), 20)


# ---- work permit decision deadline: from the complete-materials date ----


@pytest.fixture
def complete_on(make_work_permit, policy, notice_items):
    """A work permit application whose notice materials are complete on `day`."""

    def make(day: dt.date, **overrides) -> d.WorkPermitApplication:
        app = make_work_permit(today=day, **overrides)
        app.supply_materials(notice_items, day, policy)
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
        assert app.extend_review(D(2017, 10, 20), policy) == due
    assert app.decision_due == due


def test_short_stay_review_cannot_be_extended(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29), stay_over_90_days=False)
    with pytest.raises(FailedPrecondition) as exc:
        app.extend_review(D(2017, 10, 10), policy)
    assert exc.value.reason == "EXTENSION_NOT_ALLOWED"


def test_review_is_extended_only_once(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29))
    app.extend_review(D(2017, 10, 10), policy)
    with pytest.raises(FailedPrecondition) as exc:
        app.extend_review(D(2017, 10, 11), policy)
    assert exc.value.reason == "ALREADY_EXTENDED"


def test_clock_restarts_when_materials_are_asked_for_again(complete_on, policy) -> None:
    app = complete_on(D(2017, 9, 29))
    app.request_materials(["photo"], D(2017, 10, 10))
    assert app.decision_due is None
    app.supply_materials(["photo"], D(2017, 10, 13), policy)  # Friday
    assert app.materials_complete_on == D(2017, 10, 13)
    assert app.decision_due == D(2017, 11, 10)
