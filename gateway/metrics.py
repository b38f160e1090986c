"""Prometheus metrics of one gateway: requests by route, method and status, latency histograms, and —
read from the gateway's own tables at each scrape — cases by state, steps by state and saga retries."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import Case, CaseStep

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "govhub_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "govhub_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.cases = Gauge("govhub_cases", "Cases by state", ["state"], registry=self.registry)
        self.steps = Gauge(
            "govhub_case_steps",
            "Case steps by department and state",
            ["department", "state"],
            registry=self.registry,
        )
        self.retries = Gauge(
            "govhub_saga_retries",
            "Department calls the saga repeated (attempts beyond the first), by department",
            ["department"],
            registry=self.registry,
        )

        self.department_up = Gauge(
            "govhub_department_up",
            "Whether the department answered its last health check (1) or not (0)",
            ["department"],
            registry=self.registry,
        )
        self.operator_faults = Counter(
            "govhub_department_operator_faults",
            "Calls a department refused the gateway itself (PERMISSION_DENIED / UNAUTHENTICATED): fix grants "
            "or certificates",
            ["department"],
            registry=self.registry,
        )

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.latency.labels(route, request.method).observe(time.perf_counter() - started)
                self.requests.labels(route, request.method, str(status)).inc()

        return measure

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as session:
            by_state = (await session.execute(select(Case.state, func.count()).group_by(Case.state))).all()
            steps = (
                await session.execute(
                    select(
                        CaseStep.department,
                        CaseStep.state,
                        func.count(),
                        func.sum(sql_case((CaseStep.attempts > 1, CaseStep.attempts - 1), else_=0)),
                    ).group_by(CaseStep.department, CaseStep.state)
                )
            ).all()
        self.cases.clear()
        for state, count in by_state:
            self.cases.labels(state).set(count)
        self.steps.clear()
        self.retries.clear()
        retries: dict[str, int] = {}
        for department, state, count, repeated in steps:
            self.steps.labels(department, state).set(count)
            retries[department] = retries.get(department, 0) + int(repeated or 0)
        for department, repeated in retries.items():
            self.retries.labels(department).set(repeated)

    def render(self) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
