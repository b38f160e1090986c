"""The permits database's migration environment (Alembic), driven by services.common.migrate."""

from services.common.migrate import Database

DATABASE = Database.of("services.permits")
