"""RFC 9457 problem details for every error the gateway answers with. No stack trace, SQL or internal
address reaches a client: anything unexpected is logged here and answered as a plain 500."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from services.common.db import Overloaded
from services.common.errors import FieldViolation

log = structlog.get_logger("govhub.http")

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answer: `slug` makes the stable type URI ``/problems/<slug>``."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str = "",
        *,
        errors: list[FieldViolation] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "instance": instance,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = [
                {"field": e.field, "reason": e.reason, **({"detail": e.description} if e.description else {})}
                for e in self.errors
            ]
        body.update(self.extra)
        return body

    def response(self, instance: str) -> web.Response:
        return problem_response(self.status, self.body(instance), self.headers)


def problem_body(status: int, slug: str, title: str, instance: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status}
    if instance:
        body["instance"] = instance
    return body


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable",
    429: "too-many-requests",
}


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = _HTTP_SLUGS.get(exc.status, "error")
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return problem_response(exc.status, problem_body(exc.status, slug, exc.reason), headers)
    except Overloaded:
        # The gateway's own database queue is full (services.common.db): a quick 503, not a long wait.
        log.warning("refused: the database queue is full", path=request.path)
        return problem_response(
            503, problem_body(503, "busy", "Busy; try again shortly"), {"Retry-After": "1"}
        )
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return problem_response(500, problem_body(500, "internal", "Internal error", request.path))
