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
