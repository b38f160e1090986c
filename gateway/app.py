"""The gateway's application factory: ``create_app(settings, departments=...)``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from gateway import web as web_pages
from gateway.audit import audit_middleware, trail_for, trail_key
from gateway.auth import TokenVerifier, auth_middleware, load_keys
from gateway.catalogue import load_catalogue
from gateway.clients import Department, DepartmentHealth, grpc_departments
from gateway.events import EventConsumer
from gateway.feedback import Stats
from gateway.materials import MaterialFiles
from gateway.metrics import Metrics
from gateway.migrations import DATABASE
from gateway.notify import Notifier, Sender
from gateway.problems import problem_middleware
from gateway.quotes import Quotes
from gateway.ratelimit import RateLimiter
from gateway.routes import routes
from gateway.saga.runner import RunnerSettings, SagaRunner
from gateway.typedefs import (
    catalogue_key,
    clock_key,
    consumers_key,
    departments_key,
    engine_key,
    health_key,
    material_files_key,
    metrics_key,
    notifier_key,
    progress_limiter_key,
    quotes_key,
    runner_key,
    sessions_key,
    settings_key,
    stats_key,
    tracer_provider_key,
    verifier_key,
)
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, session_factory
from services.common.migrate import SchemaNotCurrent, prepare_schema
from services.common.settings import GatewaySettings

log = structlog.get_logger("govhub.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tracing_middleware(
    tracer_provider: TracerProvider,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A server span per request, continuing the caller's W3C trace context."""
    tracer = tracer_provider.get_tracer("govhub.gateway")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = otel_context.attach(propagate.extract(request.headers))
        try:
            route = request.match_info.route.resource
            name = f"{request.method} {route.canonical if route else request.path}"
            with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
                span.set_attribute("http.request.method", request.method)
                span.set_attribute("http.route", route.canonical if route else "")
                response = await handler(request)
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                return response
        finally:
            otel_context.detach(token)

    return middleware


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Binds a request id (the caller's X-Request-Id, or a new one) to every log line of the request."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or str(uuid.uuid4())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        structlog.contextvars.clear_contextvars()


def create_app(
    settings: GatewaySettings,
    *,
    departments: Mapping[str, Department] | None = None,
    tracer_provider: TracerProvider | None = None,
    clock: Clock | None = None,
    background: bool = True,
    sender: Sender | None = None,
) -> web.Application:
    """The gateway. `departments` replaces the gRPC clients (tests); `background` runs the saga
    runner's loop, the event consumers and the notifier (tests may drive them by hand); `sender`
    replaces the default notification sender (the log)."""
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    provider = tracer_provider or SdkTracerProvider()
    metrics = Metrics()
    middlewares = [
        tracing_middleware(provider),
        context_middleware,
        metrics.middleware(),
        audit_middleware,
        problem_middleware,
        auth_middleware(lambda request: request.app[verifier_key]),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=settings.material_max_bytes + 256 * 1024)
    app[settings_key] = settings
    app[clock_key] = clock or Clock(settings.common.today)
    app[catalogue_key] = load_catalogue()
    app[quotes_key] = Quotes(lambda: app.get(departments_key) or {})
    app[tracer_provider_key] = provider
    app[material_files_key] = MaterialFiles(settings.materials_dir, settings.material_max_bytes)
    app[verifier_key] = TokenVerifier(
        load_keys(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway,
    )
    app[metrics_key] = metrics
    app[progress_limiter_key] = RateLimiter(settings.progress_rate, settings.progress_burst)
    app.add_routes(routes)
    web_pages.setup(app)  # /hall/, /counter/, /backoffice/ on the API above

    async def database(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(
            settings.database_url, pool_size=settings.db_pool_size, tracer_provider=tracer_provider
        )
        try:
            await prepare_schema(engine, DATABASE, settings.common.auto_migrate)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, SchemaNotCurrent):
                log.error("cannot start", error=str(exc))
            raise
        app[engine_key] = engine
        app[sessions_key] = session_factory(engine)
        app[trail_key] = trail_for(app)
        app[stats_key] = Stats(app[sessions_key], lambda: app[departments_key].get("permits"))
        yield
        await dispose_engine(engine)

    async def department_clients(app: web.Application) -> AsyncIterator[None]:
        owned = departments is None
        clients: Mapping[str, Department] = departments or grpc_departments(
            {
                "identity": settings.identity_target,
                "residence": settings.residence_target,
                "permits": settings.permits_target,
            },
            tracer_provider,
            settings.security.client_tls,  # mutual TLS with the gateway's client certificate (GOVHUB_TLS=on)
        )
        app[departments_key] = clients
        yield
        if owned:
            for client in clients.values():
                await client.close()

    async def saga_runner(app: web.Application) -> AsyncIterator[None]:
        runner = SagaRunner(
            app[sessions_key],
            app[departments_key],
            app[clock_key],
            RunnerSettings(
                call_timeout=settings.call_timeout,
                retry_base=settings.retry_base,
                retry_max=settings.retry_max,
                max_attempts=settings.max_attempts,
            ),
            alarm=lambda department, _step, _reason: metrics.operator_faults.labels(department).inc(),
        )
        app[runner_key] = runner
        notifier = Notifier(
            app[sessions_key], app[catalogue_key], app[clock_key], sender, settings.notify_interval
        )
        app[notifier_key] = notifier
        health = DepartmentHealth(app[departments_key], settings.call_timeout)
        health.listeners.append(lambda name, up: metrics.department_up.labels(name).set(1 if up else 0))
        health.on_recovery.append(lambda name: runner.spawn(runner.resume(name)))
        app[health_key] = health
        app[consumers_key] = []
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks.append(asyncio.create_task(runner.run_forever(), name="saga-runner"))
            tasks.append(asyncio.create_task(notifier.run_forever(), name="notifier"))
            tasks.append(asyncio.create_task(health.run_forever(app[clock_key].now), name="health"))
            for client in app[departments_key].values():
                consumer = EventConsumer(client, runner, app[sessions_key], app[clock_key])
                consumer.task = asyncio.create_task(consumer.run(), name=f"events-{client.name}")
                app[consumers_key].append(consumer)
                tasks.append(consumer.task)
        yield
        await runner.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.extend([database, department_clients, saga_runner])
    return app
