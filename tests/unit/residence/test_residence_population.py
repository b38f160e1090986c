"""The synthetic population: valid (by identity's checker and by the independent id-validator package),
unique, deterministic, realistic households."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date

import pytest

from services.common.idnumber import build_id_number, check_id_number
from services.residence import domain as d
from services.residence.population import AREAS, generate_population

AS_OF = date(2016, 6, 30)


@pytest.fixture(scope="module")
def population(policy):
    return [
        h for batch in generate_population(seed=7, households=1200, as_of=AS_OF, policy=policy) for h in batch
    ]


def test_every_number_is_valid_unique_and_matches_the_entry(population, fast_id_validator):
    people = [m for h in population for m in h.members]
    assert len(people) >= 3000
    numbers = [m.id_number for m in people]
    assert len(set(numbers)) == len(numbers)
    for m in people:
        check = check_id_number(m.id_number, AS_OF)
        assert check.valid, (m.id_number, check.problems)
        assert (check.sex, check.birth_date) == (m.sex, m.birth_date)
        assert fast_id_validator.is_valid(m.id_number), m.id_number
        assert fast_id_validator.is_valid(m.id_number, True), m.id_number  # code in use in the birth year


def test_households_are_realistic(population, policy):
    provinces = Counter(h.region_code[:2] for h in population)
    assert set(provinces) >= {"31", "12", "36", "42", "11", "44", "33", "41"}
    assert provinces["31"] > len(population) / 2
    assert {h.region_code for h in population if h.region_code.startswith("31")} == {
        a.code for a in AREAS if a.code.startswith("31")
    }
    types = Counter(h.type for h in population)
    assert types[d.HouseholdType.COLLECTIVE] > 0 and types[d.HouseholdType.FAMILY] > 0.9 * len(population)
    codes = Counter(m.relationship_code for h in population for m in h.members)
    assert {"02", "11", "12", "21", "22", "23", "31", "32", "38", "41", "51", "52", "99"} <= set(codes)
    for h in population:
        d.check_household(h, AS_OF)  # one adult head, one spouse, ordered members
        assert h.members == d.order_members(h.members, policy.relationships)
        for m in h.members:
            assert policy.relationships.member_code_problem(m.relationship_code, m.sex) is None
            assert m.household_number == h.number and m.birth_date <= AS_OF
        if h.type is d.HouseholdType.FAMILY:
            spouse = [m for m in h.members if m.relationship_code in {"11", "12"}]
            if spouse:
                assert spouse[0].sex is not h.head.sex
    assert len({h.number for h in population}) == len(population)


def test_generation_is_deterministic_and_streams_in_batches(policy):
    def first(seed):
        gen = generate_population(seed=seed, households=250, as_of=AS_OF, policy=policy, batch_size=100)
        return [[(m.id_number, m.name) for h in batch for m in h.members] for batch in gen]

    a, b, c = first(1), first(1), first(2)
    assert a == b and a != c
    assert [
        len(batch)
        for batch in generate_population(seed=1, households=250, as_of=AS_OF, policy=policy, batch_size=100)
    ] == [100, 100, 50]
    lazy = generate_population(seed=1, households=10**9, as_of=AS_OF, policy=policy, batch_size=10)
    assert len(next(itertools.islice(lazy, 3, None))) == 10  # a huge request streams; nothing is built ahead


def test_every_area_has_a_valid_code_for_every_birth_year(fast_id_validator):
    for area in AREAS:
        assert area.code_for(AS_OF.year) == area.code
        for year in range(1920, AS_OF.year + 1):
            code = area.code_for(year)
            assert code is not None, (area.name, year)
            number = build_id_number(code, date(year, 6, 15), 1)
            assert check_id_number(number).valid, (area.name, year, number)
            assert fast_id_validator.is_valid(number, True), (area.name, year, number)


def test_thousand_births_through_register_birth(policy, fast_id_validator):
    """1,000+ newborns registered by the domain in one area and day range: all valid, all unique."""
    station = d.PoliceStation("31010401", "徐汇区第1派出所", "310104")
    head = d.PersonEntry(
        "310104196003010011",
        "甲",
        d.Sex.MALE,
        date(1960, 3, 1),
        "汉",
        "上海",
        "上海",
        "H",
        "02",
        date(1960, 3, 1),
    )
    household = d.establish_household(
        "H", d.HouseholdType.FAMILY, "某路", station, [head], policy=policy, today=AS_OF
    )
    used: dict[date, set[int]] = {}
    numbers = []
    for i in range(1100):
        born = date(2016, 6, 1 + i % 29)
        sex = d.Sex.MALE if i % 3 else d.Sex.FEMALE
        cmd = d.RegisterBirth(
            "H",
            d.NewbornDetails("甲乙", sex, born, "上海", "汉", "上海"),
            "41" if i % 3 else "42",
            declarant_id_number=household.head.id_number,
        )
        result = d.register_birth(
            household, cmd, policy=policy, today=AS_OF, used_sequences=used.setdefault(born, set())
        )
        number = result.person.id_number
        used[born].add(d.sequence_of(number))
        numbers.append((number, sex))
    assert len({n for n, _ in numbers}) == 1100
    for number, sex in numbers:
        check = check_id_number(number)
        assert check.valid and check.sex is sex and fast_id_validator.is_valid(number)
