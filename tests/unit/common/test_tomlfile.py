"""The one strict policy TOML reader: typed structs, unknown keys refused, the file and key named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.common.tomlfile import Policy, PolicyError, read_toml


class Limits(Policy):
    days: int
    since: dt.date


class File(Policy):
    limits: Limits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_decodes(tmp_path: Path) -> None:
    doc = read_toml(write(tmp_path, "[limits]\ndays = 3\nsince = 2016-07-01\n"), File, "x/policy.toml")
    assert doc == File(limits=Limits(days=3, since=dt.date(2016, 7, 1)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[limits]\ndays = 3\nsince = 2016-07-01\nweeks = 1\n",
            "x/policy.toml: Object contains unknown field `weeks` - at `$.limits`",
        ),
        ("[limits]\ndays = 3\n", "x/policy.toml: Object missing required field `since` - at `$.limits`"),
        (
            "[limits]\ndays = true\nsince = 2016-07-01\n",
            "x/policy.toml: Expected `int`, got `bool` - at `$.limits.days`",
        ),
        (
            "[limits]\ndays = 3\nsince = 2016-07-01T09:00:00\n",
            "x/policy.toml: Expected `date`, got `datetime` - at `$.limits.since`",
        ),
        ("[limits\n", "x/policy.toml: "),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        read_toml(write(tmp_path, text), File, "x/policy.toml")
    assert str(exc.value).startswith(message)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nowhere\.toml: cannot read"):
        read_toml(tmp_path / "nowhere.toml", File, "nowhere.toml")
