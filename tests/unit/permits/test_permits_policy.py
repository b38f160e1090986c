"""policy.toml loads into the domain's dataclasses through typed structs, and bad data fails loudly, naming
the file and the key."""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from services.common.errors import FailedPrecondition
from services.common.tomlfile import PolicyError
from services.permits import domain as d
from services.permits.policy import load_policy, parse_policy


def raw(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("services.permits").joinpath(name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def policy_data() -> dict[str, Any]:
    return raw("policy.toml")


def test_packaged_policy_has_the_domain_values(policy: d.PermitsPolicy) -> None:
    assert policy.deadlines == d.Deadlines(20, 10, 5, 30, 15, 7, 30)
    assert policy.validity == d.ValidityLimits(
        work_permit_max_years=5, residence_min_days=90, residence_max_years=5, min_age=18
    )
    assert [(t.min_months, t.fee_yuan) for t in policy.residence_fee_tiers] == [
        (0, 400),
        (12, 800),
        (36, 1000),
    ]
    rules = policy.category_rules
    assert (rules.a_min_points, rules.b_min_points, rules.a_salary_multiple, rules.b_salary_multiple) == (
        85,
        60,
        6,
        4,
    )
    assert (rules.b_max_age, rules.b_min_education, rules.b_min_experience_years) == (
        60,
        d.Education.BACHELOR,
        2,
    )
    assert set(range(2016, 2027)) <= policy.calendar.years  # the chinese-calendar package
    assert set(policy.materials) == set(d.Stage)


def test_load_policy_builds_a_fresh_equal_policy(policy) -> None:
    assert load_policy() == policy


def test_a_later_table_version_is_picked_by_date(policy_data) -> None:
    """The structure takes the 暂行版 (synthetic numbers here): experience up to 20, a patent bonus."""
    data = copy.deepcopy(policy_data)
    interim = copy.deepcopy(data["points_tables"][0])
    interim["version"] = "synthetic-interim"
    interim["effective_from"] = dt.date(2018, 1, 1)
    interim["experience"]["maximum"] = 20
    interim["flags"]["patent"] = 5
    data["points_tables"].append(interim)
    policy = parse_policy(data)
    assert policy.points_table_on(dt.date(2017, 12, 31)).version == "2017-04-trial"
    table = policy.points_table_on(dt.date(2018, 1, 1))
    assert table.version == "synthetic-interim"
    assert table.experience.points(30) == 20 and table.flags["patent"] == 5
    with pytest.raises(FailedPrecondition) as exc:
        policy.points_table_on(dt.date(2016, 9, 30))
    assert exc.value.reason == "NO_POINTS_TABLE"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("points_tables.0.age.1.from", 27), "contiguous"),  # a gap at 26
        (_set("points_tables.0.age.1.from", 25), "contiguous"),  # an overlap at 25
        (_set("points_tables.0.age.4.to", 99), "no upper end"),
        (_set("points_tables.0.salary_yuan.1.minimum", 500_000), "strictly decreasing"),
        (_set("points_tables.0.salary_yuan.6.minimum", 1), "start at 0"),
        (_set("points_tables.0.months_in_china.0.points", 1), "points must not grow"),
        (
            _set("points_tables.0.education.PHD", 25),
            r"unknown field `PHD` - at `\$.points_tables\[0\].education`",
        ),
        (_set("points_tables.0.education.OTHER", KeyError), r"missing required field `OTHER`"),
        (_set("points_tables.0.flags.charisma", 5), "unknown flags"),
        (
            _set("points_tables.0.chinese.hsk.3", "six"),
            r"Expected `int`, got `str` - at `\$.points_tables\[0\].chinese.hsk.3`",
        ),
        (_set("points_tables.0.max_total", True), r"Expected `int`, got `bool`"),
        (
            _set("points_tables.0.effective_from", "April 2017"),
            r"Invalid RFC3339 encoded date - at `\$.points_tables\[0\].effective_from`",
        ),
        (
            _set("category_rules.b_min_education", "PHD"),
            r"Invalid enum value 'PHD' - at `\$.category_rules.b_min_education`",
        ),
        (_set("category_rules.a_min_points", 50), "above category B"),
        (_set("deadlines.work_permit_working_days", 0), r"Expected `int` >= 1"),
        (_set("deadlines.coffee_breaks", 2), r"unknown field `coffee_breaks` - at `\$.deadlines`"),
        (_set("validity.min_age", KeyError), r"missing required field `min_age`"),
        (_set("local_average_salaries.0.region", "31"), r"local_average_salaries\[0\].region"),
        (_set("residence_fee_tiers.0.min_months", 1), "from 0"),
        (_set("materials.INTERVIEW", [{"code": "x", "label": "y"}]), "unknown stages"),
        (_set("materials.WORK_PERMIT.1.code", "z_or_r_visa_with_entry_stamp"), "duplicate codes"),
        (
            _set("materials.WORK_PERMIT.0.alternatives", [""]),
            r"length >= 1 - at `\$.materials\[...\]\[0\].alternatives\[0\]`",
        ),
    ],
)
def test_bad_policy_fails_loudly(policy_data, mutate, message) -> None:
    data = copy.deepcopy(policy_data)
    mutate(data)
    with pytest.raises(PolicyError, match=message):
        parse_policy(data)


def test_every_error_names_the_file(policy_data) -> None:
    data = copy.deepcopy(policy_data)
    data["validity"]["colour"] = "red"
    with pytest.raises(PolicyError) as exc:
        parse_policy(data)
    assert str(exc.value).startswith("services/permits/policy.toml: ")
    assert "unknown field `colour`" in str(exc.value)
