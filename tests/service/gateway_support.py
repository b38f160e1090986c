"""Shared pieces of the gateway tests."""

from __future__ import annotations

import datetime as dt

from services.common.settings import GatewaySettings

TODAY = dt.date(2016, 9, 15)


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
    )
