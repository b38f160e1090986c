"""How long the saga's due query and lease-recovery query take behind a backlog of waiting steps.

    .venv/bin/python -m tests.perf.due_query [DATABASE_URL ...]

Seeds foreign-employee cases whose residence-permit step waits for its work permit's decision (two
waiting steps a case: the work permit under review, the residence permit not ready), in bulk, at 10,000
and 100,000 waiting steps, plus one due step; then times the runner's own queries (median of 20).
Default database: a temporary SQLite file. Pass a PostgreSQL server URL (postgresql+asyncpg://.../postgres)
to measure there too: a scratch database is created on it for the run and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import delete, text

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
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    await _seed_backlog(sessions, waiting_steps // 2, clock.now())
    await open_case(sessions, clock, load_catalogue()["id-card-renewal-cross-province"], VALID["data"], {})
    async with engine.connect() as conn:  # as the database's own statistics job would after the load
        await conn.execute(text("ANALYZE"))
        await conn.commit()
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


async def _scratch_postgres(server: str) -> tuple[str, str]:
    import asyncpg

    name = f"govhub_due_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server.rsplit('/', 1)[0]}/{name}", name


async def _drop_postgres(server: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main(urls: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite+aiosqlite:///{Path(tmp) / 'due.db'}", *urls]
        for server in urls:
            backend = server.split(":", 1)[0]
            url, scratch = (
                (await _scratch_postgres(server)) if backend.startswith("postgresql") else (server, "")
            )
            for waiting in (10_000, 100_000):
                try:
                    median, worst = await measure(url, waiting)
                finally:
                    if scratch and waiting == 100_000:
                        await _drop_postgres(server, scratch)
                print(f"{backend:24} {waiting:>7} waiting steps: median {median:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
