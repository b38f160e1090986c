"""What every department service process shares: its store's base tables (outbox, idempotency), the
context a servicer works with, and the ``python -m services.<name>`` entry point."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from opentelemetry.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.clock import Clock
from services.common.db import UnitOfWork
from services.common.grpcserver import GrpcService, PortInUse, serve
from services.common.logging import configure_logging
from services.common.metrics import ServiceMetrics, building, collecting
from services.common.outbox import EventFeed
from services.common.settings import ServiceSettings, SettingsError
from services.common.tracing import configure_tracing


@dataclass
class ServiceContext:
    """The one engine, session factory, event feed and clock of a service process; `read_sessions`
    (default: `sessions`) serve the units that only read (``db.make_read_engine``)."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    feed: EventFeed
    clock: Clock
    read_sessions: async_sessionmaker[AsyncSession] | None = None

    def __post_init__(self) -> None:
        # Built inside ``metrics.collecting`` (service_main), the outbox gauges read this store.
        metrics = building()
        if metrics is not None:
            metrics.watch_outbox(self.feed.model, self.read_sessions or self.sessions, self.clock)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def read(self) -> AsyncSession:
        """A session for reading only (``async with ctx.read() as session``): on SQLite it never waits
        for the writer."""
        return (self.read_sessions or self.sessions)()


Builder = Callable[[ServiceSettings, TracerProvider], Awaitable[GrpcService]]


def service_main(name: str, build: Builder) -> int:
    """Process wiring for one department service: settings, logging, tracing, metrics, build, serve."""
    try:
        settings = ServiceSettings.from_env(name, os.environ)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(name, settings.common.log_format, settings.common.log_level)
    tracer_provider = configure_tracing(name, settings.common.trace_exporter, file=settings.common.trace_file)
    log = structlog.get_logger(f"govhub.{name}")

    async def run() -> None:
        with collecting(ServiceMetrics(name)):
            service = await build(settings, tracer_provider)
        service.metrics_address = settings.metrics_listen
        service.metrics_listen_setting = settings.metrics_listen_setting
        service.probe_address = settings.probe_listen
        service.probe_listen_setting = settings.probe_listen_setting
        await serve(service, settings.shutdown_grace)

    try:
        asyncio.run(run())
    except (PortInUse, SettingsError) as exc:
        log.error("cannot start", error=str(exc))
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    finally:
        tracer_provider.shutdown()
    return 0
