"""Schema migrations (services/common/migrate.py): every database's revisions from empty match its models on
SQLite and PostgreSQL; the start-up rule (GOVHUB_AUTO_MIGRATE) refuses what it may not migrate and names the
command; ``check`` reports an out-of-date database; a pre-migration database is adopted only if it matches."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.migrate import DATABASES, main
from gateway.app import create_app
from services.common.db import create_schema, dispose_engine, make_engine
from services.common.migrate import (
    Database,
    SchemaNotCurrent,
    alembic_config,
    auto_migrate_mode,
    check,
    prepare_schema,
    schema_state,
    upgrade,
)
from services.common.settings import CommonSettings, ServiceSettings
from services.identity import server as identity_server
from services.identity.server import build_server
from tests.service.gateway_support import settings as gateway_settings

HINT = "python -m deploy.migrate upgrade"
# The identity revisions' head as released (a test revision is added after it).
RELEASED_HEAD = (
    ScriptDirectory(
        str(Path(__file__).resolve().parents[2] / "services" / "identity" / "migrations")
    ).get_current_head()
    or ""
)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url, pool_size=2)
    yield engine
    await dispose_engine(engine)


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.parametrize("name", list(DATABASES))
async def test_every_revision_from_empty_matches_the_models_and_downgrades_to_nothing(
    engine: AsyncEngine, name: str
) -> None:
    before, after = await upgrade(engine, DATABASES[name])
    assert before.empty and after.at_head
    state, differences = await check(engine, DATABASES[name])
    assert state.at_head and differences == []
    assert await tables(engine) == {*DATABASES[name].metadata().tables, "alembic_version"}

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(DATABASES[name], c), "base"))
    assert await tables(engine) <= {"alembic_version"}
    assert (await schema_state(engine, DATABASES[name])).empty


def service_settings(db_url: str, auto_migrate: str) -> ServiceSettings:
    return ServiceSettings(
        service="identity",
        host="127.0.0.1",
        port=0,
        database_url=db_url,
        common=CommonSettings(auto_migrate=auto_migrate),
    )


@pytest.fixture
def identity_with_a_new_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The identity environment with one more revision (9999, a nullable column) after the released head:
    a database at that head is then one release behind, as after deploying a release whose migrations
    have not run."""
    scripts = tmp_path / "migrations"
    source = Path(__file__).resolve().parents[2] / "services" / "identity" / "migrations"
    shutil.copytree(source, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_card_note.py").write_text(
        textwrap.dedent(
            '''\
            """A note on each card (test only)."""

            import sqlalchemy as sa
            from alembic import op

            revision = "9999"
            down_revision = "RELEASED_HEAD"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                with op.batch_alter_table("cards") as batch_op:
                    batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


            def downgrade() -> None:
                with op.batch_alter_table("cards") as batch_op:
                    batch_op.drop_column("note")
            '''
        ).replace("RELEASED_HEAD", RELEASED_HEAD)
    )

    class Moved(Database):
        @property
        def script_location(self) -> str:
            return str(scripts)

    moved = Moved(**{f.name: getattr(DATABASES["identity"], f.name) for f in dataclasses.fields(Database)})
    monkeypatch.setitem(DATABASES, "identity", moved)
    monkeypatch.setattr(
        "services.identity.server.IDENTITY", dataclasses.replace(identity_server.IDENTITY, database=moved)
    )
    return moved


async def test_a_service_refuses_a_database_behind_head_and_names_the_command(
    db_url: str,
    engine: AsyncEngine,
    identity_with_a_new_revision: Database,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with engine.begin() as conn:  # the database as the previous release left it
        await conn.run_sync(
            lambda c: command.upgrade(alembic_config(identity_with_a_new_revision, c), RELEASED_HEAD)
        )

    # PostgreSQL's default (auto) refuses a database behind head; on SQLite auto upgrades, so ask for off.
    mode = "off" if db_url.startswith("sqlite") else "auto"
    with pytest.raises(SchemaNotCurrent) as refused:
        await build_server(service_settings(db_url, mode))
    message = str(refused.value)
    assert "identity database" in message and f"at {RELEASED_HEAD}, behind head 9999" in message
    assert "make migrate" in message and f"{HINT} identity" in message
    assert (await schema_state(engine, DATABASES["identity"])).revisions == (RELEASED_HEAD,)  # unchanged

    code = await asyncio.to_thread(main, ["check", "identity"], {"GOVHUB_IDENTITY_DATABASE_URL": db_url})
    out = capsys.readouterr().out
    assert code == 1 and f"identity: OUT OF DATE: at {RELEASED_HEAD}, behind head 9999" in out and HINT in out

    service = await build_server(service_settings(db_url, "on"))  # GOVHUB_AUTO_MIGRATE=on upgrades at start
    await service.stop(0)
    assert (await schema_state(engine, DATABASES["identity"])).at_head

    code = await asyncio.to_thread(main, ["current", "identity"], {"GOVHUB_IDENTITY_DATABASE_URL": db_url})
    assert code == 0 and "identity: at head 9999" in capsys.readouterr().out


async def test_off_refuses_even_an_empty_database_and_auto_creates_it(
    db_url: str, engine: AsyncEngine
) -> None:
    with pytest.raises(SchemaNotCurrent, match=rf"permits database .* is empty .*{HINT} permits"):
        await prepare_schema(engine, DATABASES["permits"], "off")
    assert await tables(engine) == set()
    await prepare_schema(
        engine, DATABASES["permits"], "auto"
    )  # SQLite: upgrade; PostgreSQL: an empty database only
    assert (await schema_state(engine, DATABASES["permits"])).at_head


def test_auto_means_upgrade_on_sqlite_and_create_only_empty_on_postgresql() -> None:
    assert auto_migrate_mode("sqlite+aiosqlite:///var/x.db", "auto") == "on"
    assert auto_migrate_mode("postgresql+asyncpg://h/db", "auto") == "empty"
    assert auto_migrate_mode("postgresql+asyncpg://h/db", "on") == "on"
    assert auto_migrate_mode("sqlite+aiosqlite:///var/x.db", "off") == "off"


async def test_a_revision_this_release_does_not_know_is_refused_whatever_the_setting(
    engine: AsyncEngine,
) -> None:
    await upgrade(engine, DATABASES["permits"])
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    for mode in ("on", "auto", "off"):
        with pytest.raises(SchemaNotCurrent, match="0099, which this release does not know"):
            await prepare_schema(engine, DATABASES["permits"], mode)


async def test_the_gateway_refuses_to_start_on_a_database_it_may_not_migrate(
    db_url: str, engine: AsyncEngine
) -> None:
    await upgrade(engine, DATABASES["gateway"])
    async with engine.begin() as conn:  # tables without a migration history
        await conn.execute(text("DELETE FROM alembic_version"))
    app = create_app(dataclasses.replace(gateway_settings(db_url), common=CommonSettings(auto_migrate="off")))
    runner = web.AppRunner(app)
    with pytest.raises(SchemaNotCurrent, match=rf"gateway database .* no migration history .*{HINT} gateway"):
        await runner.setup()
    await runner.cleanup()


async def test_a_pre_migration_database_is_adopted_only_if_it_matches_the_models(
    db_url: str, engine: AsyncEngine
) -> None:
    residence = DATABASES["residence"].metadata()
    await create_schema(engine, residence)  # as every process made its schema before migrations
    before, after = await upgrade(engine, DATABASES["residence"])
    assert before.unversioned and after.at_head

    async with engine.begin() as conn:  # the same database, cleared, as identity's before the address record
        await conn.run_sync(residence.drop_all)
        await conn.execute(text("DROP TABLE alembic_version"))
        await conn.run_sync(DATABASES["identity"].metadata().create_all)
        for column in ("address_region_code", "address", "address_recorded_on"):
            await conn.execute(text(f"ALTER TABLE cards DROP COLUMN {column}"))
    with pytest.raises(SchemaNotCurrent, match=r"no migration history, and its schema differs .*cards"):
        await upgrade(engine, DATABASES["identity"])
    with pytest.raises(SchemaNotCurrent, match=r"identity database .* differs"):
        await build_server(service_settings(db_url, "on"))
    assert not (await schema_state(engine, DATABASES["identity"])).revisions  # left as it was


# -- at head without Alembic ---------------------------------------------------------------------------------

AT_HEAD_AT_START = """
import asyncio, sys
from services.common.db import dispose_engine, make_engine
from services.common.migrate import prepare_schema
from services.permits.migrations import DATABASE

async def start() -> None:
    engine = make_engine(sys.argv[1], pool_size=1)
    try:
        await prepare_schema(engine, DATABASE, "off")  # off: anything but head is refused
    finally:
        await dispose_engine(engine)

asyncio.run(start())
print(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako"}))
"""


@pytest.mark.parametrize("name", list(DATABASES))
def test_the_head_read_from_the_scripts_is_alembics(name: str) -> None:
    database = DATABASES[name]
    assert database.head() == ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def test_the_head_of_a_moved_environment_is_its_own(identity_with_a_new_revision: Database) -> None:
    assert identity_with_a_new_revision.head() == "9999"
    assert DATABASES["identity"].head() == "9999" and identity_server.IDENTITY.database.head() == "9999"


def test_a_process_finds_its_database_at_head_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'permits.db'}"
    assert main(["prepare", "permits"], {"GOVHUB_PERMITS_DATABASE_URL": url}) == 0  # upgraded (SQLite, auto)
    started = subprocess.run(
        [sys.executable, "-c", AT_HEAD_AT_START, url], capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "[]"


def test_prepare_applies_the_start_up_rule_to_every_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"GOVHUB_VAR_DIR": str(tmp_path), "GOVHUB_AUTO_MIGRATE": "off"}
    assert main(["prepare"], env) == 1  # off: even an empty database is refused, and named
    assert f"{HINT} identity" in capsys.readouterr().err
    assert main(["prepare"], {**env, "GOVHUB_AUTO_MIGRATE": "auto"}) == 0  # SQLite: upgraded
    assert main(["check"], env) == 0
    assert main(["prepare"], env) == 0  # at head, off or not


async def test_answers_kept_for_replays_lose_their_query_codes(engine: AsyncEngine) -> None:
    """0005: an answer stored for an Idempotency-Key before it holds the case's query code in clear; the
    upgrade removes the code and keeps the rest of the answer."""
    gateway = DATABASES["gateway"]
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(gateway, c), "0004"))
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (key, body_hash, state, status, response, created_at) "
                "VALUES ('k', 'h', 'DONE', 201, :response, CURRENT_TIMESTAMP)"
            ),
            {"response": '{"case_no": "GH20161115AAAAAA", "query_code": "12345678"}'},
        )
        await conn.run_sync(lambda c: command.upgrade(alembic_config(gateway, c), "0005"))
        response = (await conn.execute(text("SELECT response FROM idempotency_keys"))).scalar_one()
    if isinstance(response, str):  # SQLite hands JSON back as text
        response = json.loads(response)
    assert response == {"case_no": "GH20161115AAAAAA"}
