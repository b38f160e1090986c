"""The one wrapper every server interceptor of govhub uses (metrics, log context and errors, access).

An interceptor says what happens around a call as an async context manager, ``around(request, context)``,
that yields a ``Call``; ``wrap`` turns it into a method handler for unary and server-streaming methods
alike (the only kinds govhub has), so that no interceptor repeats the handler plumbing. The wrapped call
sets ``Call.response`` (the unary answer; None for a stream) and ``Call.items`` (messages streamed) before
the context manager exits; an exception from the handler is raised inside it.

``wrap(..., decode=True)`` (the metrics interceptor, the outermost of govhub's own) also takes over
decoding the request from gRPC, inside ``around``: bytes that are not the request message (or hold a
string that is not UTF-8) end the call with INVALID_ARGUMENT and a ``google.rpc.BadRequest`` detail,
counted like any other status, instead of the UNKNOWN that grpcio answers for a failed deserializer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = structlog.get_logger("govhub.grpc")

if TYPE_CHECKING:
    # The stubs make grpc's interceptor generic (request, response); at run time it is a plain class.
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    """End the call with a google.rpc.Status (its details in ``grpc-status-details-bin``)."""
    converted = rpc_status.to_status(status)
    await context.abort(converted.code, converted.details, converted.trailing_metadata)


def bad_request(message: str, violations: list[tuple[str, str, str]]) -> status_pb2.Status:
    """INVALID_ARGUMENT with a BadRequest detail of (field, reason, description) violations."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, reason=r, description=d or r)
                for f, r, d in violations
            ]
        )
    )
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])


async def _decoded(raw: Any, deserializer: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    if deserializer is None or not isinstance(raw, bytes):
        return raw
    try:
        return deserializer(raw)
    except Exception as exc:  # DecodeError, or anything a parser raises on hostile bytes
        log.info("undecodable request", error=type(exc).__name__)
        await abort_with(
            context,
            bad_request(
                "the request is not a valid message of this method",
                [
                    (
                        "request",
                        "UNDECODABLE",
                        "the bytes do not decode as the request message (or a string field is not UTF-8)",
                    )
                ],
            ),
        )


@dataclass
class Call:
    """What an interceptor's ``around`` learns of the call it wraps."""

    request: Any
    streaming: bool
    response: Any = None
    items: int = 0
    on_item: Callable[[Any], None] | None = None  # called with each streamed message


Around = Callable[[Call, grpc.aio.ServicerContext[Any, Any]], contextlib.AbstractAsyncContextManager[Call]]


def wrap(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
    around: Around,
    *,
    decode: bool = False,
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """`handler` with `around` around each call; with `decode`, the request is decoded inside `around`
    (see the module notes). Client-streaming handlers are returned as they are."""
    if handler is None:
        return None
    original = handler.request_deserializer
    deserializer = None if decode else original
    parse = original if decode else None
    if handler.unary_unary is not None:
        # the stubs type handlers as synchronous; grpc.aio's are coroutine functions
        inner: Any = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(Call(request, streaming=False), context) as call:
                call.request = await _decoded(call.request, parse, context)
                call.response = await inner(call.request, context)
            return call.response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=deserializer, response_serializer=handler.response_serializer
        )
    if handler.unary_stream is not None:
        inner_stream: Any = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async with around(Call(request, streaming=True), context) as call:
                call.request = await _decoded(call.request, parse, context)
                async for item in inner_stream(call.request, context):
                    call.items += 1
                    if call.on_item is not None:
                        call.on_item(item)
                    yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=deserializer, response_serializer=handler.response_serializer
        )
    return handler
