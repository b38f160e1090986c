"""SQLite databases (and their -wal/-shm files) and keys are created readable by their owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from services.common.audit import write_audit_key
from services.common.db import dispose_engine, make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_sqlite_database_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "x.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (a INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        files = [p for p in path.parent.iterdir() if p.name.startswith("x.db")]
        assert {mode(p) for p in files} == {0o600}, {p.name: oct(mode(p)) for p in files}
    await dispose_engine(engine)


async def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await dispose_engine(engine)
    assert mode(path) == 0o600


def test_the_audit_key_is_0600(tmp_path: Path) -> None:
    assert write_audit_key(tmp_path / "audit.key")
    assert mode(tmp_path / "audit.key") == 0o600
