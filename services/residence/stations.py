"""The police stations (派出所) the synthetic register knows: three per registering area of the population
generator (`population.AREAS`), plus the areas of the demo people that the generator does not cover.

A station's code is its jurisdiction's six-digit county code and a two-digit number (``31010401``), the
same codes the generator gives its households. The service loads this catalogue into its database on start
(`store.ensure_stations`), so RegisterAccommodation and a move-in that founds a household can name a station
by code on an empty database too. Synthetic names, no real stations.
"""

from __future__ import annotations

from services.residence.domain import PoliceStation
from services.residence.population import AREAS

STATIONS_PER_AREA = 3

# Areas outside the generator's: (code, "city + county name", rural).
_EXTRA_AREAS: tuple[tuple[str, str, bool], ...] = (("440106", "天河区", False),)


def _stations() -> tuple[PoliceStation, ...]:
    out: list[PoliceStation] = []
    areas = [(a.code, a.name, a.rural) for a in AREAS] + list(_EXTRA_AREAS)
    for code, name, rural in areas:
        for index in range(1, STATIONS_PER_AREA + 1):
            out.append(PoliceStation(f"{code}{index:02d}", f"{name}第{index}派出所", code, rural))
    return tuple(out)


STATIONS: tuple[PoliceStation, ...] = _stations()
STATIONS_BY_CODE = {s.code: s for s in STATIONS}


def first_station(region_code: str) -> PoliceStation:
    """The area's first station (KeyError if the area has none)."""
    return STATIONS_BY_CODE[f"{region_code}01"]


__all__ = ["STATIONS", "STATIONS_BY_CODE", "STATIONS_PER_AREA", "first_station"]
