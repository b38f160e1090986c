"""The departments as the gateway sees them: small async interfaces with gRPC implementations.

Every call carries a deadline, the step's request_id and the case number (as metadata, for the
department's logs). gRPC failures become one of three outcomes the saga runner understands:
``Refused`` (a business answer: never retried), ``Invalid`` (the department found a field at fault:
never retried) and ``Unavailable`` (down, overloaded or too slow: retried with backoff).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


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


class Unavailable(DepartmentError):
    """The department did not answer in time or is down; worth retrying."""


def translate(department: str, err: grpc.aio.AioRpcError) -> DepartmentError:
    code = err.code()
    if code in RETRYABLE:
        return Unavailable(department, f"{department} {code.name.lower()}")
    status = None
    for key, value in err.trailing_metadata() or ():
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
        interceptors = aio_client_interceptors(tracer_provider=tracer_provider) if tracer_provider else None
        # Mutual TLS with the gateway's client certificate when `tls` is given (GOVHUB_TLS=on).
        self.channel = aio_channel(
            target,
            tls,
            interceptors=interceptors,
            options=[("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)],
        )
        self.stub = stub_type(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
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
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()


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
    "CallContext",
    "Department",
    "DepartmentError",
    "GrpcDepartment",
    "Invalid",
    "Refused",
    "Unavailable",
    "grpc_departments",
    "to_dict",
]
