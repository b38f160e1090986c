"""``build_server(settings)``: the identity service, built but not started."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.access import ServiceSecurity
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, make_read_engine, ping, session_factory
from services.common.grpcserver import GrpcService, build_grpc_server
from services.common.migrate import prepare_schema
from services.common.outbox import EventFeed
from services.common.service import ServiceContext
from services.common.settings import ServiceSettings
from services.identity.deaths import RegisterFollower, follow
from services.identity.migrations import DATABASE
from services.identity.policy import default_policy
from services.identity.residence import GrpcHukouDirectory, HukouDirectory
from services.identity.servicer import IdentityServicer
from services.identity.store import AuditEntry, OutboxEvent

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


async def build_server(
    settings: ServiceSettings,
    tracer_provider: TracerProvider | None = None,
    *,
    clock: Clock | None = None,
    hukou: HukouDirectory | None = None,
) -> GrpcService:
    """The identity service on `settings.host:port` (port 0 picks a free one), unstarted. Call inside
    the running event loop: the engine and the channel to the residence service belong to it. `hukou`
    replaces the residence service (tests pass a fake); the service closes whichever it was given."""
    policy = default_policy()
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, tracer_provider=tracer_provider
    )
    try:
        await prepare_schema(engine, DATABASE, settings.common.auto_migrate)
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
    directory = hukou or GrpcHukouDirectory(
        settings.residence_target, tracer_provider=tracer_provider, tls=settings.security.client_tls
    )
    servicer = IdentityServicer(ctx, directory, policy)
    try:
        service = build_grpc_server(
            name="identity",
            host=settings.host,
            port=settings.port,
            listen_setting=settings.listen_setting,
            register=[
                lambda server: identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)
            ],
            service_names=[SERVICE_NAME],
            is_healthy=lambda: ping(engine),
            tracer_provider=tracer_provider,
            health_interval=settings.health_interval,
            security=ServiceSecurity.from_settings(settings, sessions, AuditEntry),
        )
    except BaseException:
        await directory.close()
        await engine.dispose()
        await reader.dispose()
        raise
    service.background.append(lambda: follow(RegisterFollower(ctx, directory)))
    service.closers.append(lambda: dispose_engine(engine))
    if reader is not engine:
        service.closers.append(lambda: dispose_engine(reader))
    service.closers.append(directory.close)
    return service
