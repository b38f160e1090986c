"""How long the saga's due query and lease-recovery query take behind a backlog of waiting steps.

    .venv/bin/python -m tests.perf.due_query [DATABASE_URL ...]

Seeds foreign-employee cases whose residence-permit step waits for its work permit's decision (two
waiting steps a case: the work permit under review, the residence permit not ready), in bulk, at 10,000
and 100,000 waiting steps, plus one due step; then times the runner's own queries (median of 20).
Default database: a temporary SQLite file; pass a PostgreSQL URL (postgresql+asyncpg://...) as well.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import delete

from gateway.cases import open_case
from gateway.catalogue import load_catalogue
from gateway.saga.runner import RunnerSettings, SagaRunner
from gateway.store import Base, Case, CaseStep
from services.common.clock import Clock
from services.common.db import create_schema, dispose_engine, make_engine, session_factory
from tests.service.test_gateway_cases import VALID
from tests.service.test_saga_runner import _seed_backlog


async def measure(url: str, waiting_steps: int) -> tuple[float, float]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    await _seed_backlog(sessions, waiting_steps // 2, clock.now())
    await open_case(sessions, clock, load_catalogue()["id-card-renewal-cross-province"], VALID["data"], {})
    runner = SagaRunner(sessions, {}, clock, RunnerSettings())
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        due = await runner._due_steps(None)
        timings.append(time.perf_counter() - started)
        assert len(due) == 1, len(due)
    async with sessions() as session:  # leave the database as found
        await session.execute(delete(CaseStep))
        await session.execute(delete(Case))
        await session.commit()
    await dispose_engine(engine)
    return statistics.median(timings) * 1000, max(timings) * 1000


async def main(urls: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        urls = urls or [f"sqlite+aiosqlite:///{Path(tmp) / f'due-{uuid.uuid4().hex[:6]}.db'}"]
        for url in urls:
            backend = url.split(":", 1)[0]
            for waiting in (10_000, 100_000):
                median, worst = await measure(url, waiting)
                print(f"{backend:24} {waiting:>7} waiting steps: median {median:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
