"""The residence database's migration environment (Alembic), driven by services.common.migrate."""
