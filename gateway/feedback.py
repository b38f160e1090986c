"""好差评 and the public statistics, both from the gateway's own tables only.

- Feedback: after a case completes, its applicant rates it once (1-5, optional comment); staff reply; a
  rating of 2 or less is flagged for follow-up.
- Statistics: cases by matter and state; the on-time rate (decided steps decided by their statutory
  deadline); the average working days from submission to completion (weekends excluded, and the State
  Council's holidays and adjusted working days where the calendar data covers the year); the
  satisfaction rate (ratings of 4 or 5 among all ratings).
"""

from __future__ import annotations

import datetime as dt
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import saga
from gateway.saga.model import StepState as A
from gateway.store import Case, CaseStep, Feedback
from services.common.clock import CST

POOR = 2  # a rating at or below this is followed up
SATISFIED = 4  # a rating at or above this counts as satisfied
DECIDED = frozenset({A.APPROVED, A.READY, A.DONE, A.REFUSED})
STATS_TTL = 10.0  # seconds a computed answer is served again


@dataclass(frozen=True)
class WorkingCalendar:
    """Weekends off; listed holidays off; listed adjusted (调休) weekend days on."""

    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()
    years: frozenset[int] = field(default_factory=frozenset)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def working_days(self, start: dt.date, end: dt.date) -> int:
        """Working days after `start` up to and including `end` (0 when end <= start)."""
        days = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            days += self.is_working_day(day)
        return days


@lru_cache(maxsize=1)
def working_calendar() -> WorkingCalendar:
    """The holiday data the permits department keeps (``services/permits/calendar.toml``); weekends only
    if it cannot be read."""
    try:
        raw = tomllib.loads(resources.files("services.permits").joinpath("calendar.toml").read_text("utf-8"))
    except (OSError, ModuleNotFoundError, tomllib.TOMLDecodeError):
        return WorkingCalendar()
    holidays: set[dt.date] = set()
    workdays: set[dt.date] = set()
    for notice in raw.get("notices", []):
        for span in notice.get("holidays", []):
            day = span["from"]
            while day <= span["to"]:
                holidays.add(day)
                day += dt.timedelta(days=1)
        workdays.update(notice.get("adjusted_working_days", []))
    return WorkingCalendar(frozenset(holidays), frozenset(workdays), frozenset(raw.get("years", [])))


def _local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(CST).date()


class Stats:
    """GET /api/v1/stats, computed at most every STATS_TTL seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def get(self) -> dict[str, Any]:
        if self._cached and time.monotonic() - self._cached[0] < STATS_TTL:
            return self._cached[1]
        answer = await compute_stats(self._sessions)
        self._cached = (time.monotonic(), answer)
        return answer

    def invalidate(self) -> None:
        self._cached = None


async def compute_stats(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    calendar = working_calendar()
    async with sessions() as session:
        by_matter = (
            await session.execute(
                select(Case.matter, Case.state, func.count()).group_by(Case.matter, Case.state)
            )
        ).all()
        decided = (
            await session.execute(
                select(CaseStep.statutory_deadline, CaseStep.updated_at).where(
                    CaseStep.state.in_(DECIDED), CaseStep.statutory_deadline.is_not(None)
                )
            )
        ).all()
        completed = (
            await session.execute(
                select(Case.submitted_on, Case.completed_at, Case.updated_at).where(
                    Case.state == saga.COMPLETED
                )
            )
        ).all()
        ratings = (
            await session.execute(select(Feedback.rating, func.count()).group_by(Feedback.rating))
        ).all()
    matters: dict[str, dict[str, Any]] = {}
    for matter, state, count in by_matter:
        entry = matters.setdefault(matter, {"total": 0, "by_state": {}})
        entry["by_state"][state] = count
        entry["total"] += count
    on_time = sum(1 for deadline, at in decided if _local_date(at) <= deadline)
    days = [
        calendar.working_days(submitted, _local_date(done or updated))
        for submitted, done, updated in completed
    ]
    rated = sum(count for _, count in ratings)
    satisfied = sum(count for rating, count in ratings if rating >= SATISFIED)
    return {
        "cases": {"total": sum(m["total"] for m in matters.values()), "by_matter": matters},
        "on_time": {
            "decided_steps": len(decided),
            "on_time_steps": on_time,
            "rate": round(on_time / len(decided), 4) if decided else None,
        },
        "working_days": {
            "completed_cases": len(days),
            "average": round(sum(days) / len(days), 2) if days else None,
            "holidays_from_calendar": bool(calendar.years),
        },
        "satisfaction": {
            "ratings": rated,
            "satisfied": satisfied,
            "rate": round(satisfied / rated, 4) if rated else None,
            "average": round(sum(r * c for r, c in ratings) / rated, 2) if rated else None,
        },
    }


def feedback_view(row: Feedback) -> dict[str, Any]:
    return {
        "rating": row.rating,
        "comment": row.comment,
        "flagged": row.flagged,
        "created_at": row.created_at.isoformat(),
        "replies": list(row.replies or []),
    }
