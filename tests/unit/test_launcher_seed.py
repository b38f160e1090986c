"""``make run`` loads the demo population into each residence database it starts on once: a first start
on SQLite does not leave a later start on PostgreSQL (same var directory) with an empty register."""

from __future__ import annotations

from pathlib import Path

from deploy.launcher import mark_seeded, seeded

SQLITE = "sqlite+aiosqlite:///var/residence.db"
POSTGRES = "postgresql+asyncpg://govhub:s3cret@127.0.0.1:5432/govhub_residence"


def test_a_database_is_seeded_once(tmp_path: Path) -> None:
    marker = tmp_path / ".seeded"
    assert not seeded(marker, SQLITE)
    mark_seeded(marker, SQLITE)
    assert seeded(marker, SQLITE)


def test_another_residence_database_is_seeded_too(tmp_path: Path) -> None:
    marker = tmp_path / ".seeded"
    mark_seeded(marker, SQLITE)
    assert not seeded(marker, POSTGRES)
    mark_seeded(marker, POSTGRES)
    assert seeded(marker, SQLITE) and seeded(marker, POSTGRES)


def test_the_marker_holds_no_database_url(tmp_path: Path) -> None:
    marker = tmp_path / ".seeded"
    mark_seeded(marker, POSTGRES)
    assert "s3cret" not in marker.read_text() and "postgresql" not in marker.read_text()


def test_a_marker_of_an_earlier_version_seeds_again(tmp_path: Path) -> None:
    marker = tmp_path / ".seeded"
    marker.write_text("seeded\n")  # the seed is idempotent: loading again adds nothing
    assert not seeded(marker, SQLITE)
