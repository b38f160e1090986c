"""The event consumers: with two gateways on one database each department event is applied once, and a
gateway that dies hands the stream over when its lease expires."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import pytest
from sqlalchemy import select

from gateway.cases import open_case
from gateway.catalogue import load_catalogue
from gateway.events import Event, EventConsumer, LeaseLost
from gateway.saga.runner import RunnerSettings, SagaRunner
from gateway.store import Base, Case, CaseStep, EventCursor
from services.common.clock import Clock
from services.common.db import create_schema, dispose_engine, make_engine, session_factory
from tests.fakes import FakeDepartment, accepting_identity
from tests.service.test_gateway_cases import VALID

DATA: dict[str, Any] = cast(dict[str, Any], VALID["data"])
LEASE = 3.0


class CountingRunner(SagaRunner):
    applied: list[tuple[str, str]]

    async def apply_event(self, session: Any, department: str, event_type: str, *args: Any) -> bool:
        self.applied.append((self.owner, event_type))
        return await super().apply_event(session, department, event_type, *args)


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - polls the database, which has no event
            await asyncio.sleep(0.05)


async def test_two_gateways_apply_each_event_once_and_take_over_from_a_dead_one(db_url: str) -> None:
    engine = make_engine(db_url)
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    identity = accepting_identity(FakeDepartment("identity"))
    departments = {"identity": identity}
    runners = []
    for owner in ("gw-a", "gw-b"):
        runner = CountingRunner(sessions, departments, clock, RunnerSettings(), owner=owner)
        runner.applied = []
        runners.append(runner)
    matter = load_catalogue()["id-card-renewal-cross-province"]
    case, _ = await open_case(sessions, clock, matter, DATA, {})
    await runners[0].drive(case.id)
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and step.resource_id
        resource = step.resource_id

    async def state() -> str:
        async with sessions() as session:
            return (await session.get_one(Case, case.id)).state

    # The lease is long enough that a holder starved of CPU on a loaded machine still renews it in time
    # (it renews every lease/3), and short enough that the take-over below comes within seconds.
    consumers = [EventConsumer(identity, r, sessions, clock, lease_seconds=LEASE) for r in runners]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        identity.emit("CardApplicationApproved", resource)
        await wait_for(lambda: _is(state, "APPROVED"))
        identity.emit("CardApplicationApproved", resource)  # a repeat, e.g. after a reconnect
        identity.emit("CardProduced", resource)
        await wait_for(lambda: _committed(sessions, len(identity.events)))  # every event, cursor moved
        applied = runners[0].applied + runners[1].applied
        assert [e for _, e in applied] == [
            "CardApplicationApproved",
            "CardApplicationApproved",
            "CardProduced",
        ]
        owners = {o for o, _ in applied}
        assert len(owners) == 1  # one gateway holds the stream
        holder = 0 if "gw-a" in owners else 1

        # The holder dies without a word (no release): the other takes over once the lease expires.
        tasks[holder].cancel()
        consumers[holder].release = _no_release  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[holder]
        identity.emit("CardReadyForPickup", resource)
        await wait_for(lambda: _is(state, "READY_FOR_PICKUP"), timeout=LEASE + 20)
        other = runners[1 - holder]
        assert [e for _, e in other.applied] == ["CardReadyForPickup"]
        assert [e for _, e in runners[holder].applied].count("CardReadyForPickup") == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dispose_engine(engine)


async def _committed(sessions: Any, sequence: int) -> bool:
    """The identity cursor stands at `sequence`: each event up to it applied and committed."""
    async with sessions() as session:
        cursor = await session.get(EventCursor, "identity")
        return cursor is not None and cursor.sequence >= sequence


async def _no_release() -> None:
    return None


async def _is(state: Any, expected: str) -> bool:
    return bool(await state() == expected)


async def test_a_rejection_event_brings_the_departments_reasons_to_the_case(db_url: str) -> None:
    engine = make_engine(db_url)
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    identity = accepting_identity(FakeDepartment("identity"))
    runner = SagaRunner(sessions, {"identity": identity}, clock, RunnerSettings())
    case, _ = await open_case(sessions, clock, load_catalogue()["id-card-renewal-cross-province"], DATA, {})
    await runner.drive(case.id)
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and step.resource_id
    consumer = EventConsumer(identity, runner, sessions, clock)
    task = asyncio.create_task(consumer.run())

    async def rejected() -> bool:
        async with sessions() as session:
            return (await session.get_one(Case, case.id)).state == "REJECTED"

    try:
        identity.emit(
            "CardApplicationRejected",
            step.resource_id,
            {"rejection_reason": "照片不符合要求", "rejection_code": "PHOTO_NOT_COMPLIANT"},
        )
        await wait_for(rejected)
        async with sessions() as session:
            fresh = await session.get_one(CaseStep, step.id)
        assert fresh.reason == "REJECTED_BY_DEPARTMENT"
        assert fresh.result["rejection"] == {"reasons": ["照片不符合要求"], "codes": ["PHOTO_NOT_COMPLIANT"]}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await dispose_engine(engine)


async def test_a_batch_of_events_is_applied_whole_or_not_at_all(db_url: str) -> None:
    engine = make_engine(db_url)
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    identity = accepting_identity(FakeDepartment("identity"))
    runner = SagaRunner(sessions, {"identity": identity}, clock, RunnerSettings())  # type: ignore[dict-item]
    matter = load_catalogue()["id-card-renewal-cross-province"]
    resources = []
    for _ in range(2):
        case, _ = await open_case(sessions, clock, matter, VALID["data"], {})
        await runner.drive(case.id)
        async with sessions() as session:
            step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
            assert step is not None and step.resource_id
            resources.append(step.resource_id)
    batch = [Event("CardApplicationApproved", r, sequence) for sequence, r in enumerate(resources, 1)]

    async def states() -> list[str]:
        async with sessions() as session:
            rows = await session.scalars(
                select(CaseStep.department_state).where(CaseStep.resource_id.in_(resources))
            )
            return sorted(rows)

    async def cursor() -> int:
        async with sessions() as session:
            return (await session.get_one(EventCursor, "identity")).sequence

    try:
        mine = EventConsumer(identity, runner, sessions, clock)  # type: ignore[arg-type]
        other = EventConsumer(identity, runner, sessions, clock)  # type: ignore[arg-type]
        other.owner = "another-gateway"
        assert await mine.acquire() == 0
        with pytest.raises(LeaseLost):  # the other gateway does not hold the stream: nothing applied
            await other.apply_batch(batch)
        assert await states() == ["ACCEPTED", "ACCEPTED"] and await cursor() == 0

        assert await mine.apply_batch(batch) == 2  # both cases moved, the cursor past the last once
        assert await states() == ["APPROVED", "APPROVED"] and await cursor() == 2
        with pytest.raises(LeaseLost):  # the same batch again (a repeat after a reconnect): refused whole
            await mine.apply_batch(batch)
    finally:
        await dispose_engine(engine)


class HeldIdentity(FakeDepartment):
    """Identity whose answers reach the gateway only once `let_go` is set (the events go first)."""

    def __init__(self) -> None:
        super().__init__("identity")
        self.created = asyncio.Event()
        self.let_go = asyncio.Event()

    async def call(self, method: str, request: Any, ctx: Any) -> Any:
        answer = await super().call(method, request, ctx)
        self.created.set()
        await self.let_go.wait()
        return answer


async def test_an_event_that_changes_nothing_waits_for_the_answer_and_moves_the_cursor_lazily(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    await create_schema(engine, Base.metadata)
    sessions = session_factory(engine)
    clock = Clock()
    identity = HeldIdentity()
    accepting_identity(identity)
    runner = CountingRunner(sessions, {"identity": identity}, clock, RunnerSettings())
    runner.applied = []
    case, _ = await open_case(sessions, clock, load_catalogue()["id-card-renewal-cross-province"], DATA, {})

    async def cursor() -> int:
        async with sessions() as session:
            return (await session.get_one(EventCursor, "identity")).sequence

    async def step() -> CaseStep:
        async with sessions() as session:
            found = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
            assert found is not None
            return found

    try:
        consumer = EventConsumer(identity, runner, sessions, clock)
        assert await consumer.acquire() == 0
        drive = asyncio.create_task(runner.drive(case.id))
        await identity.created.wait()  # identity has created the application; its answer is on the way
        ((request_id, answer),) = identity.answers.items()
        resource = answer.card_application.id
        submitted = Event("CardApplicationSubmitted", resource, 1, request_id, {"fee_fen": 2000})
        applying = asyncio.create_task(consumer.apply_batch([submitted]))
        await asyncio.sleep(0.1)
        assert not applying.done()  # the event waits for the answer this gateway is about to record
        identity.let_go.set()
        await drive
        assert await applying == 0
        recorded = await step()
        assert (recorded.resource_id, recorded.state, recorded.department_state) == (
            resource,
            "ACCEPTED",
            "ACCEPTED",
        )
        assert runner.applied == []  # the event said what the answer said: no transaction of its own
        assert await cursor() == 0  # ... and the cursor moved in memory only
        assert await consumer.acquire() == 1  # written at the lease's renewal
        assert await cursor() == 1

        repeat = Event("CardApplicationSubmitted", resource, 2, request_id, {"fee_fen": 2000})
        assert await consumer.apply_batch([repeat]) == 0
        await consumer.release()  # ... or when the consumer lets the stream go
        assert await cursor() == 2

        assert await consumer.acquire() == 2
        assert await consumer.apply_batch([Event("CardApplicationApproved", resource, 3)]) == 1
        assert (await step()).state == "APPROVED" and await cursor() == 3
        assert [e for _, e in runner.applied] == ["CardApplicationApproved"]
        unknown = Event("CardApplicationApproved", "not-yet-bound", 4)  # parked: written at once
        assert await consumer.apply_batch([unknown]) == 0 and await cursor() == 4
    finally:
        await dispose_engine(engine)
