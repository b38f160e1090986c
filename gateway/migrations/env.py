"""Alembic's entry point for the gateway database; everything is configured in services.common.migrate."""

from services.common.migrate import run_environment

run_environment()
