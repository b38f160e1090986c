"""``services.common.assemble``: the one build sequence of the three department services, and that
everything it opened is closed when a later step fails, or at stop once built."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import services.common.assemble as assemble_module
from services.common.assemble import Parts, assemble
from services.common.grpcserver import PortInUse, serve
from services.common.settings import CommonSettings, ServiceSettings
from services.permits.server import PERMITS
from services.permits.servicer import PermitsServicer
from services.residence.server import RESIDENCE


def _settings(tmp_path: Path, service: str, port: int = 0) -> ServiceSettings:
    return ServiceSettings(
        service=service,
        host="127.0.0.1",
        port=port,
        database_url=f"sqlite+aiosqlite:///{tmp_path / service}.db",
        common=CommonSettings(auto_migrate="auto"),
    )


@pytest.fixture
def disposed(monkeypatch: pytest.MonkeyPatch) -> list[AsyncEngine]:
    """The engines the assembler disposed of, in order (each still really disposed)."""
    seen: list[AsyncEngine] = []
    real = assemble_module.dispose_engine

    async def recording(engine: AsyncEngine, drain_limit: float = 5.0) -> None:
        seen.append(engine)
        await real(engine, drain_limit)

    monkeypatch.setattr(assemble_module, "dispose_engine", recording)
    return seen


async def test_a_built_service_closes_what_it_opened_in_reverse_order_at_stop(
    tmp_path: Path, disposed: list[AsyncEngine]
) -> None:
    closed: list[str] = []
    made: dict[str, Any] = {}

    async def servicer(parts: Parts) -> PermitsServicer:
        made["ctx"] = parts.ctx

        async def close() -> None:
            closed.append("client")

        parts.closers.push_async_callback(close)
        return PermitsServicer(parts.ctx)

    service = await assemble(PERMITS, _settings(tmp_path, "permits"), servicer)
    assert service.port > 0 and service.name == "permits"
    assert PERMITS.service_name in service.service_names
    ctx = made["ctx"]
    # A SQLite file: the reads go through read-only connections of their own.
    assert ctx.read_sessions is not None and ctx.read_sessions.kw["bind"] is not ctx.engine
    assert disposed == [] and closed == []
    await service.start()
    await service.stop(0)
    assert closed == ["client"]
    assert disposed == [ctx.read_sessions.kw["bind"], ctx.engine]


async def test_a_failing_department_start_up_closes_everything_opened_before_it(
    tmp_path: Path, disposed: list[AsyncEngine]
) -> None:
    closed: list[str] = []

    async def servicer(parts: Parts) -> PermitsServicer:
        async def close() -> None:
            closed.append("client")

        parts.closers.push_async_callback(close)
        raise RuntimeError("the catalogue did not load")

    with pytest.raises(RuntimeError, match="catalogue"):
        await assemble(RESIDENCE, _settings(tmp_path, "residence"), servicer)
    assert closed == ["client"]
    assert len(disposed) == 2  # the reader, then the writer


async def test_a_taken_port_closes_the_servicers_clients_and_both_engines(
    tmp_path: Path, disposed: list[AsyncEngine]
) -> None:
    closed: list[str] = []
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:

        async def servicer(parts: Parts) -> PermitsServicer:
            async def close() -> None:
                closed.append("client")

            parts.closers.push_async_callback(close)
            parts.background.append(lambda: pytest.fail("no background job runs for a service never built"))
            return PermitsServicer(parts.ctx)

        with pytest.raises(PortInUse, match="port in use"):
            await assemble(PERMITS, _settings(tmp_path, "permits", blocker.getsockname()[1]), servicer)
    finally:
        blocker.close()
    assert closed == ["client"]
    assert len(disposed) == 2


async def test_a_taken_probe_port_at_serve_closes_what_the_service_owns(
    tmp_path: Path, disposed: list[AsyncEngine]
) -> None:
    async def servicer(parts: Parts) -> PermitsServicer:
        return PermitsServicer(parts.ctx)

    service = await assemble(PERMITS, _settings(tmp_path, "permits"), servicer)
    service.probe_address = ("127.0.0.1", service.port)  # the main port: taken
    with pytest.raises(PortInUse, match="probe"):
        await serve(service, 0)
    assert len(disposed) == 2
