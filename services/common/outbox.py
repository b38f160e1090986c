"""The transactional outbox and the event feed behind every service's ``WatchEvents``.

A service writes its domain events with ``record_event`` in the same unit of work as the state change;
``EventFeed.watch`` streams them to consumers in sequence order, at least once, from any cursor.
On PostgreSQL the insert takes a transaction-scoped advisory lock so that sequence numbers become
visible in order (a consumer's cursor never jumps over a row that commits later).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import String, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import BigIntPK, JsonType, UnitOfWork, UTCDateTime

_ADVISORY_KEY = 0x60B0_0001


class OutboxMixin:
    """Columns of a service's ``outbox`` table; each service maps it on its own Base."""

    sequence: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(80), index=True)
    aggregate_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class EventFeed:
    """Writes and streams one service's outbox."""

    def __init__(self, model: type[OutboxMixin], sessions: async_sessionmaker[AsyncSession]) -> None:
        self.model = model
        self._table: Table = model.__table__  # type: ignore[attr-defined]
        self._sessions = sessions
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake the watchers (called after a commit that wrote events)."""
        self._changed.set()

    async def record(
        self,
        uow: UnitOfWork,
        event_type: str,
        aggregate_id: str,
        payload: dict[str, Any],
        *,
        occurred_at: dt.datetime,
        request_id: str | None = None,
    ) -> None:
        session = uow.session
        if session.bind.dialect.name == "postgresql":
            with session.no_autoflush:  # pending inserts flush at commit, where run_idempotent retries races
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
        with session.no_autoflush:  # a Core insert: the row is written now, no ORM object
            await session.execute(
                insert(self._table).values(
                    event_type=event_type,
                    aggregate_id=aggregate_id,
                    payload=payload,
                    request_id=request_id,
                    occurred_at=occurred_at,
                )
            )
        uow.after_commit(self.notify)

    async def read(self, after_sequence: int, types: Sequence[str] = (), limit: int = 500) -> list[Any]:
        """Up to `limit` events after `after_sequence` in order: rows with the outbox's columns as
        attributes (plain rows, not ORM objects: a watcher reads each event once)."""
        table = self._table
        stmt = select(table).where(table.c.sequence > after_sequence).order_by(table.c.sequence).limit(limit)
        if types:
            stmt = stmt.where(table.c.event_type.in_(list(types)))
        async with self._sessions() as session:
            return list((await session.execute(stmt)).all())

    async def watch(
        self, after_sequence: int, types: Sequence[str] = (), *, poll_interval: float = 1.0
    ) -> AsyncIterator[Any]:
        """Yield every event after `after_sequence`, then keep following the outbox until cancelled.
        Events written by this process wake the watcher at once; others are found by polling."""
        cursor = after_sequence
        while True:
            self._changed.clear()
            rows = await self.read(cursor, types)
            for row in rows:
                cursor = row.sequence
                yield row
            if rows:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), poll_interval)
