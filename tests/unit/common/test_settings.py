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


def test_a_pinned_day_starts_at_nine_and_time_runs_on() -> None:
    clock = Clock(dt.date(2016, 7, 1))
    assert clock.today() == dt.date(2016, 7, 1)
    first = clock.now()
    assert first.tzinfo is not None
    local = first.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert local.date() == dt.date(2016, 7, 1)
    assert dt.time(9, 0) <= local.time() < dt.time(9, 1)  # whatever the real time of day
    assert clock.now() >= first
