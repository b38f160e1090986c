"""What each step's department action sends and how the department's answers move the step.

An action knows its department, how to build the request from the case's data, what the answer
means (the department's resource id, sub-status and statutory deadline), how to undo it
(compensation), and which department events move the step on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.catalogue import get_value
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2

# Step states, in the order a step moves forward.
PENDING = "PENDING"
RUNNING = "RUNNING"
ACCEPTED = "ACCEPTED"
APPROVED = "APPROVED"
READY = "READY"
DONE = "DONE"
REFUSED = "REFUSED"
NEEDS_ATTENTION = "NEEDS_ATTENTION"
COMPENSATING = "COMPENSATING"
COMPENSATED = "COMPENSATED"
CANCELLED = "CANCELLED"
SKIPPED = "SKIPPED"  # an optional step the applicant did not ask for

SATISFIED = frozenset({APPROVED, READY, DONE, SKIPPED})  # a dependent step may start
HELD_BY_DEPARTMENT = frozenset({ACCEPTED, APPROVED, READY, DONE})  # undone by compensation, where it can be
FINAL = frozenset({DONE, REFUSED, COMPENSATED, CANCELLED, SKIPPED})
RANK = {PENDING: 0, RUNNING: 1, ACCEPTED: 2, APPROVED: 3, READY: 4, DONE: 5}


@dataclass(frozen=True)
class StepInput:
    """What a step's request is built from."""

    data: dict[str, Any]  # the validated submission
    materials: list[common_pb2.MaterialReference]  # references to this step's materials only
    results: dict[str, dict[str, Any]]  # earlier steps' results, by step key
    request_id: str


@dataclass(frozen=True)
class Outcome:
    resource_id: str
    state: str  # ACCEPTED, APPROVED, READY or DONE
    department_state: str
    statutory_deadline: dt.date | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    name: str
    department: str
    method: str
    build: Callable[[StepInput], Any]
    outcome: Callable[[Any], Outcome]
    compensate_method: str | None = None
    compensate_build: Callable[[str, str, str], Any] | None = None  # (resource_id, request_id, reason)
    # department event type -> (new step state, department sub-status)
    events: dict[str, tuple[str, str]] = field(default_factory=dict)


def _date(msg: common_pb2.Date) -> dt.date | None:
    if not msg.year:
        return None
    return dt.date(msg.year, msg.month, msg.day)


def _proto_date(value: str) -> common_pb2.Date:
    d = dt.date.fromisoformat(value)
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


_CARD_STATE = identity_pb2.CardApplicationState


def _card_outcome(response: Any) -> Outcome:
    app = response.card_application
    state_name = _CARD_STATE.Name(app.state).removeprefix("CARD_APPLICATION_STATE_")
    step_state = {
        "APPROVED": APPROVED,
        "CARD_PRODUCED": APPROVED,
        "READY_FOR_PICKUP": READY,
        "ISSUED": DONE,
    }.get(state_name, ACCEPTED)
    return Outcome(
        resource_id=app.id,
        state=step_state,
        department_state=state_name,
        statutory_deadline=_date(app.statutory_deadline),
        result={"fee_fen": app.fee_fen, "required_materials": list(app.required_materials)},
    )


def _card_renewal_request(step: StepInput) -> Any:
    data = step.data
    return identity_pb2.CreateCardApplicationRequest(
        request_id=step.request_id,
        id_number=get_value(data, "applicant.id_number"),
        name=get_value(data, "applicant.name"),
        kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=identity_pb2.RenewalReason.Value(
            f"RENEWAL_REASON_{get_value(data, 'renewal_reason')}"
        ),
        accepting_region_code=get_value(data, "accepting_region_code"),
        residence_permit=identity_pb2.ResidencePermit(
            number=get_value(data, "residence_permit.number"),
            valid_until=_proto_date(get_value(data, "residence_permit.valid_until")),
        ),
        fee_reduction=identity_pb2.FeeReduction.Value(
            f"FEE_REDUCTION_{get_value(data, 'fee_reduction') or 'NONE'}"
        ),
    )


def _cancel_card(resource_id: str, request_id: str, reason: str) -> Any:
    return identity_pb2.CancelCardApplicationRequest(request_id=request_id, id=resource_id, reason=reason)


CARD_EVENTS = {
    "CardApplicationApproved": (APPROVED, "APPROVED"),
    "CardApplicationRejected": (REFUSED, "REJECTED"),
    "CardProduced": (APPROVED, "CARD_PRODUCED"),
    "CardReadyForPickup": (READY, "READY_FOR_PICKUP"),
    "CardIssued": (DONE, "ISSUED"),
    "CardApplicationCancelled": (CANCELLED, "CANCELLED"),
}

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action(
            name="identity.card_renewal",
            department="identity",
            method="CreateCardApplication",
            build=_card_renewal_request,
            outcome=_card_outcome,
            compensate_method="CancelCardApplication",
            compensate_build=_cancel_card,
            events=CARD_EVENTS,
        ),
    ]
}


def known_actions() -> dict[str, str]:
    return {name: action.department for name, action in ACTIONS.items()}
