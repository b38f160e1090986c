"""``build_server(settings)``: the permits service, built but not started."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.permits.v1 import permits_pb2, permits_pb2_grpc
from services.common.access import ServiceSecurity
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, ping, session_factory
from services.common.grpcserver import GrpcService, build_grpc_server
from services.common.migrate import prepare_schema
from services.common.outbox import EventFeed
from services.common.service import ServiceContext
from services.common.settings import ServiceSettings
from services.permits.migrations import DATABASE
from services.permits.servicer import PermitsServicer
from services.permits.store import AuditEntry, OutboxEvent

SERVICE_NAME = permits_pb2.DESCRIPTOR.services_by_name["PermitsService"].full_name


async def build_server(
    settings: ServiceSettings, tracer_provider: TracerProvider | None = None, *, clock: Clock | None = None
) -> GrpcService:
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, tracer_provider=tracer_provider
    )
    try:
        await prepare_schema(engine, DATABASE, settings.common.auto_migrate)
    except BaseException:
        await engine.dispose()
        raise
    sessions = session_factory(engine)
    ctx = ServiceContext(
        settings, engine, sessions, EventFeed(OutboxEvent, sessions), clock or Clock(settings.common.today)
    )
    servicer = PermitsServicer(ctx)
    service = build_grpc_server(
        name="permits",
        host=settings.host,
        port=settings.port,
        listen_setting=settings.listen_setting,
        register=[lambda server: permits_pb2_grpc.add_PermitsServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE_NAME],
        is_healthy=lambda: ping(engine),
        tracer_provider=tracer_provider,
        health_interval=settings.health_interval,
        security=ServiceSecurity.from_settings(settings, sessions, AuditEntry),
    )
    service.closers.append(lambda: dispose_engine(engine))
    return service
