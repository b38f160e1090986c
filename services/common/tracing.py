"""OpenTelemetry, set up once per process. The provider is returned and passed explicitly to the
gRPC interceptors, the aiohttp middleware and the SQLAlchemy instrumentation, so tests can use an
in-memory exporter without touching global state.

Exporters (``GOVHUB_TRACE_EXPORTER``): ``none``; ``console`` (the SDK's pretty JSON on stdout);
``otlp`` (tuned by the standard ``OTEL_EXPORTER_OTLP_*`` variables); ``file``: one JSON object per span
per line appended to ``GOVHUB_TRACE_FILE`` by :class:`FileSpanExporter`, batched and flushed when the
provider shuts down (the processes do that on SIGTERM/SIGINT; a SIGKILLed process loses its last batch).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as the flat JSON object the file exporter writes (ids in W3C hex)."""
    ctx = span.get_span_context()
    parent = span.parent
    start, end = span.start_time or 0, span.end_time or 0
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


class FileSpanExporter(SpanExporter):
    """Appends one JSON line per span to `path`. Each batch goes out in one ``write`` on a file opened
    with O_APPEND, so several processes may share one file without tearing each other's lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s), default=str, ensure_ascii=False) + "\n" for s in spans)
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                os.write(self._fd, data.encode())
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written at once

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def configure_tracing(
    service: str, exporter: str = "none", *, set_global: bool = True, file: Path | None = None
) -> TracerProvider:
    """A TracerProvider for `service` with the exporter chosen by settings: none, console, otlp
    (tuned by the standard OTEL_EXPORTER_OTLP_* variables) or file (`file`: ``GOVHUB_TRACE_FILE``; a
    ``{service}`` in it becomes the service's name). W3C trace context is the propagator. Call
    ``shutdown()`` on the provider when the process stops: that flushes the batching exporters."""
    # With no exporter nothing would ever read a span: record none (trace ids still propagate, flagged
    # unsampled), so that the hot path does not build and drop spans for every call and query.
    sampler = ALWAYS_OFF if exporter == "none" else None
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"govhub-{service}"}), sampler=sampler
    )
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter == "file":
        path = Path(str(file or Path("var/traces.jsonl")).replace("{service}", service))
        provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(path)))
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
