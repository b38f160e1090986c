"""Persistence shared by every process: one async engine per process, a unit of work per request.

SQLite (aiosqlite, WAL, one connection: SQLite has one writer and a larger pool only queues on its
lock) is the embedded default; a ``postgresql+asyncpg://`` URL switches the same code to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from opentelemetry.trace import TracerProvider
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A BIGINT primary key that SQLite still treats as its autoincrementing rowid.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600) before SQLite opens it; SQLite gives
    its -wal and -shm files the database file's mode. An existing file is narrowed to 0600 as well."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def make_engine(
    url: str, *, pool_size: int = 20, tracer_provider: TracerProvider | None = None
) -> AsyncEngine:
    """Create the process's one engine. Call inside the running event loop, never at import."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(database))
            engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=30)
        else:
            engine = create_async_engine(url, poolclass=StaticPool)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    else:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    if tracer_provider is not None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=tracer_provider)
    return engine


async def create_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    """Create the missing tables of a throwaway `metadata` (tests, benchmarks). A process's own database is
    never made this way: its schema is Alembic's (``services.common.migrate.prepare_schema`` at start)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def dispose_engine(engine: AsyncEngine, drain_limit: float = 5.0) -> None:
    """Dispose of the engine once every pooled connection is back (at most `drain_limit` s).

    An RPC cancelled in the middle of a query (a WatchEvents client going away) leaves its connection
    closing in a shielded task; with aiosqlite 0.22 that close never finishes if the engine is disposed
    and the loop torn down first, and the process hangs on exit (wapiti-scanner/wapiti#802)."""
    checkedout = getattr(engine.pool, "checkedout", None)
    if checkedout is not None:
        deadline = time.monotonic() + drain_limit
        while checkedout() > 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - the pool has no event for it
            await asyncio.sleep(0.01)
    await engine.dispose()


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


class UnitOfWork:
    """One AsyncSession for one unit of work; rolled back unless ``commit()`` was called."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.session: AsyncSession
        self._hooks: list[Any] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._hooks = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    def after_commit(self, hook: Any) -> None:
        """Run `hook()` (sync) once this unit has committed, e.g. to wake event watchers."""
        self._hooks.append(hook)

    async def commit(self) -> None:
        await self.session.commit()
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


__all__ = [
    "NAMING",
    "BigIntPK",
    "JsonType",
    "UTCDateTime",
    "UnitOfWork",
    "create_schema",
    "dispose_engine",
    "is_sqlite",
    "make_engine",
    "new_id",
    "ping",
    "session_factory",
]
