"""Department decisions arrive as events: one ``WatchEvents`` consumer per department, with its cursor
persisted in the gateway's database in the same transaction as the step change it causes. After a
department restarts or the stream breaks, the consumer reconnects from its cursor; events it has
already applied are ignored by the saga runner's forward-only step transitions."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clients import Department, DepartmentError
from gateway.saga import SagaRunner
from gateway.store import EventCursor

log = structlog.get_logger("govhub.events")


async def load_cursor(sessions: async_sessionmaker[AsyncSession], department: str) -> int:
    async with sessions() as session:
        row = await session.get(EventCursor, department)
        return row.sequence if row else 0


async def consume(
    department: Department,
    runner: SagaRunner,
    sessions: async_sessionmaker[AsyncSession],
    *,
    reconnect_max: float = 10.0,
) -> None:
    """Follow one department's events for ever (until cancelled)."""
    delay = 0.2
    while True:
        cursor = await load_cursor(sessions, department.name)
        try:
            async for event in department.watch(cursor):
                delay = 0.2
                async with sessions() as session:
                    moved = await runner.apply_event(session, department.name, event.type, event.aggregate_id)
                    row = await session.get(EventCursor, department.name)
                    if row is None:
                        session.add(EventCursor(department=department.name, sequence=event.sequence))
                    else:
                        row.sequence = max(row.sequence, event.sequence)
                    await session.commit()
                if moved:
                    log.info("department event applied", department=department.name, event=event.type)
                    runner.wake()
        except DepartmentError as exc:
            log.info("event stream interrupted; reconnecting", department=department.name, error=exc.message)
        except Exception:
            log.exception("event consumer failed; reconnecting", department=department.name)
        await asyncio.sleep(delay)
        delay = min(reconnect_max, delay * 2)
