"""Department decisions arrive as events: one ``WatchEvents`` consumer per department, with its cursor
persisted in the gateway's database in the same transaction as the step changes it causes. The events
that arrive while one transaction is being written are applied together in the next (up to BATCH), the
cursor moved once past the last of them.

With several gateways on one database, a department's stream is consumed by one gateway at a time: the
cursor row carries a lease (owner, expiry) that the consumer takes, renews while it follows the stream,
and checks in the very transaction that applies each batch of events. A gateway that dies loses the
lease when it expires and another takes over from the cursor, so each event is applied once. After a
department restarts or the stream breaks, the consumer reconnects from its cursor; the saga runner's
forward-only step transitions make a repeated event harmless as well.

An event about a record this gateway's runner has just asked for (its request_id is a call in flight)
usually arrives before the call's answer is written: the batch waits for that answer (`ANSWER_WAIT` at
most), so that the event is not applied to a step still waiting for it. A batch that would change
nothing then (`SagaRunner.unchanged_by`: e.g. identity's ``CardApplicationSubmitted`` once the answer it
repeats is recorded) costs one read and no transaction: the cursor moves past it in memory and is
written with the next batch that changes something, at the next lease renewal, or on release. A gateway
that dies before then has the next holder read those events again, each applied to the steps as they
stand then.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from google.protobuf.json_format import MessageToDict
from sqlalchemy import CursorResult, case, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clients import Department, DepartmentError
from gateway.saga.runner import SagaRunner, write_again
from gateway.store import EventCursor
from services.common.clock import Clock

log = structlog.get_logger("govhub.events")


BATCH = 64  # events applied in one transaction at most
ANSWER_WAIT = 1.0  # seconds an event waits for this gateway to record the answer of the call it follows


class LeaseLost(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Event:
    """One department event, as the consumer applies it."""

    type: str
    aggregate_id: str
    sequence: int
    request_id: str = ""
    data: dict[str, Any] | None = None


class EventConsumer:
    def __init__(
        self,
        department: Department,
        runner: SagaRunner,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        lease_seconds: float = 15.0,
        reconnect_max: float = 10.0,
    ) -> None:
        self.department = department
        self.runner = runner
        self.sessions = sessions
        self.clock = clock
        self.owner = runner.owner
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.reconnect_max = reconnect_max
        self.state = "starting"  # following | standby (another gateway holds it) | reconnecting
        self.last_seen: dt.datetime | None = None  # when the last event arrived
        self.made_ready = False  # whether the last batch applied made a step ready
        # where this consumer, holding the lease, knows the cursor to stand; `_unwritten`: past the
        # database's by batches that changed nothing
        self._position: int | None = None
        self._unwritten = False
        self.task: asyncio.Task[None] | None = None  # the task running `run`, when the app started one

    def _unwritten_cursor(self) -> dict[str, Any]:
        """The cursor's move past batches that changed nothing, not yet written (never backwards)."""
        if not self._unwritten or self._position is None:
            return {}
        return {
            "sequence": case(
                (EventCursor.sequence < self._position, self._position), else_=EventCursor.sequence
            )
        }

    async def acquire(self) -> int | None:
        """Take (or renew) the lease; the cursor when this gateway holds it, None when another does."""
        now = self.clock.now()
        name = self.department.name
        values: dict[str, Any] = {
            "owner": self.owner,
            "lease_until": now + self.lease,
            **self._unwritten_cursor(),
        }
        async with self.sessions() as session:
            if await session.get(EventCursor, name) is None:
                session.add(EventCursor(department=name, sequence=0))
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
            result = await session.execute(
                update(EventCursor)
                .where(
                    EventCursor.department == name,
                    or_(
                        EventCursor.owner.is_(None),
                        EventCursor.owner == self.owner,
                        EventCursor.lease_until < now,
                    ),
                )
                .values(**values)
                .returning(EventCursor.sequence)
            )
            sequence = result.scalar_one_or_none()
            await session.commit()
        self._position, self._unwritten = sequence, False
        return sequence

    async def release(self) -> None:
        values: dict[str, Any] = {"owner": None, "lease_until": None, **self._unwritten_cursor()}
        async with self.sessions() as session:
            await session.execute(
                update(EventCursor)
                .where(EventCursor.department == self.department.name, EventCursor.owner == self.owner)
                .values(**values)
            )
            await session.commit()
        self._position, self._unwritten = None, False

    async def apply(
        self,
        event_type: str,
        aggregate_id: str,
        sequence: int,
        request_id: str = "",
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Apply one event (see `apply_batch`)."""
        return await self.apply_batch([Event(event_type, aggregate_id, sequence, request_id, data)]) > 0

    async def apply_batch(self, events: Sequence[Event]) -> int:
        """Apply `events` (in sequence order, each after the cursor) and move the cursor past the last
        of them in one transaction, only while holding the lease; returns how many moved a step. A lost
        race with the runner over a case (StaleDataError) tries the whole batch again from the database.
        A batch that would change nothing, right after where this consumer knows the cursor to stand, is
        not written (see the module's note)."""
        if self._position is not None and events[0].sequence > self._position:
            await self.runner.answered([e.request_id for e in events if e.request_id], ANSWER_WAIT)
            counted = await self.runner.unchanged_by(
                self.department.name, [(e.type, e.aggregate_id, e.request_id, e.data) for e in events]
            )
            if counted is not None:
                self._position, self._unwritten, self.made_ready = events[-1].sequence, True, False
                return counted
        moved = await write_again(self.sessions, lambda session: self._apply_once(session, events))
        self._position, self._unwritten = events[-1].sequence, False
        return moved

    async def _apply_once(self, session: AsyncSession, events: Sequence[Event]) -> int:
        now = self.clock.now()
        held = await session.execute(
            update(EventCursor)
            .where(
                EventCursor.department == self.department.name,
                EventCursor.owner == self.owner,
                EventCursor.sequence < events[0].sequence,
            )
            .values(sequence=events[-1].sequence, lease_until=now + self.lease)
        )
        if cast("CursorResult[Any]", held).rowcount != 1:
            raise LeaseLost  # rolled back as the session closes
        moved = 0
        for event in events:
            if await self.runner.apply_event(
                session,
                self.department.name,
                event.type,
                event.aggregate_id,
                event.request_id,
                event.sequence,
                event.data,
            ):
                moved += 1
                log.info("department event applied", department=self.department.name, event_type=event.type)
        self.made_ready = SagaRunner.made_ready(session)
        return moved

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            if await self.acquire() is None:
                raise LeaseLost

    async def _follow(self, cursor: int) -> None:
        """Read the stream in a task of its own and apply what has arrived: the events that came while
        the last batch was being written (up to BATCH) go together in the next transaction."""
        # an event, the stream's failure, or None when it ended
        arrived: asyncio.Queue[Event | Exception | None] = asyncio.Queue(maxsize=2 * BATCH)

        async def read() -> None:
            try:
                async for event in self.department.watch(cursor):
                    data = MessageToDict(event.data) if event.HasField("data") else None
                    await arrived.put(
                        Event(event.type, event.aggregate_id, event.sequence, event.request_id, data)
                    )
            except Exception as exc:
                await arrived.put(exc)
            else:
                await arrived.put(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                batch: list[Event] = []
                item = await arrived.get()
                while isinstance(item, Event):
                    if item.sequence > (batch[-1].sequence if batch else cursor):  # not a repeat
                        batch.append(item)
                    if len(batch) >= BATCH or arrived.empty():
                        break
                    item = arrived.get_nowait()
                if batch:
                    self.last_seen = self.clock.now()
                    if await self.apply_batch(batch) and self.made_ready:
                        self.runner.wake()  # a step the batch made ready is taken up now
                    cursor = batch[-1].sequence
                if isinstance(item, Exception):
                    raise item
                if item is None:  # the stream ended: reconnect from the cursor
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def run(self) -> None:
        """Follow the department's events for ever (until cancelled)."""
        delay = 0.2
        try:
            while True:
                cursor = await self.acquire()
                if cursor is None:  # another gateway consumes this department
                    self.state = "standby"
                    await asyncio.sleep(self.lease.total_seconds() / 3)
                    continue
                self.state = "following"
                follow = asyncio.create_task(self._follow(cursor))
                renew = asyncio.create_task(self._renew())
                try:
                    done, _ = await asyncio.wait({follow, renew}, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                    delay = 0.2
                except LeaseLost:
                    log.info("event lease lost to another gateway", department=self.department.name)
                except DepartmentError as exc:
                    log.info(
                        "event stream interrupted; reconnecting",
                        department=self.department.name,
                        error=exc.message,
                    )
                except Exception:
                    log.exception("event consumer failed; reconnecting", department=self.department.name)
                finally:
                    for task in (follow, renew):
                        task.cancel()
                    for task in (follow, renew):
                        with contextlib.suppress(BaseException):
                            await task
                self.state = "reconnecting"
                await asyncio.sleep(delay)
                delay = min(self.reconnect_max, delay * 2)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release())
