"""The shape of a department adapter: each action of a step (build the request, read the answer, undo
it, follow its events), the back-office decisions on it, and the RPCs it calls, checked against the
department's generated service descriptor when the module is imported (a misspelt method fails at
start, not in a case)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message

from gateway.saga.model import StepState, Undo
from govhub.common.v1 import common_pb2


@dataclass(frozen=True)
class Rpc:
    """One method of a department's gRPC service, with its request and response types."""

    name: str
    descriptor: MethodDescriptor

    def check(self, request: Message) -> Message:
        """`request`, if it is this method's request type (a builder bug otherwise: TypeError)."""
        if request.DESCRIPTOR is not self.descriptor.input_type:
            raise TypeError(f"{self.name} takes {self.descriptor.input_type.full_name}")
        return request


def service(file: FileDescriptor, name: str) -> Callable[[str], Rpc]:
    described = file.services_by_name[name]

    def rpc(method: str) -> Rpc:
        return Rpc(method, described.methods_by_name[method])

    return rpc


class UndeclaredField(KeyError):
    pass


@dataclass(frozen=True)
class StepInput:
    """What a step's request is built from. `get` reads a field of the submission, and only one the
    action declared (``Action.reads``): the catalogue checks those against each matter at start."""

    data: dict[str, Any]  # the validated submission
    reads: frozenset[str]
    materials: list[common_pb2.MaterialReference]  # references to this step's materials only
    results: dict[str, dict[str, Any]]  # earlier steps' results, by step key
    request_id: str
    # earlier steps' department resources, by step key (known even when a create call's answer was
    # lost and the step was bound by the department's creation event)
    resources: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        if path not in self.reads:
            raise UndeclaredField(path)
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


# Refusals that are the operators' fault, not the applicant's (a department's calendar not covering the
# year): the step waits for an operator (NEEDS_ATTENTION, the case delayed), never a rejection.
OPERATOR_REFUSALS = frozenset({"CALENDAR_NOT_COVERED"})


@dataclass(frozen=True)
class Outcome:
    resource_id: str
    state: StepState  # ACCEPTED, APPROVED, READY or DONE
    department_state: str
    statutory_deadline: dt.date | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowUp:
    """A later back-office decision on an approved record (the card produced, ready for pickup; the permit
    issued), open while the step's department state is one of ``after``."""

    rpc: Rpc
    build: Callable[[str, str], Message]  # (resource id, request id) -> request
    after: frozenset[str]  # department states (the step's department_state) it may follow
    summary: str  # what the decision records, for the API's document


@dataclass(frozen=True)
class Decision:
    """A back-office approval or rejection of a step's record by the department's staff, and the decisions
    that follow an approval, by the word that names them in the back office's route."""

    approve_rpc: Rpc
    approve: Callable[[str, str], Message]  # (resource id, request id) -> request
    reject_rpc: Rpc
    # (resource id, request id, reasons, their machine codes in the same order, may be empty) -> request
    reject: Callable[[str, str, list[str], list[str]], Message]
    state_of: Callable[[Any], str]  # the department's state in the answer
    follow_ups: Mapping[str, FollowUp] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    name: str
    department: str
    rpc: Rpc
    build: Callable[[StepInput], Message]
    outcome: Callable[[Any], Outcome]
    reads: frozenset[str] = frozenset()  # the submission fields `build` reads
    compensate_rpc: Rpc | None = None
    # (resource_id, request_id, reason, the step's result) -> the undo request
    compensate_build: Callable[[str, str, str, dict[str, Any]], Message] | None = None
    # department event type -> (new step state, department sub-status)
    events: Mapping[str, tuple[StepState, str]] = field(default_factory=dict)
    # what a department event adds to the step's result (fees fixed, numbers issued, pickup date and
    # place), from the event's data: (event type, data) -> fields
    event_result: Callable[[str, Mapping[str, Any]], dict[str, Any]] | None = None
    # the result's fields shown on the case to those entitled to its personal view (the applicant, staff)
    shown: tuple[str, ...] = ()
    # refusal reasons that mean "nothing to do here": the step is DONE, the case goes on
    nothing_to_do: frozenset[str] = frozenset()
    decision: Decision | None = None
    # handed over at the counter by a department call (an ID card: IssueCard) rather than recorded
    handover: Callable[[str, str, bool], Message] | None = None  # (resource, request id, old surrendered)
    handover_rpc: Rpc | None = None
    # the furthest step state from which the department can still undo its record with compensate_rpc
    undo_until: StepState = StepState.DONE
    # actions of later steps that end the undo once their department holds them (a move-in uses the
    # move-out's migration certificate: residence then refuses CancelMoveOut)
    undo_ended_by: frozenset[str] = frozenset()

    @property
    def compensable(self) -> bool:
        return self.compensate_rpc is not None

    @property
    def undo(self) -> Undo:
        return Undo(self.compensable, self.undo_until)


def whole(value: Any) -> int | None:
    """A whole number from an event's data (a protobuf Struct carries numbers as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value)


def date_of(msg: common_pb2.Date) -> dt.date | None:
    if not msg.year:
        return None
    return dt.date(msg.year, msg.month, msg.day)


def proto_date(value: str) -> common_pb2.Date:
    d = dt.date.fromisoformat(value)
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)
