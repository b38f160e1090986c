"""Department calls made on a person's behalf (citizen self-service, back-office decisions, pickup): the
caller's identity travels as gRPC metadata (``x-govhub-actor``, ``x-govhub-actor-role``) beside the usual
case number and request id, with the same deadline as every other call."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from gateway.auth import Principal
from gateway.clients import CallContext, Department, GrpcDepartment, translate

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


async def call_as(department: Department, method: str, request: Any, ctx: CallContext, who: Principal) -> Any:
    """Call `method` with the actor's identity; raises the clients' Refused / Invalid / Unavailable."""
    if isinstance(department, GrpcDepartment):
        metadata = (("x-govhub-case", ctx.case_no), ("x-request-id", ctx.request_id), *actor_metadata(who))
        stub = department.audit if method == "ListAccessEntries" else department.stub
        try:
            return await getattr(stub, method)(
                request, timeout=ctx.timeout, metadata=metadata, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as err:
            raise translate(department.name, err) from None
    forwarding = getattr(department, "call_as", None)
    if forwarding is not None:  # test doubles record the metadata
        return await forwarding(method, request, ctx, dict(actor_metadata(who)))
    return await department.call(method, request, ctx)
