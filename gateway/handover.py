"""Pickup at the counter: every certificate of a case is handed over, then the case completes.

For an ID card step the handover is identity's ``IssueCard`` (the old card surrendered or not); for a
permits step the department has already issued the permit (READY) and the counter records that it was
handed over. Either way the step moves READY -> DONE here, with the case's one status recomputed by the
saga's own ``aggregate_state``, in one transaction; then the runner is woken."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import actions as A
from gateway import saga
from gateway.store import Case, CaseStep
from govhub.identity.v1 import identity_pb2

CARD_ACTIONS = frozenset(name for name, action in A.ACTIONS.items() if action.events is A.CARD_EVENTS)


def issue_card_request(step: CaseStep, request_id: str, old_card_surrendered: bool) -> Any:
    return identity_pb2.IssueCardRequest(
        request_id=request_id, id=step.resource_id or "", old_card_surrendered=old_card_surrendered
    )


async def mark_handed_over(
    sessions: async_sessionmaker[AsyncSession],
    now: dt.datetime,
    case_id: str,
    step_ids: set[str],
    by: str,
    results: dict[str, dict[str, Any]],
) -> Case:
    """READY -> DONE for the given steps of one case (others untouched), in one transaction; returns the
    case with its new state (COMPLETED once every step is done)."""
    async with sessions() as session:
        case = await session.get_one(Case, case_id)
        steps = list(
            await session.scalars(
                select(CaseStep).where(CaseStep.case_id == case_id).order_by(CaseStep.position)
            )
        )
        for step in steps:
            if step.id not in step_ids or step.state != A.READY:
                continue
            step.state = A.DONE
            step.department_state = "ISSUED" if step.action in CARD_ACTIONS else "HANDED_OVER"
            step.result = {
                **step.result,
                **results.get(step.id, {}),
                "handed_over": {"by": by, "at": now.isoformat()},
            }
            step.version += 1
        state = saga.aggregate_state(case.outcome, steps)
        case.state = state
        case.updated_at = now
        case.version += 1
        if state == saga.COMPLETED and case.completed_at is None:
            case.completed_at = now
        await session.commit()
    return case
