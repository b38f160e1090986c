"""The gateway's application factory: ``create_app(settings, departments=...)``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import secrets
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import structlog
from aiohttp import web, web_protocol
from aiohttp.http_exceptions import LineTooLong
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, TracerProvider

from gateway import web as web_pages
from gateway.audit import audit_middleware, purpose_middleware, trail_for, trail_key
from gateway.auth import TokenVerifier, auth_middleware, load_keys
from gateway.cache import CaseViews, reads_key, tracking_sessions, views_key
from gateway.catalogue import load_catalogue
from gateway.clients import Department, DepartmentHealth, grpc_departments
from gateway.events import EventConsumer
from gateway.feedback import Stats
from gateway.materials import MaterialFiles
from gateway.metrics import Metrics
from gateway.migrations import DATABASE
from gateway.notify import Notifier, Sender
from gateway.problems import problem_body, problem_middleware
from gateway.quotes import Quotes
from gateway.ratelimit import CodeGuard
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
    page_secret_key,
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
from services.common.db import dispose_engine, make_engine, make_read_engine, session_factory
from services.common.idnumber import load_tables
from services.common.migrate import SchemaNotCurrent, prepare_schema
from services.common.settings import GatewaySettings

log = structlog.get_logger("govhub.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


SERVER_NAME = "govhub"  # the Server header: no product or version for a scanner to match
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Answers that hold nothing personal and may be cached; every other answer is marked no-store.
CACHEABLE = ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/matters", "/api/v1/stats")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer as it is prepared (errors and streams included): the security headers, a
    Server header without versions, and ``Cache-Control: no-store`` on anything but the public catalogue.
    A response that set its own (the web pages' policy, which lets their own styles and scripts load;
    the static files' caching) keeps them."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME
    path = request.path
    if "Cache-Control" not in response.headers and not any(
        path == p or path.startswith(p + "/") for p in CACHEABLE
    ):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"


class ProblemRequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol, answering a request it cannot parse (oversized header or request line, bad
    method, malformed message) as problem+json without echoing any of it, logged as a warning."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started; the connection is closed")
        if isinstance(exc, LineTooLong):
            status, title = 431, "A header or the request line is too long"
        else:
            title = "The request is not valid HTTP"
        log.warning("unparsable request", status=status, error=type(exc).__name__ if exc else "")
        response = web.Response(
            status=status,
            text=json.dumps(problem_body(status, "bad-request", title)),
            content_type="application/problem+json",
            headers={**SECURITY_HEADERS, "Server": SERVER_NAME, "Cache-Control": "no-store"},
        )
        response.force_close()
        return response


class ProblemServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests with ``ProblemRequestHandler``."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return ProblemServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


def _http_tracing(
    provider: TracerProvider,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A server span per request, continuing the caller's W3C trace context. With a provider that
    records nothing (no exporter: ``configure_tracing`` samples nothing) only the trace context is kept
    (``_trace_context``); otherwise the OpenTelemetry aiohttp server middleware. Its module keeps its
    meters and settings in globals that only ``instrument()`` sets; instrument and uninstrument once
    (which also puts back the ``web.Application`` it swaps for a subclass) and use the middleware with
    this app's own tracer provider."""
    if isinstance(provider, SdkTracerProvider) and provider.sampler is ALWAYS_OFF:
        return _trace_context(provider)
    from opentelemetry.instrumentation import aiohttp_server

    if aiohttp_server._excluded_urls is None:
        instrumentor = aiohttp_server.AioHttpServerInstrumentor()
        with warnings.catch_warnings():  # aiohttp frowns on the subclass the instrumentor defines
            warnings.simplefilter("ignore", DeprecationWarning)
            instrumentor.instrument()
        instrumentor.uninstrument()
    return aiohttp_server.create_aiohttp_middleware(tracer_provider=provider)  # type: ignore[no-any-return]


def _trace_context(
    provider: TracerProvider,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The trace context of a request when no span is recorded: the caller's (its ``traceparent``) or a
    new one, current while the request is handled, so that its log lines and department calls carry the
    trace id. None of the span attributes, request metrics and URL parsing the OpenTelemetry middleware
    does for every request: nothing would read them."""
    tracer = provider.get_tracer("govhub.gateway.http")

    @web.middleware
    async def trace_context(request: web.Request, handler: Handler) -> web.StreamResponse:
        caller = propagate.extract(request.headers) if "traceparent" in request.headers else None
        with tracer.start_as_current_span(
            request.method, context=caller, kind=SpanKind.SERVER, record_exception=False
        ):
            return await handler(request)

    return trace_context


def run(app: web.Application, sock: socket.socket, shutdown_timeout: float) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM, then drain for `shutdown_timeout` seconds."""

    async def serve() -> None:
        runner = GatewayRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, handle_signals=True)
        await runner.setup()
        # What the start built (modules, tables, the catalogue, the schema) lives as long as the process:
        # out of the collector's way, so that a full collection walks only what serving has made since.
        # Left in, every full collection walked some 170,000 objects: 60-300 ms with every request
        # waiting, several times a minute under lookups (the half-load p99 of docs/performance.md).
        gc.collect()
        gc.freeze()
        try:
            await web.SockSite(runner, sock).start()
            await asyncio.Event().wait()  # until the signal handlers raise GracefulExit
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(serve())


# A new request id: this process's random prefix and a count (unique without a random draw a request).
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_REQUEST_NUMBERS = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}-{next(_REQUEST_NUMBERS):x}"


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Binds a request id (the caller's X-Request-Id, or a new one) to every log line of the request."""
    request_id = (
        request.headers.get("X-Request-Id", "")[:64] or f"{_REQUEST_ID_PREFIX}-{next(_REQUEST_NUMBERS):x}"
    )
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
    provider = tracer_provider or SdkTracerProvider()
    metrics = Metrics()
    middlewares = [
        _http_tracing(provider),
        context_middleware,
        metrics.middleware(),
        audit_middleware,
        problem_middleware,
        auth_middleware(lambda request: request.app[verifier_key]),
        purpose_middleware,
    ]
    app = web.Application(middlewares=middlewares, client_max_size=settings.material_max_bytes + 256 * 1024)
    app.on_response_prepare.append(security_headers)
    app[settings_key] = settings
    app[page_secret_key] = secrets.token_urlsafe(32)
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
        reads = make_read_engine(engine, tracer_provider=tracer_provider)
        app[engine_key] = engine
        app[reads_key] = reads
        app[views_key] = CaseViews()
        app[sessions_key] = tracking_sessions(engine, app[views_key])
        app[progress_limiter_key] = CodeGuard(
            app[sessions_key],
            app[clock_key],
            settings.progress_rate,
            settings.progress_burst,
            reads,
            app[views_key],
        )
        app[trail_key] = trail_for(app)
        app[stats_key] = Stats(app[sessions_key], lambda: app[departments_key].get("permits"))
        yield
        if reads is not engine:
            await dispose_engine(reads)
        await dispose_engine(engine)

    async def department_clients(app: web.Application) -> AsyncIterator[None]:
        owned = departments is None
        clients: Mapping[str, Department] = (
            departments
            if departments is not None  # given (tests, embedding): an empty mapping means none at all
            else grpc_departments(
                {
                    "identity": settings.identity_target,
                    "residence": settings.residence_target,
                    "permits": settings.permits_target,
                },
                tracer_provider,
                settings.security.client_tls,  # mutual TLS with its client certificate (GOVHUB_TLS=on)
            )
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
            reads=session_factory(app[reads_key]),
        )
        app[runner_key] = runner
        notifier = Notifier(
            app[sessions_key], app[catalogue_key], app[clock_key], sender, settings.notify_interval
        )
        app[notifier_key] = notifier
        health = DepartmentHealth(app[departments_key], settings.call_timeout)
        health.listeners.append(lambda name, up: metrics.department_up.labels(name).set(1 if up else 0))

        def resume(name: str) -> None:
            runner.spawn(runner.resume(name))

        health.on_recovery.append(resume)
        app[health_key] = health
        app[consumers_key] = []
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks.append(asyncio.create_task(runner.run_forever(), name="saga-runner"))
            tasks.append(asyncio.create_task(notifier.run_forever(), name="notifier"))
            tasks.append(asyncio.create_task(health.run_forever(app[clock_key].now), name="health"))
            tasks.append(asyncio.create_task(app[views_key].run_forever(app[reads_key]), name="case-views"))
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
    app.on_startup.append(warm_up)
    return app


async def warm_up(app: web.Application) -> None:
    """What the first request would otherwise build while every other request waits."""
    load_tables()
