"""govhub.permits.v1.PermitsService over grpc.aio: proto in, domain, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from govhub.permits.v1 import permits_pb2, permits_pb2_grpc
from services.common.protoconv import event_to_proto
from services.common.service import ServiceContext


class PermitsServicer(permits_pb2_grpc.PermitsServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def WatchEvents(
        self, request: permits_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[permits_pb2.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield permits_pb2.WatchEventsResponse(event=event_to_proto(row))
