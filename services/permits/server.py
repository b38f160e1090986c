"""``build_server(settings)``: the permits service, built but not started (``services.common.assemble``)."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.permits.v1 import permits_pb2, permits_pb2_grpc
from services.common.assemble import Department, Parts, assemble
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.permits import store
from services.permits.migrations import DATABASE
from services.permits.servicer import PermitsServicer

PERMITS = Department.of("permits", permits_pb2, permits_pb2_grpc, DATABASE, store)
SERVICE_NAME = PERMITS.service_name


async def _servicer(parts: Parts) -> PermitsServicer:
    return PermitsServicer(parts.ctx)


async def build_server(
    settings: ServiceSettings, tracer_provider: TracerProvider | None = None, *, clock: Clock | None = None
) -> GrpcService:
    return await assemble(PERMITS, settings, _servicer, tracer_provider, clock=clock)
