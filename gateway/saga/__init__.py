"""The saga that runs each case across the departments: ``model`` (pure states and transitions) and
``runner`` (the database and the department calls). The case and step states are re-exported here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.saga.model import BLOCKER_REASONS, CASE_FINAL, CaseState, StepState, aggregate_state

if TYPE_CHECKING:
    from gateway.saga.runner import RunnerSettings, SagaRunner

RECEIVED = CaseState.RECEIVED
IN_REVIEW = CaseState.IN_REVIEW
AWAITING_APPLICANT = CaseState.AWAITING_APPLICANT
APPROVED = CaseState.APPROVED
READY_FOR_PICKUP = CaseState.READY_FOR_PICKUP
COMPLETED = CaseState.COMPLETED
REJECTED = CaseState.REJECTED
WITHDRAWING = CaseState.WITHDRAWING
WITHDRAWN = CaseState.WITHDRAWN
NEEDS_ATTENTION = CaseState.NEEDS_ATTENTION


def __getattr__(name: str) -> Any:
    # The runner imports the department adapters, which import the model: loaded on first use so that
    # importing the model alone does not pull the runner in.
    if name in ("SagaRunner", "RunnerSettings"):
        from gateway.saga import runner

        return getattr(runner, name)
    raise AttributeError(name)


__all__ = [
    "APPROVED",
    "AWAITING_APPLICANT",
    "BLOCKER_REASONS",
    "CASE_FINAL",
    "COMPLETED",
    "IN_REVIEW",
    "NEEDS_ATTENTION",
    "READY_FOR_PICKUP",
    "RECEIVED",
    "REJECTED",
    "WITHDRAWING",
    "WITHDRAWN",
    "CaseState",
    "RunnerSettings",
    "SagaRunner",
    "StepState",
    "aggregate_state",
]
