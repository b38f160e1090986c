"""``make migrate``: the schema migrations of govhub's four databases, one command for all of them.

    python -m deploy.migrate [upgrade|prepare|current|check|revision] [NAME|all]

where NAME is identity, residence, permits or gateway. Each database is found by the usual settings
(``GOVHUB_<PROCESS>_DATABASE_URL``, default under ``GOVHUB_VAR_DIR``); each process's migration
environment lives in its own package, and the kit that drives them is ``services.common.migrate``
(its notes say what each action does). This module is the one place that lists govhub's databases.
``prepare`` applies the start-up rule (``GOVHUB_AUTO_MIGRATE``) that each process would apply at start: the
launcher runs it before starting them, so that the processes find their databases at head and never load
Alembic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from gateway.migrations import DATABASE as GATEWAY
from services.common.db import make_engine
from services.common.migrate import (
    Database,
    SchemaNotCurrent,
    check,
    prepare_schema,
    revision,
    schema_state,
    upgrade,
    upgrade_hint,
)
from services.common.settings import CommonSettings, SettingsError, database_url_from_env
from services.identity.migrations import DATABASE as IDENTITY
from services.permits.migrations import DATABASE as PERMITS
from services.residence.migrations import DATABASE as RESIDENCE

# Every database of govhub, in the order they are migrated.
DATABASES: dict[str, Database] = {db.name: db for db in (IDENTITY, RESIDENCE, PERMITS, GATEWAY)}


async def _command(action: str, name: str, url: str, message: str, auto_migrate: str) -> bool:
    engine = make_engine(url, pool_size=1)
    try:
        if action == "prepare":  # what the process does at start (GOVHUB_AUTO_MIGRATE), done before it
            await prepare_schema(engine, DATABASES[name], auto_migrate)
            return True
        if action == "upgrade":
            before, after = await upgrade(engine, DATABASES[name])
            change = "already at head" if before.at_head else f"{before.describe()} -> {after.describe()}"
            print(f"{name}: {change} ({after.url})")
            return True
        if action == "current":
            state = await schema_state(engine, DATABASES[name])
            print(f"{name}: {state.describe()} ({state.url})")
            return True
        if action == "check":
            state, differences = await check(engine, DATABASES[name])
            if not state.at_head:
                print(f"{name}: OUT OF DATE: {state.describe()} ({state.url}); {upgrade_hint(name)}")
                return False
            if differences:
                print(f"{name}: at head but the schema differs from the models ({state.url}):")
                for difference in differences:
                    print(f"  {difference}")
                return False
            print(f"{name}: ok, {state.describe()} ({state.url})")
            return True
        path = await revision(engine, DATABASES[name], message)
        print(f"{name}: wrote {path}: read it, tidy it, and run `make fmt`")
        return True
    except SchemaNotCurrent as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return False
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.migrate", description="Schema migrations of govhub's databases."
    )
    parser.add_argument(
        "action", nargs="?", default="upgrade", choices=("upgrade", "prepare", "current", "check", "revision")
    )
    parser.add_argument("database", nargs="?", default="all", choices=(*DATABASES, "all"))
    parser.add_argument("-m", "--message", default="", help="the new revision's message (revision only)")
    args = parser.parse_args(argv)
    names = list(DATABASES) if args.database == "all" else [args.database]
    if args.action == "revision" and (args.database == "all" or not args.message):
        parser.error("revision needs one database and -m MESSAGE")
    environ = os.environ if env is None else env
    try:
        urls = {name: database_url_from_env(name, environ) for name in names}
        auto_migrate = CommonSettings.from_env(environ).auto_migrate
    except SettingsError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    ok = True
    for name in names:
        ok = asyncio.run(_command(args.action, name, urls[name], args.message, auto_migrate)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
