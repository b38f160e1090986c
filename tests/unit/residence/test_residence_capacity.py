"""Civil capacity as its own field, and a household left without a head who can act (issue 13.11)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from residence_factories import TODAY, XUHUI, person

from services.common.errors import FailedPrecondition
from services.common.idnumber import Sex, build_id_number
from services.residence import domain as d

GUARDIAN = d.Guardian(build_id_number("310104", date(1950, 2, 3), 22), "甲老太", "祖母")


def teen_born() -> date:
    return date(TODAY.year - 17, 1, 5)


@pytest.fixture
def single_parent(make_household) -> d.Household:
    return make_household(
        "H-9",
        XUHUI,
        [
            person("甲母", Sex.FEMALE, date(1980, 1, 1), "02"),
            person("甲少", Sex.MALE, teen_born(), "20"),
        ],
    )


@pytest.mark.parametrize(
    ("capacity", "age", "full"),
    [
        (d.CivilCapacity.BY_AGE, 17, False),
        (d.CivilCapacity.BY_AGE, 18, True),
        (d.CivilCapacity.OWN_EARNINGS, 16, True),
        (d.CivilCapacity.OWN_EARNINGS, 15, False),
        (d.CivilCapacity.LIMITED, 40, False),
        (d.CivilCapacity.NONE, 40, False),
    ],
)
def test_full_capacity_is_a_field_not_an_age_test(capacity, age, full) -> None:
    someone = person("某人", Sex.MALE, date(TODAY.year - age, 1, 1), "20")
    assert dataclasses.replace(someone, civil_capacity=capacity).has_full_capacity(TODAY) is full


def test_a_head_dies_leaving_a_minor_then_the_minor_on_own_earnings_heads_it(policy, single_parent) -> None:
    mother, teen = single_parent.members
    death = d.Deregister(mother.id_number, d.DeregistrationReason.DEATH, TODAY)
    with pytest.raises(FailedPrecondition) as err:
        d.deregister(single_parent, death, policy=policy, today=TODAY)
    assert err.value.reason == d.GUARDIAN_REQUIRED

    result = d.deregister(
        single_parent, dataclasses.replace(death, guardian=GUARDIAN), policy=policy, today=TODAY
    )
    awaiting = result.household
    assert awaiting.follow_up == d.FOLLOW_UP_NO_CAPABLE_HEAD and awaiting.guardian == GUARDIAN
    assert [m.id_number for m in awaiting.members] == [teen.id_number]
    assert [e.type for e in result.events] == ["PersonDeregistered", "HouseholdAwaitingHead"]

    name_head = d.ChangeHead(teen.id_number, "")
    with pytest.raises(FailedPrecondition) as err:
        d.change_head(awaiting, name_head, policy=policy, today=TODAY)
    assert err.value.reason == d.HEAD_NOT_ADULT
    recorded = d.record_civil_capacity(
        awaiting,
        d.RecordCivilCapacity(teen.id_number, d.CivilCapacity.OWN_EARNINGS, TODAY),
        policy=policy,
        today=TODAY,
    )
    assert recorded.person.has_full_capacity(TODAY)
    headed = d.change_head(recorded.household, name_head, policy=policy, today=TODAY)
    assert headed.household.head.id_number == teen.id_number
    assert headed.household.follow_up == "" and headed.household.guardian is None
    [event] = headed.events
    assert event.type == "HeadChanged" and event.cause == "FOLLOW_UP"
