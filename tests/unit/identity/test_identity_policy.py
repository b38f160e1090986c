"""The packaged identity policy loads, and malformed policy data fails loudly."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from importlib import resources
from typing import Any

import pytest

from services.identity.domain import AgeBasis, ApplicationKind, FeeReduction
from services.identity.policy import PolicyError, default_policy, parse_policy


def _data() -> dict[str, Any]:
    return tomllib.loads(resources.files("services.identity").joinpath("policy.toml").read_text("utf-8"))


def test_packaged_policy_values() -> None:
    policy = default_policy()
    assert policy.validity.age_basis is AgeBasis.APPLICATION_DATE
    assert policy.validity.early_renewal_months == 3
    assert policy.deadlines.statutory_days == 60
    assert policy.deadlines.remote_extension_days == 30
    assert policy.cross_province.acceptance_province_code == "31"
    assert policy.cross_province.kinds == {ApplicationKind.RENEWAL, ApplicationKind.REPLACEMENT}
    assert [s.effective for s in policy.cross_province.rollout] == [
        date(2016, 7, 1),
        date(2016, 9, 1),
        date(2016, 12, 26),
    ]
    assert len(policy.mainland_province_codes) == 31
    assert set(policy.fees.reductions) == set(FeeReduction) - {FeeReduction.NONE}
    for items in policy.materials.values():
        assert set(items) <= set(policy.material_names)


def _mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_data())
    *parents, last = path.split("/")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("validity/age_basis", "birthday", r"Invalid enum value 'birthday' - at `\$.validity.age_basis`"),
        ("validity/early_renewal_months", 0, r"Expected `int` >= 1 - at `\$.validity.early_renewal_months`"),
        ("validity/early_renewal_months", True, r"Expected `int`, got `bool`"),
        ("validity/bracket/1/min_age", 17, "contiguous"),
        ("validity/bracket/0/min_age", 1, "start at age 0"),
        ("validity/bracket/3/max_age", 120, "no upper age"),
        ("validity/bracket/3/years", 30, "long-term bracket has no years"),
        ("validity/bracket/0/years", _DELETE, "years missing"),
        ("validity/extra", 1, r"unknown field `extra` - at `\$.validity`"),
        ("fees/REPLACEMENT", _DELETE, r"missing required field `REPLACEMENT` - at `\$.fees`"),
        ("fees/REPLACEMENT", "40", r"Expected `int`, got `str` - at `\$.fees.REPLACEMENT`"),
        ("fees/TEMPORARY_CARD", 500, "differs"),
        ("fees/reduction/HARDSHIP/payable_percent", 150, r"Expected `int` <= 100"),
        ("fees/reduction/HARDSHIP/applies_to", ["LOST"], "unknown fee cases"),
        ("fees/reduction/HARDSHIP", _DELETE, "missing"),
        ("fees/reduction/DISCOUNT", {"payable_percent": 10, "applies_to": ["FIRST_ISSUE"]}, "unknown value"),
        ("deadlines/statutory_days", 0, r"Expected `int` >= 1 - at `\$.deadlines.statutory_days`"),
        ("temporary_card/hukou_station_only", "yes", r"Expected `bool`, got `str`"),
        ("cross_province/acceptance_province_code", "99", "unknown province"),
        (
            "cross_province/kinds",
            ["RENEWAL", "PASSPORT"],
            r"Invalid enum value 'PASSPORT' - at `\$.cross_province.kinds\[1\]`",
        ),
        ("cross_province/rollout/1/effective", date(2016, 6, 1), "date order"),
        ("cross_province/rollout/1/provinces", ["12"], "added twice"),
        ("cross_province/rollout/0/provinces", ["31"], "not other mainland provinces"),
        ("cross_province/rollout/0/provinces", ["99"], "not other mainland provinces"),
        (
            "cross_province/rollout/0/provinces",
            "some",
            r"Invalid enum value 'some' - at `\$.cross_province.rollout\[0\].provinces`",
        ),
        ("cross_province/rollout/0/provinces", "all", "nothing can follow"),
        ("materials/REPLACEMENT", ["PASSPORT"], "without a name"),
        ("materials/REPLACEMENT", _DELETE, "no materials"),
        ("materials/TRANSFER", ["PHOTO"], "not a fee case"),
        ("mainland_province_codes", ["1"], r"Expected `str` matching regex"),
    ],
)
def test_bad_policy_fails_loudly(path: str, value: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(_mutate(path, value))


def test_unchanged_data_parses() -> None:
    assert parse_policy(_data()) == default_policy()


def test_every_error_names_the_file_and_the_key() -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(_mutate("temporary_card/colour", "red"))
    assert str(exc.value) == (
        "services/identity/policy.toml: Object contains unknown field `colour` - at `$.temporary_card`"
    )
