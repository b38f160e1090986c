"""The gateway database's migration environment (Alembic), driven by services.common.migrate."""
