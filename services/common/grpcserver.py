"""gRPC server bootstrap shared by the department services.

``build_grpc_server`` returns an unstarted ``grpc.aio`` server with, in this order, the OpenTelemetry
interceptor, the Prometheus metrics interceptor (``services.common.metrics``), the log-context and
error-mapping interceptor, and (when given a ``security``) the access interceptor (grants, purposes,
audit trail: ``services.common.access``) right before the handlers; the standard health service
(NOT_SERVING until started, while stopping, and whenever the database does not answer), server
reflection, and with a ``security`` the ``AuditService``. The port is mutual TLS when the security has
TLS files, plaintext otherwise. ``serve`` runs it until SIGTERM or SIGINT and drains gracefully. With a
``metrics_address`` the service also serves ``GET /metrics`` there, from start to stop. With a
``probe_address`` it also serves the health service, and nothing else, on a plaintext port of its own:
probes (Kubernetes' native gRPC probes) cannot present a client certificate to the mutual-TLS port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import TracerProvider

from services.common.access import (
    AUDIT_SERVICE_NAME,
    AccessInterceptor,
    ServiceSecurity,
    add_audit_service,
)
from services.common.db import Overloaded
from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.interceptors import Call, ServerInterceptor, abort_with, bad_request, wrap
from services.common.metrics import MetricsInterceptor, MetricsServer, ServiceMetrics, building
from services.common.validation import check_request

log = structlog.get_logger("govhub.grpc")

ERROR_DOMAIN = "govhub.gov.cn"
# What an overloaded service tells its caller to wait before trying again.
OVERLOAD_RETRY_SECONDS = 1


class PortInUse(RuntimeError):
    pass


def domain_error_status(err: DomainError, service: str) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, with BadRequest or ErrorInfo details."""
    if isinstance(err, InvalidArgument):
        return bad_request(err.message, [(v.field, v.reason, v.description) for v in err.violations])
    reasons = {
        FailedPrecondition: (code_pb2.FAILED_PRECONDITION, ""),
        NotFound: (code_pb2.NOT_FOUND, "NOT_FOUND"),
        Unavailable: (code_pb2.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE"),
        AlreadyExists: (code_pb2.ALREADY_EXISTS, "ALREADY_EXISTS"),
    }
    code, reason = next(
        (v for k, v in reasons.items() if isinstance(err, k)), (code_pb2.FAILED_PRECONDITION, "REFUSED")
    )
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(
            reason=reason or getattr(err, "reason", "") or "REFUSED", domain=f"{service}.{ERROR_DOMAIN}"
        )
    )
    return status_pb2.Status(code=code, message=err.message, details=[detail])


def overloaded_status(service: str) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED with ErrorInfo OVERLOADED and RetryInfo: the database queue is full."""
    info, retry = any_pb2.Any(), any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="OVERLOADED", domain=f"{service}.{ERROR_DOMAIN}"))
    retry.Pack(error_details_pb2.RetryInfo(retry_delay={"seconds": OVERLOAD_RETRY_SECONDS}))
    return status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED,
        message="The service is busy; try again shortly.",
        details=[info, retry],
    )


class ContextAndErrorsInterceptor(ServerInterceptor):
    """Binds the log context (service, method, request_id, case_no), checks the request's shape
    (``services.common.validation``: string lengths, enum values, timestamps) and maps domain errors to
    status codes; any other exception becomes INTERNAL with no detail for the client (it is logged here)."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        metadata = dict(details.invocation_metadata or ())
        case_no = str(metadata.get("x-govhub-case") or "")
        service = self.service

        @contextlib.asynccontextmanager
        async def around(call: Call, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Call]:
            structlog.contextvars.clear_contextvars()
            ctx = {"rpc": method.rsplit("/", 1)[-1]}
            request_id = getattr(call.request, "request_id", "") or metadata.get("x-request-id")
            if request_id:
                ctx["request_id"] = str(request_id)[:64]
            if case_no:
                ctx["case_no"] = case_no[:64]
            structlog.contextvars.bind_contextvars(**ctx)
            try:
                check_request(call.request)
                yield call
            except grpc.aio.AbortError:
                raise
            except DomainError as exc:
                log.info("rpc refused", error=type(exc).__name__, reason=getattr(exc, "reason", None))
                await abort_with(context, domain_error_status(exc, service))
            except Overloaded:
                log.warning("rpc refused: the database queue is full")
                await abort_with(context, overloaded_status(service))
            except Exception:
                log.exception("rpc failed")
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                structlog.contextvars.clear_contextvars()

        return wrap(handler, around)  # type: ignore[return-value]


@dataclass
class GrpcService:
    """A built, unstarted service process: its server, health servicer and what it owns."""

    name: str
    server: grpc.aio.Server
    port: int
    health: Any  # grpc_health.v1.health.aio.HealthServicer (its stubs omit the aio module)
    service_names: tuple[str, ...]
    is_healthy: Callable[[], Awaitable[bool]]
    health_interval: float = 5.0
    health_timeout: float = 2.0  # how long the database may take to answer the health ping
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Prometheus: the registry the interceptor records into, and where to serve it (None: nowhere).
    metrics: ServiceMetrics | None = None
    metrics_address: tuple[str, int] | None = None
    metrics_listen_setting: str = "the metrics listen setting"
    metrics_port: int | None = None  # the bound port once started
    # The plaintext health-only port for probes (None: none), and where it was bound once started.
    probe_address: tuple[str, int] | None = None
    probe_listen_setting: str = "the probe listen setting"
    probe_port: int | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _metrics_server: MetricsServer | None = None
    _probe_server: grpc.aio.Server | None = None

    async def _set(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def _healthy(self) -> bool:
        """The database answers within the health timeout (a hung database is NOT_SERVING, not SERVING)."""
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns the ping's answer, swallowing a cancellation
            # (``stop``) that arrives just as the ping ends.
            async with asyncio.timeout(self.health_timeout):
                return await self.is_healthy()
        except TimeoutError:
            log.warning("health check timed out", timeout=self.health_timeout)
            return False
        except Exception as exc:
            log.warning("health check failed", error=type(exc).__name__)
            return False

    async def _monitor(self) -> None:
        """Every `health_interval`, until ``stop``: which it hears through `_stopping` as well as by being
        cancelled, so that a cancellation swallowed on the way (by a database driver) cannot leave it asleep
        for a whole interval while ``stop`` waits for it."""
        while not self._stopping.is_set():
            await self._set(await self._healthy())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.health_interval):
                    await self._stopping.wait()

    async def _start_metrics(self) -> None:
        if self.metrics is None or self.metrics_address is None:
            return
        host, port = self.metrics_address
        metrics_server = MetricsServer(self.metrics, host, port)
        try:
            self.metrics_port = await metrics_server.start()
        except OSError:
            raise PortInUse(
                f"cannot serve metrics on {host}:{port} (port in use?); "
                f"set {self.metrics_listen_setting} to move it (or to off)"
            ) from None
        self._metrics_server = metrics_server
        log.info("metrics", listen=f"http://{host}:{self.metrics_port}/metrics")

    async def _start_probe(self) -> None:
        """The health service alone on a plaintext port: no other service, no reflection, no
        interceptors; it answers what the main port's health service answers (the same servicer)."""
        if self.probe_address is None:
            return
        host, port = self.probe_address
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0), ("grpc.max_concurrent_streams", 8)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        try:
            bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise PortInUse(
                f"cannot serve the probe port on {host}:{port} (port in use?); "
                f"set {self.probe_listen_setting} to move it (or to off)"
            )
        await server.start()
        self._probe_server = server
        self.probe_port = bound
        log.info("probe port (health only, plaintext)", port=bound)

    async def start(self) -> None:
        await self._start_metrics()
        await self._start_probe()
        await self.server.start()
        self._tasks.append(asyncio.create_task(self._monitor(), name=f"{self.name}-health"))
        for job in self.background:
            self._tasks.append(asyncio.create_task(job(), name=f"{self.name}-background"))

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.stop(grace)
        if self._probe_server is not None:
            await self._probe_server.stop(0)
            self._probe_server = None
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        for close in reversed(self.closers):
            await close()


def build_grpc_server(
    *,
    name: str,
    host: str,
    port: int,
    listen_setting: str,
    register: Iterable[Callable[[grpc.aio.Server], None]],
    service_names: Iterable[str],
    is_healthy: Callable[[], Awaitable[bool]],
    tracer_provider: TracerProvider | None = None,
    health_interval: float = 5.0,
    security: ServiceSecurity | None = None,
    metrics: ServiceMetrics | None = None,
) -> GrpcService:
    """`metrics`: the registry the RPCs are recorded in; by default the one of ``metrics.collecting``
    when the service is built inside it (``service_main``), else a new one of its own."""
    names = tuple(service_names)
    metrics = metrics or building() or ServiceMetrics(name)
    if security is not None:
        names = (*names, AUDIT_SERVICE_NAME)
        security.grants.check_methods(names)
    interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = []
    if tracer_provider is not None:
        interceptors.append(aio_server_interceptor(tracer_provider=tracer_provider))  # type: ignore[no-untyped-call]
    # Outside the error mapping, so that it sees the status a domain error was mapped to.
    interceptors.append(MetricsInterceptor(metrics))
    interceptors.append(ContextAndErrorsInterceptor(name))
    if security is not None:
        # Inside the error mapping, so that a failed call is recorded before its status is sent.
        interceptors.append(AccessInterceptor(name, security, names))
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    for add in register:
        add(server)
    if security is not None:
        add_audit_service(server, name, security)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if security is not None and security.tls is not None:
            from services.common.tls import server_credentials

            bound = server.add_secure_port(address, server_credentials(security.tls))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise PortInUse(f"cannot listen on {host}:{port} (port in use?); set {listen_setting} to move it")
    if security is not None and not security.enforced:
        log.warning(
            "PLAINTEXT MODE: mutual TLS is off, so callers have no identity and GRANTS ARE NOT ENFORCED: "
            "any local process may call every method (development only; set GOVHUB_TLS=on)",
            port=bound,
        )
    return GrpcService(
        name=name,
        server=server,
        port=bound,
        health=health_servicer,
        service_names=names,
        is_healthy=is_healthy,
        health_interval=health_interval,
        metrics=metrics,
    )


async def serve(service: GrpcService, grace: float) -> None:
    """Run until SIGTERM or SIGINT, then drain: health goes NOT_SERVING, in-flight calls get `grace` s.
    A failed start stops at once, closing what the service owns."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except BaseException:
        # A port of its own taken: close what started and what the service owns (engines, clients).
        await service.stop(0)
        raise
    log.info("serving", port=service.port)
    await stop.wait()
    log.info("stopping", grace=grace)
    await service.stop(grace)
    log.info("stopped")


def remaining(context: grpc.aio.ServicerContext[Any, Any], default: float) -> float:
    """The timeout for a call this handler makes: the caller's remaining deadline, capped at `default`."""
    left = context.time_remaining()
    if left is None:
        return default
    return max(0.05, min(default, left))
