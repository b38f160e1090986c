"""Shared pieces of the gateway tests."""

from __future__ import annotations

import atexit
import datetime as dt
import secrets
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from gateway.auth import mint
from services.common.settings import GatewaySettings

TODAY = dt.date(2016, 9, 15)


@lru_cache(maxsize=1)
def secret_file() -> Path:
    """A JWT secret for this test run (HS256), in a folder removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="govhub-jwt-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "secret"
    path.write_text(secrets.token_hex(32))
    return path


def settings(db_url: str) -> GatewaySettings:
    return GatewaySettings(
        host="127.0.0.1",
        port=0,
        database_url=db_url,
        identity_target="unused",
        residence_target="unused",
        permits_target="unused",
        call_timeout=1.0,
        submit_wait=2.0,
        retry_base=0.01,
        retry_max=0.02,
        max_attempts=3,
        jwt_secret_file=secret_file(),
        progress_burst=1000,
    )


def token(role: str, sub: str = "", **claims: str) -> str:
    return mint(
        secret_file().read_bytes().strip(),
        role=role,
        sub=sub or f"{role}-1",
        now=dt.datetime.now(dt.UTC),
        **claims,
    )


def bearer(role: str, sub: str = "", **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub, **claims)}"}


def citizen(person: str, sub: str = "") -> dict[str, str]:
    """Headers of the citizen whose ID number (or passport number) is `person`."""
    return bearer("citizen", sub or f"citizen-{person[-4:]}", person=person)


def counter(hall: str = "310104", sub: str = "") -> dict[str, str]:
    return bearer("counter", sub or f"staff-{hall}", hall=hall)


def department(dept: str, sub: str = "") -> dict[str, str]:
    return bearer("department", sub or f"officer-{dept}", dept=dept)


ADMIN = {"admin": "admin-1"}
