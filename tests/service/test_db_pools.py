"""The SQLite writer queue is bounded in time and reads run beside the writer (services.common.db)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.rpc import code_pb2, error_details_pb2
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import OperationalError

from services.common.db import (
    Overloaded,
    dispose_engine,
    make_engine,
    make_read_engine,
    session_factory,
)
from services.common.grpcserver import overloaded_status

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True))


async def _engines(tmp_path: Path, write_wait: float = 5.0):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", write_wait=write_wait)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(insert(things).values(id=1))
    return engine, make_read_engine(engine, readers=2)


async def test_a_unit_that_cannot_get_the_writer_in_time_is_refused(tmp_path: Path) -> None:
    engine, reader = await _engines(tmp_path, write_wait=0.05)
    sessions = session_factory(engine)
    try:
        async with sessions() as holder:
            await holder.execute(insert(things).values(id=2))  # holds the one write connection
            async with sessions() as waiting:
                with pytest.raises(Overloaded):
                    await waiting.execute(insert(things).values(id=3))
            await holder.commit()
        async with sessions() as after:  # the queue drains: the next unit gets the writer
            assert (await after.scalars(select(things.c.id).order_by(things.c.id))).all() == [1, 2]
    finally:
        await dispose_engine(reader)
        await dispose_engine(engine)


async def test_reads_do_not_wait_for_the_writer_and_see_only_committed_rows(tmp_path: Path) -> None:
    engine, reader = await _engines(tmp_path, write_wait=0.05)
    assert reader is not engine
    try:
        async with session_factory(engine)() as writing:
            await writing.execute(insert(things).values(id=2))
            await writing.flush()
            # The writer is checked out and its transaction open; readers answer anyway.
            async with session_factory(reader)() as reading:
                assert (await reading.scalars(select(things.c.id))).all() == [1]
            await writing.commit()
        async with session_factory(reader)() as reading:
            assert sorted((await reading.scalars(select(things.c.id))).all()) == [1, 2]
    finally:
        await dispose_engine(reader)
        await dispose_engine(engine)


async def test_the_read_pool_cannot_write(tmp_path: Path) -> None:
    engine, reader = await _engines(tmp_path)
    try:
        async with session_factory(reader)() as reading:
            with pytest.raises(OperationalError, match="readonly"):
                await reading.execute(insert(things).values(id=9))
    finally:
        await dispose_engine(reader)
        await dispose_engine(engine)


async def test_in_memory_and_server_databases_read_through_the_one_engine() -> None:
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert make_read_engine(engine) is engine
    finally:
        await dispose_engine(engine)


def test_overload_is_resource_exhausted_with_a_retry_delay() -> None:
    status = overloaded_status("identity")
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.reason == "OVERLOADED"
    assert status.details[1].Unpack(retry) and retry.retry_delay.seconds >= 1


async def test_the_writer_and_the_read_pool_are_both_traced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every statement is a span, the read pool's as well as the writer's (the instrumentor alone traces
    one engine a process and warns about the second)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    url = f"sqlite+aiosqlite:///{tmp_path / 'traced.sqlite'}"
    engine = make_engine(url, tracer_provider=provider)
    reader = make_read_engine(engine, readers=1, tracer_provider=provider)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(things).values(id=7))
        written = len(spans.get_finished_spans())
        async with reader.connect() as conn:
            assert (await conn.execute(select(things.c.id))).scalar_one() == 7
        read = [s for s in spans.get_finished_spans()[written:] if "SELECT" in s.name]
        assert written > 0 and read, [s.name for s in spans.get_finished_spans()]
    finally:
        await dispose_engine(reader)
        await dispose_engine(engine)
    assert "already instrumented" not in caplog.text
