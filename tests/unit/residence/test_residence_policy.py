"""The packaged policy data and the GB/T 4761 relationship table, and that bad data fails loudly."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import pytest

from services.common.idnumber import Sex
from services.residence import domain as d
from services.residence.policy import PolicyError, parse_policy, parse_relationships


def _doc(name: str) -> dict:
    return tomllib.loads(resources.files("services.residence").joinpath(name).read_text(encoding="utf-8"))


def test_packaged_deadlines(policy):
    assert (policy.birth_registration_months, policy.move_in_city_days, policy.move_in_countryside_days) == (
        1,
        3,
        10,
    )
    assert (policy.accommodation_city_hours, policy.accommodation_countryside_hours) == (24, 72)
    assert policy.cancel_card_reasons == frozenset(d.DeregistrationReason)
    assert (
        len(policy.ethnicities) == 56 and policy.ethnicities[0] == "汉" and policy.ethnicities[-1] == "基诺"
    )


def test_relationship_table_is_gbt_4761(policy):
    table = policy.relationships
    expected = {"01", "02", "99"} | {str(c) for c in range(10, 98)} - {
        "13",
        "14",
        "15",
        "16",
        "17",
        "18",
        "19",
    }
    assert {r.code for r in table} == expected
    assert len(table) == 84
    assert (table.get("02").name, table.get("12").name, table.get("38").name) == ("户主", "妻", "儿媳")
    assert (table.get("23").name, table.get("33").name, table.get("97").name) == ("次子", "二女", "其他亲属")
    assert table.get("90").group == "80" and table.get("99").group == "99" and table.get("45").group == "40"
    assert (
        table.get("11").sex is Sex.MALE and table.get("56").sex is Sex.FEMALE and table.get("10").sex is None
    )
    assert table.member_code_problem("12", Sex.MALE) == d.RELATIONSHIP_SEX_MISMATCH
    assert table.member_code_problem("12", Sex.FEMALE) is None
    assert table.member_code_problem("19", Sex.FEMALE) == d.UNKNOWN_RELATIONSHIP_CODE
    assert table.member_code_problem("", None) == d.REQUIRED
    assert table.order_key("28") < table.order_key("41") < table.order_key("51") < table.order_key("99")


def _broken_relationships(mutate) -> dict:
    doc = copy.deepcopy(_doc("relationships.toml"))
    mutate(doc["relationship"])
    return doc


@pytest.mark.parametrize(
    "mutate",
    [
        lambda rows: rows.append(dict(rows[3])),  # duplicate code
        lambda rows: rows[5].update(group="30"),  # code in the wrong group
        lambda rows: rows[5].update(sex="X"),
        lambda rows: rows[5].update(colour="red"),
        lambda rows: rows[5].update(code="5"),
        lambda rows: rows.pop(1),  # 02 户主 missing
    ],
)
def test_bad_relationship_data_fails_loudly(mutate):
    with pytest.raises(PolicyError):
        parse_relationships(_broken_relationships(mutate))


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("deadlines", "move_in_city_days", 0),
        ("deadlines", "birth_registration_months", "1"),
        ("deadlines", "accommodation_city_hours", True),
        ("deregistration", "cancel_id_card_reasons", ["DEATH", "RETIREMENT"]),
        ("register", "card_fields", ["name", "shoe_size"]),
        ("register", "correctable_fields", ["name", "birth_date"]),
        ("register", "ethnicities", ["汉", "汉"]),
        ("migration_certificate", "surprise", 1),
    ],
)
def test_bad_policy_data_fails_loudly(policy, table, key, value):
    doc = copy.deepcopy(_doc("policy.toml"))
    doc[table][key] = value
    with pytest.raises(PolicyError):
        parse_policy(doc, policy.relationships)


def test_missing_policy_key_fails(policy):
    doc = copy.deepcopy(_doc("policy.toml"))
    del doc["migration_certificate"]["validity_days"]
    with pytest.raises(PolicyError, match="validity_days"):
        parse_policy(doc, policy.relationships)


def test_an_unknown_key_is_refused_naming_the_file_and_the_key(policy):
    doc = copy.deepcopy(_doc("policy.toml"))
    doc["deadlines"]["coffee_break_minutes"] = 15
    with pytest.raises(PolicyError) as exc:
        parse_policy(doc, policy.relationships)
    assert str(exc.value) == (
        "services/residence/policy.toml: "
        "Object contains unknown field `coffee_break_minutes` - at `$.deadlines`"
    )
    relationships = copy.deepcopy(_doc("relationships.toml"))
    relationships["relationship"][5]["colour"] = "red"
    with pytest.raises(PolicyError) as exc:
        parse_relationships(relationships)
    assert str(exc.value) == (
        "services/residence/relationships.toml: "
        "Object contains unknown field `colour` - at `$.relationship[5]`"
    )
