"""``assemble``: the one build sequence of a department service process, built but not started.

Engine (and, for a SQLite file, the read-only engine beside its writer) → schema at head
(``migrate.prepare_schema``) → ``ServiceContext`` → the department's servicer → ``build_grpc_server``
with health, reflection and the access interceptor (``ServiceSecurity``). Everything opened on the way
is closed in reverse order: by ``GrpcService.stop`` once the service runs, or at once when a later step
fails (a refused migration, a taken port, a department's own start-up). Each engine is disposed of only
after its connections drain (``db.dispose_engine``). ``service_main`` then gives the service its metrics
and probe ports from the settings and serves it until SIGTERM, draining in-flight calls.

A department's ``server.py`` keeps only what is its own: a ``Department`` naming its proto service,
its migrations and its store's outbox and audit tables, and a function making its servicer, which may
run extra start-up, add closers to ``Parts.closers`` and background jobs to ``Parts.background``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from opentelemetry.trace import TracerProvider

from services.common.access import ServiceSecurity
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, make_read_engine, ping, session_factory
from services.common.grpcserver import GrpcService, build_grpc_server
from services.common.idnumber import load_tables
from services.common.migrate import Database, prepare_schema
from services.common.outbox import EventFeed
from services.common.service import ServiceContext
from services.common.settings import ServiceSettings


@dataclass(frozen=True)
class Department:
    """What tells one department service from another at assembly."""

    name: str  # "identity": logs, metrics, error domains
    service_name: str  # the proto service's full name ("govhub.identity.v1.IdentityService")
    add_servicer: Callable[[Any, grpc.aio.Server], None]  # the generated add_<X>Servicer_to_server
    database: Database
    outbox: type[Any]  # the store's outbox table model (the event feed)
    audit: type[Any]  # the store's audit trail table model (``ServiceSecurity``)

    @classmethod
    def of(
        cls, name: str, protos: ModuleType, stubs: ModuleType, database: Database, store: ModuleType
    ) -> Department:
        """The department serving the one service of its `protos` module (``*_pb2``) through the
        `stubs` (``*_pb2_grpc``), with the ``OutboxEvent`` and ``AuditEntry`` models of its `store`."""
        (service,) = protos.DESCRIPTOR.services_by_name.values()
        return cls(
            name=name,
            service_name=service.full_name,
            add_servicer=getattr(stubs, f"add_{service.name}Servicer_to_server"),
            database=database,
            outbox=store.OutboxEvent,
            audit=store.AuditEntry,
        )


@dataclass
class Parts:
    """What a department's servicer factory is given: the context, the tracer, where to register what
    it opens (closed in reverse order at stop, or if assembly fails) and its background jobs."""

    ctx: ServiceContext
    tracer_provider: TracerProvider | None
    closers: contextlib.AsyncExitStack
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


ServicerFactory = Callable[[Parts], Awaitable[Any]]


async def assemble(
    department: Department,
    settings: ServiceSettings,
    make_servicer: ServicerFactory,
    tracer_provider: TracerProvider | None = None,
    *,
    clock: Clock | None = None,
) -> GrpcService:
    """The department's service on `settings.host:port` (port 0 picks a free one), unstarted. Call
    inside the running event loop: the engines (and whatever the servicer opens) belong to it."""
    load_tables()  # ID numbers are checked by every department: not in the first request
    async with contextlib.AsyncExitStack() as stack:
        engine = make_engine(
            settings.database_url, pool_size=settings.db_pool_size, tracer_provider=tracer_provider
        )
        stack.push_async_callback(dispose_engine, engine)
        await prepare_schema(engine, department.database, settings.common.auto_migrate)
        sessions = session_factory(engine)
        # Reads (lookups, the event feed) on read-only connections beside the one SQLite writer.
        reader = make_read_engine(engine, tracer_provider=tracer_provider)
        if reader is not engine:
            stack.push_async_callback(dispose_engine, reader)
        read_sessions = session_factory(reader)
        ctx = ServiceContext(
            settings,
            engine,
            sessions,
            EventFeed(department.outbox, read_sessions),
            clock or Clock(settings.common.today),
            read_sessions,
        )
        parts = Parts(ctx, tracer_provider, stack)
        servicer = await make_servicer(parts)
        service = build_grpc_server(
            name=department.name,
            host=settings.host,
            port=settings.port,
            listen_setting=settings.listen_setting,
            register=[lambda server: department.add_servicer(servicer, server)],
            service_names=[department.service_name],
            is_healthy=lambda: ping(engine),
            tracer_provider=tracer_provider,
            health_interval=settings.health_interval,
            security=ServiceSecurity.from_settings(settings, sessions, department.audit),
        )
        service.background.extend(parts.background)
        # Built: from here on the service owns what the stack holds, and closes it at stop.
        service.closers.append(stack.pop_all().aclose)
        return service
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises any failure
