"""``build_server(settings)``: the residence service, built but not started (``services.common.assemble``)."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.assemble import Department, Parts, assemble
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.residence import store
from services.residence.migrations import DATABASE
from services.residence.servicer import ResidenceServicer
from services.residence.store import ensure_stations

RESIDENCE = Department.of("residence", residence_pb2, residence_pb2_grpc, DATABASE, store)
SERVICE_NAME = RESIDENCE.service_name


async def _servicer(parts: Parts) -> ResidenceServicer:
    # The police-station catalogue, loaded before the first request.
    await ensure_stations(parts.ctx.engine)
    return ResidenceServicer(parts.ctx)


async def build_server(
    settings: ServiceSettings, tracer_provider: TracerProvider | None = None, *, clock: Clock | None = None
) -> GrpcService:
    return await assemble(RESIDENCE, settings, _servicer, tracer_provider, clock=clock)
