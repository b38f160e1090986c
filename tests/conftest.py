"""Shared fixtures: a database URL for each backend under test.

Store and service tests take ``db_url``: a fresh SQLite file always, and a fresh PostgreSQL database
as well when GOVHUB_TEST_POSTGRES_URL names a server (``.ci/run`` sets it, so CI covers both).

Property tests (Hypothesis) run under a settings profile: ``quick`` by default (``make test``: each test's
own small count, see ``examples``, derandomized so a failure reproduces), ``deep`` with
GOVHUB_HYPOTHESIS_PROFILE=deep (many more examples, fresh random ones each run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick", deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, stateful_step_count=15
)
settings.register_profile(
    "deep", settings.get_profile("quick"), max_examples=1000, derandomize=False, stateful_step_count=50
)
HYPOTHESIS_PROFILE = os.environ.get("GOVHUB_HYPOTHESIS_PROFILE", "quick")
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(quick: int) -> int:
    """A property test's example count: `quick` in the quick profile, the profile's own when deeper."""
    return quick if HYPOTHESIS_PROFILE == "quick" else max(quick, settings().max_examples)


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
