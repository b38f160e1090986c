"""Schema migrations: one Alembic environment per database, all driven from this module.

Every process owns one database and one migration environment, inside its package so that it ships with the
code: ``<package>/migrations`` holds an ``env.py`` that calls :func:`run_environment`, a ``script.py.mako``,
``versions/``, and in its ``__init__`` the process's :class:`Database` (``Database.of(<package>)``), which the
process passes to :func:`prepare_schema`. This kit names no process: the list of govhub's databases, and the
command that migrates them, are in ``deploy/migrate.py``. There is no ``alembic.ini``: the Config is built
here, and every command runs on a connection of an async engine made by ``make_engine``
(``config.attributes["connection"]``), so SQLite and PostgreSQL take the same path. A whole command runs in
one transaction: on PostgreSQL (transactional DDL) under an advisory lock, so that replicas starting together
migrate once; on SQLite with foreign keys off (batch migrations copy tables) and an explicit BEGIN (pysqlite
would otherwise run DDL outside it). A failed migration leaves the database as it was.

    python -m deploy.migrate [upgrade|current|check|revision] [NAME|all]

``upgrade`` (the default) brings each database named by the usual settings (``GOVHUB_<PROCESS>_DATABASE_URL``,
default under ``GOVHUB_VAR_DIR``) to head; ``current`` prints each one's revision; ``check`` exits 1 unless
every database is at head and its schema matches the models; ``revision NAME -m MESSAGE`` autogenerates the
next revision of one database against a database at head (development; read and tidy what it writes).

At start each process calls :func:`prepare_schema`, whose rule is ``GOVHUB_AUTO_MIGRATE``:

* ``auto`` (the default): an SQLite database (the embedded development default) is upgraded to head; a
  PostgreSQL database is created at head only when it is empty (a fresh install, a test's fresh database) and
  one that is behind is refused: upgrading a production database is a deliberate step (``make migrate``);
* ``on``: whatever is behind head is upgraded at start;
* ``off``: the schema is never changed at start; anything but head (even an empty database) is refused.

A database already at head is recognised without Alembic (its ``alembic_version`` row against the head read
from the revision scripts' own ``revision`` / ``down_revision`` lines, :meth:`Database.head`), and Alembic is
imported only by the functions that use it: a process whose database is at head at start never loads it
(Alembic, Mako and what they pull in are about 7 MB of every process). ``python -m deploy.migrate prepare``
applies the start-up rule below to every database, before the processes start (the launcher of ``make run``
does).

A refusal (:class:`SchemaNotCurrent`) names the database and the command to run. A database stamped with a
revision this release does not know (a newer release migrated it) is refused whatever the setting. A
database with govhub's tables but no migration history (made before migrations, by ``create_all``) is
adopted by ``upgrade`` if its schema is exactly the models' (it is stamped head), and refused otherwise with
the differences.
"""

from __future__ import annotations

import ast
import importlib
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import is_sqlite
from services.common.settings import SettingsError

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

AUTO_MIGRATE_CHOICES = ("auto", "on", "off")
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock(int4, int4): a key space of its own, apart from the outbox's and audit's bigint keys.
_LOCK_KEYS = (0x676F7668, 0x6D696772)  # "govh", "migr"


@dataclass(frozen=True, slots=True)
class Database:
    """One process's database: its migration environment and the models it must match."""

    name: str
    package: str  # the migration environment is <package>/migrations
    models: str  # the module whose ``Base.metadata`` is the schema

    @property
    def script_location(self) -> str:
        return f"{self.package}:migrations"

    def metadata(self) -> MetaData:
        metadata: MetaData = importlib.import_module(self.models).Base.metadata
        return metadata

    def head(self) -> str | None:
        """The head revision, read from the revision scripts without importing them (or Alembic): the one
        revision no other revises. None when that is not plain (a script whose ``revision`` or
        ``down_revision`` is not a literal, several heads): then Alembic alone decides."""
        return _head(self.script_location)

    @classmethod
    def of(cls, package: str) -> Database:
        """A process's database by govhub's layout: named after the package's last part, the models in
        ``<package>.store``, the migration environment in ``<package>/migrations``."""
        return cls(package.rpartition(".")[2], package, f"{package}.store")


class SchemaNotCurrent(SettingsError):
    """A database is not at the schema this release knows and may not be migrated at start. A start-up
    error of the same family as a bad setting: the process refuses to start and says what to run."""


@cache
def _head(script_location: str) -> str | None:
    package, resource, path = script_location.partition(":")  # "package:migrations", or a directory
    scripts = importlib.resources.files(package) / path if resource else Path(script_location)
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in (scripts / "versions").iterdir():
        if not script.name.endswith(".py") or script.name == "__init__.py":
            continue
        values: dict[str, Any] = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            target: ast.expr
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            revised.add(down)
        elif isinstance(down, tuple | list):
            revised.update(down)
        elif down is not None:
            return None
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def upgrade_hint(name: str) -> str:
    return f"run `make migrate` or `python -m deploy.migrate upgrade {name}`"


def alembic_config(database: Database, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", database.script_location)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["database"] = database
    config.attributes["connection"] = connection
    return config


def run_environment() -> None:
    """The body of every ``migrations/env.py``: configure Alembic on the connection this module passed in."""
    from alembic import context

    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        raise RuntimeError("run migrations through `python -m deploy.migrate`, not the alembic CLI")
    database: Database = config.attributes["database"]
    context.configure(
        connection=connection,
        target_metadata=database.metadata(),
        version_table=VERSION_TABLE,
        # Every revision must run on SQLite and PostgreSQL alike: ALTERs are rendered in batch blocks, which
        # SQLite runs as copy-and-move and PostgreSQL as plain ALTER TABLE.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# -- state --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaState:
    name: str
    url: str  # password hidden
    revisions: tuple[str, ...]  # what the database is stamped with (empty: no history)
    head: str
    known: frozenset[str]  # every revision of the migration environment
    has_tables: bool  # any table besides the version table

    @property
    def at_head(self) -> bool:
        return self.revisions == (self.head,)

    @property
    def empty(self) -> bool:
        return not self.revisions and not self.has_tables

    @property
    def unversioned(self) -> bool:
        return not self.revisions and self.has_tables

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(r for r in self.revisions if r not in self.known)

    def describe(self) -> str:
        if self.at_head:
            return f"at head {self.head}"
        if self.empty:
            return f"empty (head is {self.head})"
        if self.unversioned:
            return f"has tables but no migration history (head is {self.head})"
        if self.unknown:
            return f"at {', '.join(self.revisions)}, which this release does not know (head is {self.head})"
        return f"at {', '.join(self.revisions)}, behind head {self.head}"

    def refusal(self) -> str:
        where = f"the {self.name} database ({self.url})"
        if self.unknown:
            return (
                f"{where} is {self.describe()}: a newer release has migrated it; run that release, or "
                "restore the backup taken before its migration"
            )
        hint = upgrade_hint(self.name)
        if self.unversioned:
            return (
                f"{where} has tables but no migration history (made before migrations; head is {self.head}): "
                f"{hint}, which adopts it if its schema is today's"
            )
        return f"{where} is {self.describe()}: {hint} (or set GOVHUB_AUTO_MIGRATE=on to upgrade at start)"


def _state(database: Database, connection: Connection, url: str) -> SchemaState:
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database))
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
    return SchemaState(
        name=database.name,
        url=url,
        revisions=tuple(sorted(context.get_current_heads())),
        head=script.get_current_head() or "",
        known=frozenset(rev.revision for rev in script.walk_revisions()),
        has_tables=bool(tables),
    )


def _differences(database: Database, connection: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models (nothing: it matches)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return list(compare_metadata(context, database.metadata()))


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


async def _run(engine: AsyncEngine, fn: Callable[[Connection], T], *, write: bool) -> T:
    """`fn` on one connection of `engine`, in one transaction that commits if it returns."""
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if write and sqlite:
            # Foreign keys can only be switched outside a transaction; BEGIN by hand so DDL is inside one.
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.exec_driver_sql("BEGIN")
        elif write:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _LOCK_KEYS[0], "b": _LOCK_KEYS[1]}
            )
        try:
            result = await conn.run_sync(fn)
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            if write and sqlite:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()
        return result


def _stamped(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with, read without Alembic (empty: no version table)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return tuple(sorted(rows))


async def schema_state(engine: AsyncEngine, database: Database) -> SchemaState:
    return await _run(engine, lambda conn: _state(database, conn, _shown(engine.url)), write=False)


# -- commands -----------------------------------------------------------------------------------------------


async def upgrade(engine: AsyncEngine, database: Database) -> tuple[SchemaState, SchemaState]:
    """Bring the database to head (adopting a pre-migration database whose schema is the models').
    Returns the state before and after. Raises SchemaNotCurrent when it cannot."""
    from alembic import command

    name = database.name
    url = _shown(engine.url)

    def run(conn: Connection) -> tuple[SchemaState, SchemaState]:
        before = _state(database, conn, url)  # read under the lock: another replica may have just migrated
        if before.unknown:
            raise SchemaNotCurrent(before.refusal())
        config = alembic_config(database, conn)
        if before.unversioned:
            differences = _differences(database, conn)
            if differences:
                shown = "; ".join(str(d) for d in differences[:10])
                raise SchemaNotCurrent(
                    f"the {name} database ({url}) has tables but no migration history, and its schema "
                    f"differs from this release's models ({len(differences)} differences: {shown}); bring it "
                    "to the models by hand and run the upgrade again (a development SQLite file: delete it)"
                )
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
        return before, _state(database, conn, url)

    return await _run(engine, run, write=True)


async def check(engine: AsyncEngine, database: Database) -> tuple[SchemaState, list[Any]]:
    """The database's state and, when it is at head, how its schema differs from the models (nothing: ok)."""

    def run(conn: Connection) -> tuple[SchemaState, list[Any]]:
        state = _state(database, conn, _shown(engine.url))
        return state, _differences(database, conn) if state.at_head else []

    return await _run(engine, run, write=False)


async def revision(engine: AsyncEngine, database: Database, message: str) -> str:
    """Autogenerate the next revision (numbered 0001, 0002, …) against a database at head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    def run(conn: Connection) -> str:
        config = alembic_config(database, conn)
        count = sum(1 for _ in ScriptDirectory.from_config(config).walk_revisions())
        script = command.revision(config, message=message, autogenerate=True, rev_id=f"{count + 1:04d}")
        assert script is not None and not isinstance(script, list)
        return str(script.path)

    return await _run(engine, run, write=True)


def auto_migrate_mode(url: str, setting: str) -> str:
    """``GOVHUB_AUTO_MIGRATE`` for a database: ``on``, ``off``, or ``empty`` (create an empty database at
    head, refuse one behind): ``auto`` is ``on`` for SQLite and ``empty`` for PostgreSQL."""
    if setting not in AUTO_MIGRATE_CHOICES:
        raise SettingsError(
            f"GOVHUB_AUTO_MIGRATE={setting!r} must be one of {', '.join(AUTO_MIGRATE_CHOICES)}"
        )
    if setting == "auto":
        return "on" if is_sqlite(url) else "empty"
    return setting


async def prepare_schema(engine: AsyncEngine, database: Database, auto_migrate: str = "auto") -> None:
    """The start-up rule (module docstring): return when the database is at head, after upgrading it if
    the setting allows; otherwise raise SchemaNotCurrent naming the database and the command to run."""
    head = database.head()
    if head is not None and await _run(engine, _stamped, write=False) == (head,):
        return  # at head: decided without Alembic
    state = await schema_state(engine, database)
    if state.at_head:
        return
    mode = auto_migrate_mode(engine.url.render_as_string(), auto_migrate)
    if not state.unknown and (mode == "on" or (mode == "empty" and state.empty)):
        await upgrade(engine, database)
        return
    raise SchemaNotCurrent(state.refusal())
