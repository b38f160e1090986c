"""Each matter states from when (and until when) it can be applied for; the catalogue refuses a matter
without a start date or with an end before its start."""

from __future__ import annotations

import datetime as dt
import tomllib
from importlib import resources
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.catalogue import CatalogueError, _matter
from gateway.departments import ACTIONS

EXPECTED = {
    "foreigner-employment": "2016-10-01",
    "household-move-in": "2016-01-01",
    "id-card-lost": "2016-01-01",
    "id-card-renewal-cross-province": "2016-07-01",
    "name-change": "2016-01-01",
    "newborn-registration": "2016-01-01",
}


async def test_every_matter_states_its_availability(client: TestClient) -> None:
    listed = await (await client.get("/api/v1/matters")).json()
    matters = listed["matters"] if isinstance(listed, dict) else listed
    assert {m["id"]: (m["available_from"], m["available_until"]) for m in matters} == {
        mid: (since, None) for mid, since in EXPECTED.items()
    }


def _raw(matter_id: str) -> dict[str, Any]:
    text = resources.files("gateway.matters").joinpath(f"{matter_id}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"available_from": None}, "available_from"),
        ({"available_from": "2016-07-01"}, "must be a TOML date"),
        ({"available_until": dt.date(2016, 6, 30)}, "available_until is before available_from"),
    ],
)
def test_the_catalogue_refuses_a_bad_availability(change: dict[str, Any], message: str) -> None:
    raw = _raw("id-card-renewal-cross-province")
    for key, value in change.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    with pytest.raises(CatalogueError, match=message):
        _matter(raw, "id-card-renewal-cross-province.toml", ACTIONS)


def test_an_end_date_closes_the_window_after_it() -> None:
    raw = _raw("id-card-renewal-cross-province")
    raw["available_until"] = dt.date(2019, 12, 31)
    matter = _matter(raw, "x.toml", ACTIONS)
    assert matter.available_on(dt.date(2019, 12, 31)) and not matter.available_on(dt.date(2020, 1, 1))
    assert not matter.available_on(dt.date(2016, 6, 30)) and matter.available_on(dt.date(2016, 7, 1))
    assert matter.availability() == "from 2016-07-01 to 2019-12-31"
    assert matter.public()["available_until"] == "2019-12-31"
