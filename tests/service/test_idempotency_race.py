"""request_id idempotency when a duplicate of the same request commits while this one runs."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from govhub.common.v1 import common_pb2
from services.common.db import UnitOfWork, create_schema, dispose_engine, make_engine, session_factory
from services.common.errors import AlreadyExists
from services.common.idempotency import fingerprint, run_idempotent
from services.identity.store import Base, IdempotencyRecord

NOW = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
METHOD = "/test/Create"


def answer(text: str) -> common_pb2.Date:  # any message does as the stored answer
    return common_pb2.Date(year=2026, month=12, day=len(text))


async def test_a_refusal_caused_by_a_committed_duplicate_answers_with_the_duplicates_answer(
    db_url: str,
) -> None:
    engine = make_engine(db_url, pool_size=2)
    other = make_engine(db_url, pool_size=1)  # the duplicate's own connection
    try:
        await create_schema(engine, Base.metadata)
        sessions, others = session_factory(engine), session_factory(other)
        request = common_pb2.Event(request_id="5b7f3a9e-1d2c-4e8f-9a0b-123456789abc")
        winner = answer("winner")

        async def handler(uow: UnitOfWork) -> common_pb2.Date:
            # meanwhile the duplicate commits its change and its answer; this one is then refused by it
            async with others() as session, session.begin():
                await session.execute(
                    insert(IdempotencyRecord).values(
                        request_id=request.request_id,
                        method=METHOD,
                        fingerprint=fingerprint(METHOD, request),
                        response=winner.SerializeToString(),
                        created_at=NOW,
                    )
                )
            raise AlreadyExists("an application is still open")

        got = await run_idempotent(
            lambda: UnitOfWork(sessions),
            IdempotencyRecord,
            METHOD,
            request,
            common_pb2.Date,
            handler,
            lambda: NOW,
        )
        assert got == winner

        async def refusing(uow: UnitOfWork) -> common_pb2.Date:
            raise AlreadyExists("an application is still open")

        with pytest.raises(AlreadyExists):  # no duplicate answered: the refusal stands
            await run_idempotent(
                lambda: UnitOfWork(sessions),
                IdempotencyRecord,
                METHOD,
                common_pb2.Event(request_id="0c9d8e7f-6a5b-4c3d-8e2f-abcdefabcdef"),
                common_pb2.Date,
                refusing,
                lambda: NOW,
            )
    finally:
        await dispose_engine(other)
        await dispose_engine(engine)


async def test_an_answer_stored_after_the_callers_look_is_still_the_answer(db_url: str) -> None:
    """`unanswered`: the caller looked beside the writer and found no answer, so the unit of work does
    not look again; a duplicate's answer committed since is found at the insert of this one's, this
    one's change is rolled back and the duplicate's answer returned (or the request_id refused when the
    duplicate was a different request)."""
    from sqlalchemy import func, select

    from services.common.errors import InvalidArgument
    from services.identity.store import OutboxEvent

    engine = make_engine(db_url, pool_size=2)
    try:
        await create_schema(engine, Base.metadata)
        sessions = session_factory(engine)
        request = common_pb2.Event(request_id="7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
        winner = answer("winner")
        async with sessions() as session, session.begin():
            await session.execute(
                insert(IdempotencyRecord).values(
                    request_id=request.request_id,
                    method=METHOD,
                    fingerprint=fingerprint(METHOD, request),
                    response=winner.SerializeToString(),
                    created_at=NOW,
                )
            )

        async def handler(uow: UnitOfWork) -> common_pb2.Date:
            await uow.session.execute(
                insert(OutboxEvent).values(
                    event_type="Changed", aggregate_id="a", payload={}, occurred_at=NOW
                )
            )
            return answer("loser")

        async def run(req: common_pb2.Event) -> common_pb2.Date:
            return await run_idempotent(
                lambda: UnitOfWork(sessions), IdempotencyRecord, METHOD, req, common_pb2.Date, handler,
                lambda: NOW, unanswered=True,
            )  # fmt: skip

        assert await run(request) == winner
        other = common_pb2.Event(request_id=request.request_id, type="something else")
        with pytest.raises(InvalidArgument) as refused:
            await run(other)
        assert refused.value.violations[0].reason == "REUSED_WITH_DIFFERENT_REQUEST"
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    finally:
        await dispose_engine(engine)
