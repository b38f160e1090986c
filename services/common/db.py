"""Persistence shared by every process: one async engine per process, a unit of work per request.

SQLite (aiosqlite, WAL) is the embedded default; a ``postgresql+asyncpg://`` URL switches the same code to
PostgreSQL. SQLite has one writer: the engine of ``make_engine`` holds one connection, and every unit of
work queues for it. That queue is bounded in time: a unit that waits longer than `write_wait` seconds for
the connection fails at once with ``Overloaded`` (the services answer RESOURCE_EXHAUSTED, the gateway 503
with Retry-After) instead of joining a tail that grows without end under excess load. Reads need not wait
behind the writer at all: WAL lets readers run beside it, so ``make_read_engine`` gives a SQLite file a
small pool of read-only connections of its own (on PostgreSQL, and for an in-memory database, it answers
the one engine: its pool already serves reads concurrently).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import TracerProvider
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout
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


# The SQLite writer queue: how long a unit of work may wait for the one write connection.
WRITE_WAIT = 2.0
# Read-only connections beside the writer of a SQLite file (each is a thread of aiosqlite's).
SQLITE_READERS = 4

Overloaded = PoolTimeout
"""Raised by a unit of work that waited longer than its engine allows for a connection: the database is
saturated and the caller should retry later (``sqlalchemy.exc.TimeoutError``, the pool's own error)."""


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


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL, None for an in-memory database."""
    database = make_url(url).database
    return database if database and database != ":memory:" else None


def _sqlite_pragmas(engine: AsyncEngine, *, read_only: bool = False) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        cur.close()


# -- one thread hop per statement ----------------------------------------------------------------------
#
# aiosqlite runs every call on a connection in the connection's own thread: a job queued, the thread
# woken, a future set back on the event loop. SQLAlchemy's aiosqlite adapter makes four such calls for
# one SELECT (cursor, execute, fetchall, close) and three for an INSERT; on a busy machine each hop is two
# context switches, and a unit of work holds the one write connection through all of them. The adapter
# below runs the same four steps as one job on that thread (the rows, description, lastrowid and rowcount
# come back together), so a statement costs one hop. Server-side cursors (``stream``) are unchanged.


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _run(self, many: bool, operation: Any, parameters: Any) -> None:
        conn = self._connection  # the aiosqlite.Connection

        def job() -> tuple[Any, list[Any] | None, int | None, int]:
            cursor = conn._conn.cursor()
            try:
                if many:
                    cursor.executemany(operation, parameters)
                elif parameters is None:
                    cursor.execute(operation)
                else:
                    cursor.execute(operation, parameters)
                description = cursor.description
                rows = cursor.fetchall() if description else None
                return description, rows, cursor.lastrowid, cursor.rowcount
            finally:
                cursor.close()

        try:
            description, rows, lastrowid, rowcount = self.await_(conn._execute(job))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        if description:
            self.description = description
            self.lastrowid = self.rowcount = -1
            self._rows = collections.deque(rows or ())
        else:
            self.description = None
            self.lastrowid = lastrowid
            self.rowcount = rowcount

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(False, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(True, operation, seq_of_parameters)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """Also: no hop at all for a COMMIT or ROLLBACK with no transaction open (the Python sqlite3 module
    opens one only before a data change, so a read-only session's end, and the pool's rollback of a
    connection returned after a commit, have nothing to send). The connection is checked out by one
    coroutine and no job of its runs at the time, so its transaction flag can be read from here."""

    __slots__ = ()

    def _idle(self) -> bool:
        raw = self._connection._connection  # the sqlite3 connection, None once closed
        return raw is not None and not raw.in_transaction

    def commit(self) -> None:
        if not self._idle():
            super().commit()

    def rollback(self) -> None:
        if not self._idle():
            super().rollback()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        return AsyncAdapt_aiosqlite_ss_cursor(self) if server_side else _OneHopCursor(self)


class _OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        if type(adapted) is not AsyncAdapt_aiosqlite_connection:  # the sync fallback mode: as it is
            return adapted
        return _OneHopConnection(self, adapted._connection)


def _sqlite_dbapi() -> _OneHopDBAPI:
    import sqlite3

    import aiosqlite

    return _OneHopDBAPI(aiosqlite, sqlite3)


def _sqlite_engine(url: str, **kw: Any) -> AsyncEngine:
    return create_async_engine(url, module=_sqlite_dbapi(), **kw)


def _instrument(engine: AsyncEngine, tracer_provider: TracerProvider | None) -> None:
    # A provider that records nothing (``configure_tracing`` with no exporter) would only build and drop
    # a span for every statement: statements carry no trace context onward, so they are left alone.
    # Each engine gets its own tracer hooks (what ``SQLAlchemyInstrumentor().instrument(engine=...)``
    # builds): the instrumentor itself instruments once per process, so a second engine (the read pool)
    # would be left untraced with a warning.
    if tracer_provider is not None and getattr(tracer_provider, "sampler", None) is not ALWAYS_OFF:
        from opentelemetry.instrumentation.sqlalchemy import __name__ as scope
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import get_meter
        from opentelemetry.semconv.metrics import MetricInstruments

        usage = get_meter(scope).create_up_down_counter(
            name=MetricInstruments.DB_CLIENT_CONNECTIONS_USAGE, unit="connections"
        )
        EngineTracer(tracer_provider.get_tracer(scope), engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def make_engine(
    url: str,
    *,
    pool_size: int = 20,
    tracer_provider: TracerProvider | None = None,
    write_wait: float = WRITE_WAIT,
) -> AsyncEngine:
    """Create the process's one engine (on SQLite: its one writer, waited for at most `write_wait` s).
    Call inside the running event loop, never at import."""
    if is_sqlite(url):
        database = _sqlite_file(url)
        if database is not None:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(database))
            engine = _sqlite_engine(url, pool_size=1, max_overflow=0, pool_timeout=write_wait)
        else:
            engine = _sqlite_engine(url, poolclass=StaticPool)
        _sqlite_pragmas(engine)
    else:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    _instrument(engine, tracer_provider)
    return engine


def make_read_engine(
    engine: AsyncEngine,
    *,
    readers: int = SQLITE_READERS,
    tracer_provider: TracerProvider | None = None,
    read_wait: float = WRITE_WAIT,
) -> AsyncEngine:
    """The engine reads go through: for a SQLite file, `readers` read-only connections beside the
    writer `engine` (WAL: they never wait for it, and see every committed change); otherwise `engine`
    itself. Dispose of it with ``dispose_engine`` when it is not `engine`."""
    url = engine.url.render_as_string(hide_password=False)
    if not is_sqlite(url) or _sqlite_file(url) is None:
        return engine
    reader = _sqlite_engine(url, pool_size=readers, max_overflow=0, pool_timeout=read_wait)
    _sqlite_pragmas(reader, read_only=True)
    _instrument(reader, tracer_provider)
    return reader


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
    "SQLITE_READERS",
    "WRITE_WAIT",
    "BigIntPK",
    "JsonType",
    "Overloaded",
    "UTCDateTime",
    "UnitOfWork",
    "create_schema",
    "dispose_engine",
    "is_sqlite",
    "make_engine",
    "make_read_engine",
    "new_id",
    "ping",
    "session_factory",
]
