"""The shape of a department adapter: each action of a step (build the request, read the answer, undo
it, follow its events), the back-office decisions on it, and the RPCs it calls.

An RPC is named by its generated request and response classes (``Rpc[Request, Response]``), found in the
department's service descriptor when the module is imported (no such method fails at start, not in a
case); calls go through it, so mypy checks that a builder returns the method's request type and that an
outcome reads the method's response type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message

from gateway.clients import CallContext, Department
from gateway.saga.model import StepState, Undo
from govhub.audit.v1 import audit_pb2
from govhub.common.v1 import common_pb2

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True)
class Rpc(Generic[Req, Resp]):
    """One method of a department's gRPC service, typed by its generated request and response classes."""

    name: str
    descriptor: MethodDescriptor
    request: type[Req]
    response: type[Resp]

    def check(self, request: Message) -> Req:
        """`request`, if it is this method's request type (a builder bug otherwise: TypeError)."""
        if not isinstance(request, self.request):
            raise TypeError(f"{self.name} takes {self.descriptor.input_type.full_name}")
        return request

    async def call(self, department: Department, request: Req, ctx: CallContext) -> Resp:
        """Call this method of `department` (its transport: gRPC, or a test double) with `request`."""
        answer: Resp = await department.call(self.name, self.check(request), ctx)
        return answer


class Service:
    """A department's gRPC service, as described by its generated file descriptor."""

    def __init__(self, file: FileDescriptor, name: str) -> None:
        self.described = file.services_by_name[name]

    def rpc(self, request: type[Req], response: type[Resp]) -> Rpc[Req, Resp]:
        """The one method taking `request` and answering `response` (else ValueError at import)."""
        wanted = (request.DESCRIPTOR, response.DESCRIPTOR)
        found = [m for m in self.described.methods if (m.input_type, m.output_type) == wanted]
        if len(found) != 1:
            raise ValueError(f"{self.described.name}: {len(found)} methods take {request.__name__}")
        return Rpc(found[0].name, found[0], request, response)


# Every department serves its access log (who looked at a person's records) on the same AuditService.
ACCESS_LOG = Service(audit_pb2.DESCRIPTOR, "AuditService").rpc(
    audit_pb2.ListAccessEntriesRequest, audit_pb2.ListAccessEntriesResponse
)


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
class FollowUp(Generic[Req]):
    """A later back-office decision on an approved record (the card produced, ready for pickup; the permit
    issued), open while the step's department state is one of ``after``."""

    rpc: Rpc[Req, Any]
    build: Callable[[str, str], Req]  # (resource id, request id) -> request
    after: frozenset[str]  # department states (the step's department_state) it may follow
    summary: str  # what the decision records, for the API's document


@dataclass(frozen=True)
class Decision:
    """A back-office approval or rejection of a step's record by the department's staff, and the decisions
    that follow an approval, by the word that names them in the back office's route."""

    approve_rpc: Rpc[Any, Any]
    approve: Callable[[str, str], Any]  # (resource id, request id) -> request
    reject_rpc: Rpc[Any, Any]
    # (resource id, request id, reasons, their machine codes in the same order, may be empty) -> request
    reject: Callable[[str, str, list[str], list[str]], Message]
    state_of: Callable[[Any], str]  # the department's state in the answer
    follow_ups: Mapping[str, FollowUp[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Action(Generic[Req, Resp]):
    name: str
    department: str
    rpc: Rpc[Req, Resp]
    build: Callable[[StepInput], Req]
    outcome: Callable[[Resp], Outcome]
    reads: frozenset[str] = frozenset()  # the submission fields `build` reads
    compensate_rpc: Rpc[Any, Any] | None = None
    # (resource_id, request_id, reason, the step's result) -> the undo request
    compensate_build: Callable[[str, str, str, dict[str, Any]], Any] | None = None
    # department event type -> (new step state, department sub-status)
    events: Mapping[str, tuple[StepState, str]] = field(default_factory=dict)
    # what a department event adds to the step's result (fees fixed, numbers issued, pickup date and
    # place), from the event's data: (event type, data) -> fields
    event_result: Callable[[str, Mapping[str, Any]], dict[str, Any]] | None = None
    # the result's fields shown on the case to those entitled to its personal view (the applicant, staff)
    shown: tuple[str, ...] = ()
    # refusal reasons that mean "nothing to do here": the step is DONE, the case goes on
    nothing_to_do: frozenset[str] = frozenset()
    # refusal reason -> the submitted field (one of `reads`) it is about, named in the refusal's answer
    refused_fields: Mapping[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    # handed over at the counter by a department call (an ID card: IssueCard) rather than recorded
    handover: Callable[[str, str, bool], Message] | None = None  # (resource, request id, old surrendered)
    handover_rpc: Rpc[Any, Any] | None = None
    # the furthest step state from which the department can still undo its record with compensate_rpc
    undo_until: StepState = StepState.DONE
    # actions of later steps that end the undo once their department holds them (a move-in uses the
    # move-out's migration certificate: residence then refuses CancelMoveOut)
    undo_ended_by: frozenset[str] = frozenset()
    # whether the case's failure (a refusal, a department's cancellation, a withdrawal) undoes the record:
    # True for a step that exists only for the case's sake; False for a record that stands on its own
    # (where a foreigner stays), which then stays in force and is shown so on the case
    with_case: bool = True

    @property
    def compensable(self) -> bool:
        return self.compensate_rpc is not None

    @property
    def undo(self) -> Undo:
        return Undo(self.compensable, self.undo_until, with_case=self.with_case)


def record_request(rpc: Rpc[Req, Any]) -> Callable[[str, str], Req]:
    """The builder of a call that names only the department's record (approve, issue, mark produced):
    (resource id, request id) -> request."""
    return lambda resource_id, request_id: rpc.request(request_id=request_id, id=resource_id)


def cancel_request(rpc: Rpc[Req, Any]) -> Callable[[str, str, str, dict[str, Any]], Req]:
    """The builder of an undo that names the record and why: (resource id, request id, reason, the
    step's result) -> request."""
    return lambda resource_id, request_id, reason, _result: rpc.request(
        request_id=request_id, id=resource_id, reason=reason
    )


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
