"""Prometheus metrics of one department service, on a port of its own (``GOVHUB_<SERVICE>_METRICS_LISTEN``).

Every process has its own ``CollectorRegistry`` (never the global default one), so tests that build
several servers in one process do not collide. ``MetricsInterceptor`` records the RPCs; ``MetricsServer``
answers ``GET /metrics`` with a small aiohttp app, reading the outbox gauges from the database at each
scrape. What is exported:

RPCs (the names of go-grpc-prometheus, so the usual dashboards work):

- ``grpc_server_started_total{grpc_service, grpc_method, grpc_type}``: RPCs started;
- ``grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``: RPCs finished, by status
  code (a domain refusal is its mapped code, e.g. FAILED_PRECONDITION; a client going away CANCELLED);
- ``grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type, grpc_code}``: a histogram of the
  time from the call reaching the handlers to its status. For a server stream (``WatchEvents``) that is
  the life of the stream, so look at ``grpc_type="unary"`` for latency.

The outbox. A consumer's durable cursor lives in the consumer (the gateway's database), so a service
cannot know what was *read*; it knows what it has *streamed*. ``WatchEvents`` watchers of this process:

- ``govhub_outbox_watchers``: open ``WatchEvents`` streams;
- ``govhub_outbox_events_streamed_total``: events sent to watchers (an event sent to two watchers counts
  twice);
- ``govhub_outbox_streamed_sequence``: the highest sequence this process has sent to any watcher, or a
  watcher's starting cursor (``after_sequence``: it has read up to there) if higher;
- ``govhub_outbox_head_sequence``: the newest sequence in the outbox (read at scrape);
- ``govhub_outbox_backlog_events``: events in the outbox after ``streamed_sequence``: written but not yet
  streamed to any watcher (read at scrape; NaN until a watcher has connected to this process, since
  before that nothing is known about the consumers);
- ``govhub_outbox_oldest_unstreamed_age_seconds``: how long ago (the service's clock minus the event's
  ``occurred_at``) the oldest of those events was written; 0 when there is none; NaN like the backlog.

With several replicas of a service each sees only its own watchers: take ``max`` of
``govhub_outbox_streamed_sequence`` over the replicas and compare it with the head. A watcher that asks
for some event types only advances the streamed sequence on those types.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import grpc
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.interceptors import Call, ServerInterceptor, wrap

log = structlog.get_logger("govhub.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SCRAPE_QUERY_TIMEOUT = 2.0


class _Clock(Protocol):
    def now(self) -> dt.datetime: ...


class ServiceMetrics:
    """The registry and instruments of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        rpc = ["grpc_service", "grpc_method", "grpc_type"]
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server", rpc, registry=self.registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            [*rpc, "grpc_code"],
            registry=self.registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC reaching the handlers to its status, by status code",
            [*rpc, "grpc_code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.watchers = Gauge(
            "govhub_outbox_watchers", "Open WatchEvents streams of this process", registry=self.registry
        )
        self.events_streamed = Counter(
            "govhub_outbox_events_streamed",
            "Outbox events sent to WatchEvents watchers by this process",
            registry=self.registry,
        )
        self.streamed_sequence = Gauge(
            "govhub_outbox_streamed_sequence",
            "Highest outbox sequence sent to (or already held by) any watcher of this process",
            registry=self.registry,
        )
        self.head_sequence = Gauge(
            "govhub_outbox_head_sequence", "Newest sequence in the outbox", registry=self.registry
        )
        self.backlog = Gauge(
            "govhub_outbox_backlog_events",
            "Outbox events after the streamed sequence: written, not yet streamed to any watcher",
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "govhub_outbox_oldest_unstreamed_age_seconds",
            "Age of the oldest outbox event not yet streamed to any watcher (0: none)",
            registry=self.registry,
        )
        self.backlog.set(math.nan)
        self.oldest_age.set(math.nan)
        self._streamed: int | None = None
        self._outbox: tuple[Any, async_sessionmaker[AsyncSession], _Clock] | None = None

    # -- the outbox ----------------------------------------------------------------------------------

    def watch_outbox(self, model: Any, sessions: async_sessionmaker[AsyncSession], clock: _Clock) -> None:
        """Read the outbox gauges from `model`'s table at each scrape (``sequence``, ``occurred_at``)."""
        self._outbox = (model, sessions, clock)

    def streamed(self, sequence: int) -> None:
        if self._streamed is None or sequence > self._streamed:
            self._streamed = sequence
            self.streamed_sequence.set(sequence)

    async def refresh(self) -> None:
        """Read the outbox gauges; a database that does not answer leaves them as they were."""
        if self._outbox is None:
            return
        model, sessions, clock = self._outbox
        streamed = self._streamed
        async with sessions() as session:
            head = await session.scalar(select(func.max(model.sequence)))
            self.head_sequence.set(head or 0)
            if streamed is None:
                return
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(model.occurred_at)).where(model.sequence > streamed)
                )
            ).one()
        self.backlog.set(count)
        if not count or oldest is None:
            self.oldest_age.set(0)
        else:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            self.oldest_age.set(max(0.0, (clock.now() - oldest).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


# -- the interceptor ------------------------------------------------------------------------------------


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service or "unknown", name


def _code_name(code: Any) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "OK" if code is None else str(code)


class MetricsInterceptor(ServerInterceptor):
    """Counts and times every unary and server-streaming RPC by method and status code; follows the
    events a ``WatchEvents`` stream sends (their ``event.sequence``). The outermost of govhub's own
    interceptors, it also decodes the request (``interceptors.wrap(decode=True)``), so that a request
    that does not decode is counted as INVALID_ARGUMENT like any other refusal."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        service, method = _split(details.method)
        m = self.metrics
        watch = method == "WatchEvents"

        def status(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> str:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                return "CANCELLED"
            code = context.code()
            if code is not None and code != grpc.StatusCode.OK:
                return _code_name(code)
            if exc is not None and not isinstance(exc, grpc.aio.AbortError):
                return "UNKNOWN"
            return _code_name(code)

        @contextlib.asynccontextmanager
        async def around(call: Call, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Call]:
            kind = "server_stream" if call.streaming else "unary"
            m.started.labels(service, method, kind).inc()
            started = time.perf_counter()
            if watch and call.streaming:
                m.watchers.inc()

                def on_item(item: Any) -> None:
                    if call.items == 1:
                        m.streamed(int(getattr(call.request, "after_sequence", 0)))
                    m.events_streamed.inc()
                    event = getattr(item, "event", None)
                    if event is not None:
                        m.streamed(int(event.sequence))

                call.on_item = on_item
            code = ""
            try:
                yield call
            except BaseException as exc:
                code = status(context, exc)
                raise
            finally:
                if watch and call.streaming:
                    m.watchers.dec()
                code = code or status(context, None)
                m.handled.labels(service, method, kind, code).inc()
                m.handling.labels(service, method, kind, code).observe(time.perf_counter() - started)

        return wrap(handler, around, decode=True)  # type: ignore[return-value]


# -- the /metrics server --------------------------------------------------------------------------------


class MetricsServer:
    """``GET /metrics`` (Prometheus text format) on its own port; started and stopped with the service."""

    def __init__(self, metrics: ServiceMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _scrape(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.metrics.refresh(), SCRAPE_QUERY_TIMEOUT)
        except Exception as exc:  # the RPC metrics are still worth answering with
            log.warning("outbox gauges not refreshed", error=repr(exc))
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self) -> int:
        """Listen; returns the port (a free one when asked for port 0). Raises OSError when taken."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


# -- handing the metrics to the ServiceContext a server is built with -----------------------------------

_building: contextvars.ContextVar[ServiceMetrics | None] = contextvars.ContextVar(
    "govhub_building_metrics", default=None
)


@contextlib.contextmanager
def collecting(metrics: ServiceMetrics) -> Iterator[ServiceMetrics]:
    """While a service is built inside this block, its ``ServiceContext`` hands its outbox to `metrics`
    and ``build_grpc_server`` uses `metrics` (``service_main`` does this; tests may too)."""
    token = _building.set(metrics)
    try:
        yield metrics
    finally:
        _building.reset(token)


def building() -> ServiceMetrics | None:
    """The metrics of the service being built in this context, if any."""
    return _building.get()


__all__ = [
    "MetricsInterceptor",
    "MetricsServer",
    "ServiceMetrics",
    "building",
    "collecting",
]
