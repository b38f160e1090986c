from __future__ import annotations

import datetime as dt

import pytest

from services.common.clock import Clock
from services.common.settings import GatewaySettings, ServiceSettings, SettingsError


def test_defaults_are_the_embedded_development_setup() -> None:
    s = ServiceSettings.from_env("identity", {})
    assert (s.host, s.port) == ("127.0.0.1", 50051)
    assert s.database_url == "sqlite+aiosqlite:///var/identity.db"
    g = GatewaySettings.from_env({})
    assert (g.port, g.identity_target, g.permits_target) == (8080, "127.0.0.1:50051", "127.0.0.1:50053")


def test_postgres_url_and_listen_address_come_from_the_environment() -> None:
    env = {
        "GOVHUB_RESIDENCE_DATABASE_URL": "postgresql+asyncpg://u@db/residence",
        "GOVHUB_RESIDENCE_LISTEN": "0.0.0.0:6000",
        "GOVHUB_TODAY": "2016-07-01",
    }
    s = ServiceSettings.from_env("residence", env)
    assert s.database_url.startswith("postgresql+asyncpg://")
    assert (s.host, s.port) == ("0.0.0.0", 6000)
    assert s.common.today == dt.date(2016, 7, 1)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"GOVHUB_TODAY": "2016-13-01"}, "GOVHUB_TODAY"),
        ({"GOVHUB_IDENTITY_LISTEN": "nohost"}, "GOVHUB_IDENTITY_LISTEN"),
        ({"GOVHUB_IDENTITY_DATABASE_URL": "mysql://x"}, "GOVHUB_IDENTITY_DATABASE_URL"),
        ({"GOVHUB_LOG_FORMAT": "xml"}, "GOVHUB_LOG_FORMAT"),
        ({"GOVHUB_IDENTITY_DB_POOL_SIZE": "zero"}, "GOVHUB_IDENTITY_DB_POOL_SIZE"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        ServiceSettings.from_env("identity", env)


def test_fixed_clock_pins_today_but_keeps_the_time_of_day() -> None:
    clock = Clock(dt.date(2016, 7, 1))
    assert clock.today() == dt.date(2016, 7, 1)
    now = clock.now()
    assert now.tzinfo is not None
    assert now.astimezone(dt.timezone(dt.timedelta(hours=8))).date() == dt.date(2016, 7, 1)
