"""``build_server(settings)``: the residence service, built but not started (``services.common.assemble``)."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.assemble import Department, Parts, assemble
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.residence.migrations import DATABASE
from services.residence.servicer import ResidenceServicer
from services.residence.store import AuditEntry, OutboxEvent, ensure_stations

SERVICE_NAME = residence_pb2.DESCRIPTOR.services_by_name["ResidenceService"].full_name
RESIDENCE = Department(
    name="residence",
    service_name=SERVICE_NAME,
    add_servicer=residence_pb2_grpc.add_ResidenceServiceServicer_to_server,
    database=DATABASE,
    outbox=OutboxEvent,
    audit=AuditEntry,
)


async def _servicer(parts: Parts) -> ResidenceServicer:
    # The police-station catalogue, loaded before the first request.
    await ensure_stations(parts.ctx.engine)
    return ResidenceServicer(parts.ctx)


async def build_server(
    settings: ServiceSettings, tracer_provider: TracerProvider | None = None, *, clock: Clock | None = None
) -> GrpcService:
    return await assemble(RESIDENCE, settings, _servicer, tracer_provider, clock=clock)
