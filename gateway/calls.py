"""Department calls made on a person's behalf (citizen self-service, back-office decisions, pickup): the
caller's identity travels as gRPC metadata (``x-govhub-actor``, ``x-govhub-actor-role``) beside the usual
case number and request id, with the same deadline as every other call."""

from __future__ import annotations

import uuid
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from gateway.auth import Principal
from gateway.clients import CallContext, Department, GrpcDepartment, translate
from gateway.departments.base import Rpc

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

try:  # the access-control work defines the keys once; fall back to the same names until it lands
    from services.common.metadata import ACTOR, ACTOR_ROLE, MAX_LENGTH
except ImportError:  # pragma: no cover
    ACTOR, ACTOR_ROLE, MAX_LENGTH = "x-govhub-actor", "x-govhub-actor-role", 200


def actor_metadata(who: Principal) -> tuple[tuple[str, str], ...]:
    return ((ACTOR, who.subject[:MAX_LENGTH]), (ACTOR_ROLE, who.actor_role))


def derived_request_id(request_id: str, purpose: str) -> str:
    """A fixed request id for a follow-up call on a step (approve, reject, issue): repeating the same
    follow-up returns the department's first answer."""
    return str(uuid.uuid5(uuid.UUID(request_id), purpose))


async def call_as(
    department: Department, rpc: Rpc[Req, Resp], request: Req, ctx: CallContext, who: Principal
) -> Resp:
    """Call `rpc` with the actor's identity; raises the clients' Refused / Invalid / Unavailable."""
    answer: Resp
    rpc.check(request)
    if isinstance(department, GrpcDepartment):
        metadata = (("x-govhub-case", ctx.case_no), ("x-request-id", ctx.request_id), *actor_metadata(who))
        audit = rpc.descriptor.containing_service.name == "AuditService"
        stub = department.audit if audit else department.stub
        try:
            answer = await getattr(stub, rpc.name)(
                request, timeout=ctx.timeout, metadata=metadata, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as err:
            raise translate(department.name, err) from None
        return answer
    forwarding = getattr(department, "call_as", None)
    if forwarding is not None:  # test doubles record the metadata
        answer = await forwarding(rpc.name, request, ctx, dict(actor_metadata(who)))
        return answer
    return await rpc.call(department, request, ctx)
