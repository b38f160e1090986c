"""The trace context of a gateway request: with no exporter (nothing recorded) the caller's W3C trace is
continued, or a new one begun, and is current while the request is handled (log lines and department
calls carry its id); with an exporter the server span is recorded as before."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.auth import public
from services.common.clock import Clock
from services.common.tracing import configure_tracing
from tests.service.gateway_support import TODAY, settings


@public
async def seen(request: web.Request) -> web.Response:
    """What the handler runs under: the current span's ids."""
    ctx = trace.get_current_span().get_span_context()
    return web.json_response(
        {"trace_id": format(ctx.trace_id, "032x"), "valid": ctx.is_valid, "sampled": ctx.trace_flags.sampled}
    )


async def client_with(aiohttp_client: Any, db_url: str, provider: Any) -> Any:
    app = create_app(
        settings(db_url), departments={}, tracer_provider=provider, clock=Clock(TODAY), background=False
    )
    app.router.add_get("/probe", seen)
    return await aiohttp_client(app)


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-00"


async def test_with_no_exporter_the_callers_trace_is_continued_and_a_new_one_begun_otherwise(
    aiohttp_client: Any, db_url: str
) -> None:
    client = await client_with(aiohttp_client, db_url, configure_tracing("gateway", "none", set_global=False))
    trace_id, header = traceparent()
    resp = await client.get("/probe", headers={"traceparent": header})
    assert await resp.json() == {"trace_id": trace_id, "valid": True, "sampled": False}
    own = [await (await client.get("/probe")).json() for _ in range(2)]
    assert all(o["valid"] and not o["sampled"] for o in own)
    assert own[0]["trace_id"] != own[1]["trace_id"]
    ids = {(await client.get("/healthz")).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3  # a new request id each


async def test_with_an_exporter_the_server_span_is_recorded_in_the_callers_trace(
    aiohttp_client: Any, db_url: str
) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    client = await client_with(aiohttp_client, db_url, provider)
    trace_id, header = traceparent()
    resp = await client.get("/probe", headers={"traceparent": header.removesuffix("00") + "01"})
    assert (await resp.json())["trace_id"] == trace_id
    servers = [s for s in exported.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert [format(s.context.trace_id, "032x") for s in servers] == [trace_id]
