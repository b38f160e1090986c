"""``build_server(settings)``: the residence service, built but not started."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.access import ServiceSecurity
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, make_read_engine, ping, session_factory
from services.common.grpcserver import GrpcService, build_grpc_server
from services.common.migrate import prepare_schema
from services.common.outbox import EventFeed
from services.common.service import ServiceContext
from services.common.settings import ServiceSettings
from services.residence.migrations import DATABASE
from services.residence.servicer import ResidenceServicer
from services.residence.store import AuditEntry, OutboxEvent, ensure_stations

SERVICE_NAME = residence_pb2.DESCRIPTOR.services_by_name["ResidenceService"].full_name


async def build_server(
    settings: ServiceSettings, tracer_provider: TracerProvider | None = None, *, clock: Clock | None = None
) -> GrpcService:
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, tracer_provider=tracer_provider
    )
    try:
        await prepare_schema(engine, DATABASE, settings.common.auto_migrate)
        await ensure_stations(engine)
    except BaseException:
        await engine.dispose()
        raise
    sessions = session_factory(engine)
    # Reads (lookups, the event feed) on read-only connections beside the one SQLite writer.
    reader = make_read_engine(engine, tracer_provider=tracer_provider)
    read_sessions = session_factory(reader)
    ctx = ServiceContext(
        settings,
        engine,
        sessions,
        EventFeed(OutboxEvent, read_sessions),
        clock or Clock(settings.common.today),
        read_sessions,
    )
    servicer = ResidenceServicer(ctx)
    service = build_grpc_server(
        name="residence",
        host=settings.host,
        port=settings.port,
        listen_setting=settings.listen_setting,
        register=[lambda server: residence_pb2_grpc.add_ResidenceServiceServicer_to_server(servicer, server)],
        service_names=[SERVICE_NAME],
        is_healthy=lambda: ping(engine),
        tracer_provider=tracer_provider,
        health_interval=settings.health_interval,
        security=ServiceSecurity.from_settings(settings, sessions, AuditEntry),
    )
    service.closers.append(lambda: dispose_engine(engine))
    if reader is not engine:
        service.closers.append(lambda: dispose_engine(reader))
    return service
