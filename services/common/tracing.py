"""OpenTelemetry, set up once per process. The provider is returned and passed explicitly to the
gRPC interceptors, the aiohttp middleware and the SQLAlchemy instrumentation, so tests can use an
in-memory exporter without touching global state."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def configure_tracing(service: str, exporter: str = "none", *, set_global: bool = True) -> TracerProvider:
    """A TracerProvider for `service` with the exporter chosen by settings: none, console or otlp
    (tuned by the standard OTEL_EXPORTER_OTLP_* variables). W3C trace context is the propagator."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"govhub-{service}"}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
