"""好差评 and the public statistics, both from the gateway's own tables only.

- Feedback: after a case completes, its applicant rates it once (1-5, optional comment); staff reply; a
  rating of 2 or less is flagged for follow-up.
- Statistics: cases by matter and state; the on-time rate (decided steps decided by their statutory
  deadline); the average working days from submission to completion, counted by the permits department,
  which keeps the working-day calendar (the State Council's holidays and adjusted working days), through
  its ``CountWorkingDays`` RPC; the satisfaction rate (ratings of 4 or 5 among all ratings). When permits
  cannot count (down, or a year its calendar does not cover yet) the average is null and
  ``working_days.unavailable`` says why: never a figure counted by another rule.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import saga
from gateway.clients import CallContext, Department, DepartmentError, Refused
from gateway.saga.model import StepState as A
from gateway.store import Case, CaseStep, Feedback
from govhub.permits.v1 import permits_pb2
from services.common.clock import CST
from services.common.protoconv import date_to_proto

log = structlog.get_logger("govhub.gateway.stats")

POOR = 2  # a rating at or below this is followed up
SATISFIED = 4  # a rating at or above this counts as satisfied
DECIDED = frozenset({A.APPROVED, A.READY, A.DONE, A.REFUSED})
STATS_TTL = 10.0  # seconds a computed answer is served again
SPANS_PER_CALL = 1000  # CountWorkingDays takes at most 1000 spans
CALENDAR_TIMEOUT = 5.0  # seconds for one CountWorkingDays call


async def count_working_days(
    permits: Department | None, spans: list[tuple[dt.date, dt.date]]
) -> tuple[dict[tuple[dt.date, dt.date], int], str | None]:
    """Working days of each distinct span, asked of permits in batches; or ({}, why not)."""
    if permits is None:
        return {}, "the permits department is not configured"
    distinct = sorted(set(spans))
    counts: dict[tuple[dt.date, dt.date], int] = {}
    for first in range(0, len(distinct), SPANS_PER_CALL):
        batch = distinct[first : first + SPANS_PER_CALL]
        request = permits_pb2.CountWorkingDaysRequest(
            spans=[
                permits_pb2.DateSpan(start_date=date_to_proto(start), end_date=date_to_proto(end))
                for start, end in batch
            ]
        )
        ctx = CallContext(request_id=str(uuid.uuid4()), case_no="", timeout=CALENDAR_TIMEOUT)
        try:
            reply = await permits.call("CountWorkingDays", request, ctx)
        except Refused as exc:
            log.error("working days not counted", reason=exc.reason, error=exc.message)
            return {}, exc.message
        except DepartmentError as exc:
            log.warning("working days not counted", error=exc.message)
            return {}, "the permits department did not answer"
        counts.update(zip(batch, reply.working_days, strict=True))
    return counts, None


def _local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(CST).date()


class Stats:
    """GET /api/v1/stats, computed at most every STATS_TTL seconds."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], permits: Callable[[], Department | None]
    ) -> None:
        self._sessions = sessions
        self._permits = permits
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def get(self) -> dict[str, Any]:
        if self._cached and time.monotonic() - self._cached[0] < STATS_TTL:
            return self._cached[1]
        answer = await compute_stats(self._sessions, self._permits())
        self._cached = (time.monotonic(), answer)
        return answer

    def invalidate(self) -> None:
        self._cached = None


async def compute_stats(
    sessions: async_sessionmaker[AsyncSession], permits: Department | None
) -> dict[str, Any]:
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
    spans = [(submitted, _local_date(done or updated)) for submitted, done, updated in completed]
    counts, unavailable = await count_working_days(permits, spans) if spans else ({}, None)
    days = [counts[span] for span in spans] if unavailable is None else []
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
            "completed_cases": len(spans),
            "average": round(sum(days) / len(days), 2) if days else None,
            **({"unavailable": unavailable} if unavailable else {}),
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
