"""Every aiohttp AppKey (and RequestKey) of the gateway, defined once (aiohttp matches keys by identity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from opentelemetry.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.catalogue import Matter
from gateway.clients import Department
from gateway.materials import MaterialFiles
from gateway.saga.runner import SagaRunner
from services.common.clock import Clock
from services.common.settings import GatewaySettings

if TYPE_CHECKING:
    from gateway.auth import TokenVerifier
    from gateway.clients import DepartmentHealth
    from gateway.events import EventConsumer
    from gateway.feedback import Stats
    from gateway.metrics import Metrics
    from gateway.notify import Notifier
    from gateway.quotes import Quotes
    from gateway.ratelimit import CodeGuard

settings_key = web.AppKey("settings", GatewaySettings)
clock_key = web.AppKey("clock", Clock)
catalogue_key = web.AppKey("catalogue", Mapping[str, Matter])
engine_key = web.AppKey("engine", AsyncEngine)
sessions_key = web.AppKey("sessions", async_sessionmaker[AsyncSession])
departments_key = web.AppKey("departments", Mapping[str, Department])
runner_key = web.AppKey("runner", SagaRunner)
tracer_provider_key = web.AppKey("tracer_provider", TracerProvider)
material_files_key = web.AppKey("material_files", MaterialFiles)
verifier_key: web.AppKey[TokenVerifier] = web.AppKey("verifier")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
progress_limiter_key: web.AppKey[CodeGuard] = web.AppKey("progress_limiter")
notifier_key: web.AppKey[Notifier] = web.AppKey("notifier")
stats_key: web.AppKey[Stats] = web.AppKey("stats")
quotes_key: web.AppKey[Quotes] = web.AppKey("quotes")
consumers_key: web.AppKey[list[EventConsumer]] = web.AppKey("consumers")
health_key: web.AppKey[DepartmentHealth] = web.AppKey("department_health")
# A secret of this process: the pages' own loopback calls to the API carry it beside the browser's address,
# so per-address limits count each browser, not the pages as one client (gateway/web/api.py).
page_secret_key = web.AppKey("page_secret", str)
