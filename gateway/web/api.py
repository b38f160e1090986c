"""How the pages reach the gateway's API: over HTTP on the loopback, to the very listener the browser's
request arrived on, with the session's bearer token. Every page action therefore goes through the same
middlewares, checks and audit trail as any other API client — the pages know nothing the API does not
answer."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from opentelemetry import propagate

from gateway.ratelimit import PAGE_CLIENT_HEADER, PAGE_SECRET_HEADER
from gateway.typedefs import page_secret_key, settings_key
from gateway.web.i18n import reason_text

client_key: web.AppKey[aiohttp.ClientSession] = web.AppKey("web_api_client", aiohttp.ClientSession)

RETRY_IN_FLIGHT = 20  # a double click: wait (about 10 s at most) for the first request with the same key


@dataclass
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def field_errors(self, lang: str) -> dict[str, list[str]]:
        """The problem's ``errors`` by field path, each as a sentence in `lang` where the reason is known
        (else the API's own description)."""
        out: dict[str, list[str]] = {}
        for error in self.body.get("errors", []) or []:
            if not isinstance(error, dict):
                continue
            text = reason_text(lang, str(error.get("reason", "")), str(error.get("detail", "")))
            out.setdefault(str(error.get("field", "")), []).append(text)
        return out


class Unreachable(Exception):
    """The gateway's own API did not answer in time."""


def _base(request: web.Request) -> str:
    """The listener this request came in on (its local address), as a loopback URL."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = sockname[0], sockname[1]
    else:
        settings = request.app[settings_key]
        host, port = settings.host, settings.port
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def call(
    request: web.Request,
    method: str,
    path: str,
    *,
    token: str = "",
    json_body: Any = None,
    data: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    client = request.app[client_key]
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if isinstance(request_id, str) and request_id:
        sent["X-Request-Id"] = request_id  # the page's log lines and the API's share one request id
    propagate.inject(sent)  # ... and one trace: the API's span is a child of the page's
    if request.remote:  # per-address limits count the browser, not the pages (trusted only with the secret)
        sent[PAGE_CLIENT_HEADER] = request.remote
        sent[PAGE_SECRET_HEADER] = request.app[page_secret_key]
    url = _base(request) + path
    for _ in range(RETRY_IN_FLIGHT):
        try:
            async with client.request(
                method, url, json=json_body, data=data, params=params, headers=sent
            ) as resp:
                text = await resp.text()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError, socket.gaierror) as exc:
            raise Unreachable(str(type(exc).__name__)) from None
        try:
            body = json.loads(text) if text else {}
        except json.JSONDecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {"items": body}
        if status == 409 and body.get("type") == "/problems/idempotency-conflict" and retry_after:
            await asyncio.sleep(0.5)
            continue
        return Answer(status, body)
    return Answer(status, body)


def client_context(app: web.Application) -> Any:
    async def context(app: web.Application) -> Any:
        settings = app[settings_key]
        timeout = aiohttp.ClientTimeout(total=settings.submit_wait + 2 * settings.call_timeout + 5)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            app[client_key] = session
            yield

    return context
