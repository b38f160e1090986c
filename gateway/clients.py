"""The departments as the gateway sees them: small async interfaces with gRPC implementations.

Every call carries a deadline, the step's request_id and the case number (as metadata, for the
department's logs). gRPC failures become the outcomes the saga runner understands: ``Refused`` (a
business answer: never retried), ``NotAllowed`` (PERMISSION_DENIED / UNAUTHENTICATED: the operator's
configuration is at fault, never the applicant's), ``Invalid`` (the department found a field at fault:
never retried), ``Unavailable`` (down, overloaded or too slow: retried with backoff) and ``Broken``
(INTERNAL, UNKNOWN and the like: a fault of a program, which retrying does not mend).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.trace import TracerProvider

from govhub.audit.v1 import audit_pb2_grpc
from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from govhub.permits.v1 import permits_pb2, permits_pb2_grpc
from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.settings import TlsFiles
from services.common.tls import aio_channel

DEPARTMENTS = ("identity", "residence", "permits")
# Transport failures: the only ones worth repeating the call for.
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
BROKEN = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
NOT_ALLOWED = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})


class DepartmentError(Exception):
    def __init__(self, department: str, message: str) -> None:
        super().__init__(message)
        self.department = department
        self.message = message


class Refused(DepartmentError):
    """A business refusal: FAILED_PRECONDITION, ALREADY_EXISTS or NOT_FOUND, with a stable reason."""

    def __init__(self, department: str, reason: str, message: str, code: str) -> None:
        super().__init__(department, message)
        self.reason = reason
        self.code = code


class Invalid(DepartmentError):
    """INVALID_ARGUMENT with the department's field violations as (field, reason, description)."""

    def __init__(self, department: str, message: str, violations: list[tuple[str, str, str]]) -> None:
        super().__init__(department, message)
        self.violations = violations


class NotAllowed(Refused):
    """PERMISSION_DENIED or UNAUTHENTICATED: the department refused the gateway itself (a grant or a
    certificate missing) — an operator's fault, never a refusal of the application."""


class Unavailable(DepartmentError):
    """The department did not answer in time or is down; worth retrying."""


class Broken(Unavailable):
    """INTERNAL, UNKNOWN, UNIMPLEMENTED...: a program fault at either end. For a person waiting at a
    route it is a 503 like any unavailability; the saga does not retry it (staff must look)."""


def translate(department: str, err: grpc.aio.AioRpcError) -> DepartmentError:
    code = err.code()
    if code in RETRYABLE:
        return Unavailable(department, f"{department} {code.name.lower()}")
    if code in BROKEN:
        return Broken(department, f"{department} {code.name.lower()}")
    status = None
    # grpc-stubs declares aio metadata as objects; grpc.aio hands over (key, value) pairs
    trailing = cast("Iterable[tuple[str, Any]]", err.trailing_metadata() or ())
    for key, value in trailing:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
    reason = code.name
    violations: list[tuple[str, str, str]] = []
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason or reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [(v.field, v.reason or "INVALID", v.description) for v in bad.field_violations]
    message = err.details() or code.name
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return Invalid(department, message, violations)
    if code in NOT_ALLOWED:
        return NotAllowed(department, reason, message, code.name)
    return Refused(department, reason, message, code.name)


@dataclass(frozen=True)
class CallContext:
    """What every department call carries."""

    request_id: str
    case_no: str
    timeout: float


def _metadata(ctx: CallContext) -> tuple[tuple[str, str], ...]:
    return (("x-govhub-case", ctx.case_no), ("x-request-id", ctx.request_id))


def to_dict(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


class Department(Protocol):
    name: str

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any: ...

    def watch(self, after_sequence: int) -> AsyncIterator[Any]: ...

    async def close(self) -> None: ...


class GrpcDepartment:
    """One department over one grpc.aio channel (created inside the running loop)."""

    def __init__(
        self,
        name: str,
        target: str,
        stub_type: Any,
        watch_request: Any,
        tracer_provider: TracerProvider | None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.name = name
        interceptors = (
            aio_client_interceptors(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
            if tracer_provider
            else None
        )
        # Mutual TLS with the gateway's client certificate when `tls` is given (GOVHUB_TLS=on).
        self.channel = aio_channel(
            target,
            tls,
            interceptors=interceptors,
            options=[("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)],
        )
        self.stub = stub_type(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self._watch_request = watch_request

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any:
        try:
            return await getattr(self.stub, method)(
                request, timeout=ctx.timeout, metadata=_metadata(ctx), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as err:
            raise translate(self.name, err) from None

    async def watch(self, after_sequence: int) -> AsyncIterator[Any]:
        """Domain events as common Event messages; raises Unavailable when the stream breaks."""
        try:
            async for item in self.stub.WatchEvents(self._watch_request(after_sequence=after_sequence)):
                yield item.event
        except grpc.aio.AioRpcError as err:
            raise translate(self.name, err) from None

    async def ready(self, timeout: float) -> bool:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        await self.channel.close(None)


class DepartmentHealth:
    """Each department's last health check, refreshed in the background: reported on /metrics and to
    staff (GET /api/v1/status), never a reason for the gateway itself to be unready — with one
    department down the window still serves the others' matters and every progress lookup."""

    def __init__(self, departments: Mapping[str, Department], timeout: float, interval: float = 5.0) -> None:
        self._departments = departments
        self._timeout = timeout
        self._interval = interval
        self.status: dict[str, dict[str, Any]] = {name: {"status": "unknown"} for name in departments}
        self.listeners: list[Callable[[str, bool], None]] = []  # (department, up) after each check
        self.on_recovery: list[Callable[[str], None]] = []  # a department answers again after being down

    async def check(self, now: Callable[[], dt.datetime]) -> None:
        names = list(self._departments)
        checks = await asyncio.gather(
            *(_ready(self._departments[name], self._timeout) for name in names), return_exceptions=True
        )
        for name, ok in zip(names, checks, strict=True):
            up = ok is True
            before = self.status.get(name, {})
            if up and before.get("status") == "down":
                for recovered in self.on_recovery:
                    recovered(name)
            changed_at = before.get("since") if before.get("status") == ("up" if up else "down") else None
            self.status[name] = {"status": "up" if up else "down", "since": changed_at or now().isoformat()}
            for listener in self.listeners:
                listener(name, up)

    async def run_forever(self, now: Callable[[], dt.datetime]) -> None:
        while True:
            await self.check(now)
            await asyncio.sleep(self._interval)


async def _ready(department: Department, timeout: float) -> bool:
    ready = getattr(department, "ready", None)
    if ready is None:
        return True
    return bool(await ready(timeout))


def grpc_departments(
    targets: dict[str, str], tracer_provider: TracerProvider | None = None, tls: TlsFiles | None = None
) -> dict[str, GrpcDepartment]:
    """The three departments; `tls` is ``GatewaySettings.security.client_tls`` (None: plaintext)."""
    return {
        "identity": GrpcDepartment(
            "identity",
            targets["identity"],
            identity_pb2_grpc.IdentityServiceStub,
            identity_pb2.WatchEventsRequest,
            tracer_provider,
            tls,
        ),
        "residence": GrpcDepartment(
            "residence",
            targets["residence"],
            residence_pb2_grpc.ResidenceServiceStub,
            residence_pb2.WatchEventsRequest,
            tracer_provider,
            tls,
        ),
        "permits": GrpcDepartment(
            "permits",
            targets["permits"],
            permits_pb2_grpc.PermitsServiceStub,
            permits_pb2.WatchEventsRequest,
            tracer_provider,
            tls,
        ),
    }


__all__: Sequence[str] = [
    "DEPARTMENTS",
    "Broken",
    "CallContext",
    "Department",
    "DepartmentError",
    "DepartmentHealth",
    "GrpcDepartment",
    "Invalid",
    "NotAllowed",
    "Refused",
    "Unavailable",
    "grpc_departments",
    "to_dict",
]
