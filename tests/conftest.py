"""Shared fixtures: a database URL for each backend under test.

Store and service tests take ``db_url``: a fresh SQLite file always, and a fresh PostgreSQL database
as well when GOVHUB_TEST_POSTGRES_URL names a server (``.ci/run`` sets it, so CI covers both).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

POSTGRES_URL = os.environ.get("GOVHUB_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if POSTGRES_URL else ["sqlite"]


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(params=BACKENDS)
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    import asyncpg

    name = f"govhub_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
