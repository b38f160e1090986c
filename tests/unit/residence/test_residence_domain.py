"""The household register's rules, one at a time, including every refusal."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from residence_factories import NANCHANG_COUNTY, PUDONG, TODAY, XUHUI, person

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.idnumber import Sex, build_id_number, check_id_number
from services.residence import domain as d


def fields_of(exc: InvalidArgument) -> dict[str, str]:
    return {v.field: v.reason for v in exc.violations}


# -- household invariants -------------------------------------------------------------------------------


def test_members_are_listed_in_register_order(policy):
    members = [
        person("丁父", Sex.MALE, date(1930, 1, 1), "51", sequence=31),
        person("丁孙", Sex.MALE, date(2010, 1, 1), "41", sequence=33),
        person("丁弟", Sex.MALE, date(1965, 1, 1), "73", sequence=35),
        person("丁女", Sex.FEMALE, date(1990, 1, 1), "32", sequence=32),
        person("丁子", Sex.MALE, date(1986, 1, 1), "22", sequence=37),
        person("丁妻", Sex.FEMALE, date(1961, 1, 1), "12", sequence=34),
        person("丁友", Sex.MALE, date(1970, 1, 1), "99", sequence=39),
        person("丁叔", Sex.MALE, date(1940, 1, 1), "83", sequence=41),
        person("丁祖母", Sex.FEMALE, date(1910, 1, 1), "62", sequence=36),
        person("丁户主", Sex.MALE, date(1960, 1, 1), "02", sequence=43),
    ]
    h = d.establish_household(
        "H1", d.HouseholdType.FAMILY, "某路1号", XUHUI, members, policy=policy, today=TODAY
    )
    assert [m.relationship_code for m in h.members] == [
        "02",
        "12",
        "22",
        "32",
        "41",
        "51",
        "62",
        "73",
        "83",
        "99",
    ]


@pytest.mark.parametrize(
    ("codes", "reason"),
    [
        (["12", "21"], d.HOUSEHOLD_HEAD_COUNT),
        (["02", "02"], d.HOUSEHOLD_HEAD_COUNT),
        (["02", "12", "10"], d.SECOND_SPOUSE),
    ],
)
def test_household_needs_exactly_one_head_and_one_spouse(policy, codes, reason):
    sexes = {"02": Sex.MALE, "12": Sex.FEMALE, "21": Sex.MALE, "10": Sex.FEMALE}
    members = [
        person(f"戊{i}", sexes[c], date(1970, 1, 1 + i), c, sequence=11 + 2 * i) for i, c in enumerate(codes)
    ]
    with pytest.raises(FailedPrecondition) as err:
        d.establish_household(
            "H1", d.HouseholdType.FAMILY, "某路", XUHUI, members, policy=policy, today=TODAY
        )
    assert err.value.reason == reason


def test_head_must_be_an_adult_with_full_capacity(policy):
    minor = person("己", Sex.MALE, date(1998, 7, 2), "02")  # 17 on TODAY, 18 the next day
    with pytest.raises(FailedPrecondition) as err:
        d.establish_household(
            "H1", d.HouseholdType.FAMILY, "某路", XUHUI, [minor], policy=policy, today=TODAY
        )
    assert err.value.reason == d.HEAD_NOT_ADULT
    h = d.establish_household(
        "H1", d.HouseholdType.FAMILY, "某路", XUHUI, [minor], policy=policy, today=TODAY + timedelta(days=1)
    )
    assert h.head.name == "己"
    incapable = dataclasses.replace(
        person("庚", Sex.MALE, date(1970, 1, 1), "02"), civil_capacity=d.CivilCapacity.LIMITED
    )
    with pytest.raises(FailedPrecondition) as err:
        d.establish_household(
            "H1", d.HouseholdType.FAMILY, "某路", XUHUI, [incapable], policy=policy, today=TODAY
        )
    assert err.value.reason == d.HEAD_LACKS_CIVIL_CAPACITY


def test_member_codes_are_checked_against_the_table(policy):
    members = [
        person("辛", Sex.MALE, date(1970, 1, 1), "02"),
        person("壬", Sex.MALE, date(1971, 1, 1), "12", sequence=13),  # 妻 for a man
        person("癸", Sex.MALE, date(1995, 1, 1), "13", sequence=15),  # no such code
        person("子", Sex.MALE, date(1995, 1, 2), "01", sequence=17),  # 本人 is not a member's relation
    ]
    with pytest.raises(InvalidArgument) as err:
        d.establish_household(
            "H1", d.HouseholdType.FAMILY, "某路", XUHUI, members, policy=policy, today=TODAY
        )
    assert fields_of(err.value) == {
        "members[1].relationship_code": d.RELATIONSHIP_SEX_MISMATCH,
        "members[2].relationship_code": d.UNKNOWN_RELATIONSHIP_CODE,
        "members[3].relationship_code": d.RELATIONSHIP_NOT_FOR_MEMBER,
    }


# -- ID number assignment -------------------------------------------------------------------------------


def test_assigned_numbers_take_the_lowest_free_sequence_of_the_right_parity():
    born = date(2016, 6, 20)
    assert d.assign_id_number("310104", born, Sex.MALE, set())[14:17] == "001"
    assert d.assign_id_number("310104", born, Sex.FEMALE, set())[14:17] == "002"
    number = d.assign_id_number("310104", born, Sex.MALE, {1, 3, 7})
    assert d.sequence_of(number) == 5
    check = check_id_number(number)
    assert (
        check.valid and check.sex is Sex.MALE and check.birth_date == born and check.region_code == "310104"
    )
    assert d.sequence_of(d.assign_id_number("310104", born, Sex.FEMALE, {2, 4})) == 6


def test_sequences_run_out():
    with pytest.raises(FailedPrecondition) as err:
        d.assign_id_number("310104", date(2016, 6, 20), Sex.FEMALE, set(range(0, 1000, 2)))
    assert err.value.reason == d.SEQUENCES_EXHAUSTED
    assert len(list(d.free_sequences(Sex.MALE, set()))) == 500
    assert len(list(d.free_sequences(Sex.FEMALE, set()))) == 499  # 000 is never assigned


def test_a_code_not_in_use_in_the_birth_year_is_refused():
    with pytest.raises(FailedPrecondition) as err:
        d.assign_id_number("310151", date(2010, 1, 1), Sex.MALE, set())  # 崇明区 from 2016
    assert err.value.reason == d.REGION_CODE_NOT_ASSIGNABLE


# -- birth registration ----------------------------------------------------------------------------------


def birth(born: date | None, **overrides) -> d.RegisterBirth:
    details = d.NewbornDetails("甲小明", Sex.MALE, born, "上海市徐汇区", "汉", "上海市")
    details = dataclasses.replace(
        details, **{k: v for k, v in overrides.items() if k not in ("relationship_code", "declarant")}
    )
    declarant = overrides.get("declarant", build_id_number("310104", date(1960, 3, 1), 11))  # the head
    return d.RegisterBirth(
        "3101040000001", details, overrides.get("relationship_code", "41"), declarant_id_number=declarant
    )


def test_birth_assigns_a_number_from_the_registering_area_and_flags_late(policy, family):
    result = d.register_birth(family, birth(date(2016, 6, 1)), policy=policy, today=TODAY, used_sequences={1})
    (event,) = result.events
    assert event.type == "BirthRegistered"
    assert result.person.id_number.startswith("31010420160601003")
    assert check_id_number(result.person.id_number).valid
    assert event.deadline == date(2016, 7, 1) and event.late is False
    assert family.household_number if False else result.household.has_member(result.person.id_number)
    late = d.register_birth(
        family, birth(date(2016, 5, 31)), policy=policy, today=TODAY, used_sequences=set()
    ).events[0]
    assert late.deadline == date(2016, 6, 30) and late.late is True


def test_birth_in_the_future_and_every_other_problem_reported_at_once(policy, family):
    cmd = birth(date(2016, 7, 2), name="", ethnicity="火星", relationship_code="12")
    with pytest.raises(InvalidArgument) as err:
        d.register_birth(family, cmd, policy=policy, today=TODAY, used_sequences=set())
    assert fields_of(err.value) == {
        "person.name": d.REQUIRED,
        "person.birth_date": d.FUTURE_DATE,
        "person.ethnicity": d.UNKNOWN_ETHNICITY,
        "relationship_code": d.RELATIONSHIP_SEX_MISMATCH,
    }


def test_a_newborn_cannot_be_the_heads_spouse_or_parent(policy, family):
    for code in ("10", "51", "61", "02"):
        with pytest.raises(InvalidArgument) as err:
            d.register_birth(
                family,
                birth(date(2016, 6, 1), relationship_code=code),
                policy=policy,
                today=TODAY,
                used_sequences=set(),
            )
        assert fields_of(err.value)["relationship_code"] in {
            d.RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN,
            d.RELATIONSHIP_SEX_MISMATCH,
        }


# -- move-out and move-in --------------------------------------------------------------------------------


def test_move_out_of_the_city_issues_a_certificate(policy, family):
    son = family.members[2]
    result = d.move_out(
        family,
        d.MoveOut(son.id_number, "360121", "江西省南昌县某村1号"),
        policy=policy,
        today=TODAY,
        certificate_number="QY0001",
    )
    cert = result.certificate
    assert cert.valid_until == TODAY + timedelta(days=policy.certificate_validity_days)
    assert (cert.destination_region_code, cert.origin_region_code, cert.id_number) == (
        "360121",
        "310104",
        son.id_number,
    )
    assert result.person.status is d.PersonStatus.MOVING_OUT
    assert not result.household.has_member(son.id_number)
    (event,) = result.events
    assert event.type == "PersonMovedOut" and event.certificate_number == "QY0001" and not event.same_city


def test_same_city_transfer_needs_no_certificate(policy, family):
    son = family.members[2]
    result = d.move_out(
        family,
        d.MoveOut(son.id_number, "310115", "浦东某路"),
        policy=policy,
        today=TODAY,
        certificate_number="",
    )
    assert result.certificate is None and result.events[0].same_city
    assert (
        d.same_city("310104", "310230")
        and d.same_city("360102", "360121")
        and not d.same_city("360102", "360202")
    )


def test_moving_within_the_same_area_is_not_a_move_out(policy, family):
    with pytest.raises(FailedPrecondition) as err:
        d.move_out(
            family,
            d.MoveOut(family.members[2].id_number, "310104", "徐汇另一路"),
            policy=policy,
            today=TODAY,
            certificate_number="QY1",
        )
    assert err.value.reason == d.SAME_REGISTERING_AREA


def test_the_head_leaves_only_with_a_named_adult_successor(policy, family):
    head = family.head
    cmd = d.MoveOut(head.id_number, "360121", "某村")
    with pytest.raises(FailedPrecondition) as err:
        d.move_out(family, cmd, policy=policy, today=TODAY, certificate_number="QY1")
    assert err.value.reason == d.HEAD_REPLACEMENT_REQUIRED
    with pytest.raises(FailedPrecondition) as err:
        d.move_out(
            family,
            dataclasses.replace(cmd, new_head_id_number="310104199001010011"),
            policy=policy,
            today=TODAY,
            certificate_number="QY1",
        )
    assert err.value.reason == d.NEW_HEAD_NOT_A_MEMBER
    wife = family.members[1]
    ok = d.move_out(
        family,
        dataclasses.replace(
            cmd, new_head_id_number=wife.id_number, relationship_updates={family.members[3].id_number: "54"}
        ),
        policy=policy,
        today=TODAY,
        certificate_number="QY1",
    )
    assert ok.household.head.id_number == wife.id_number
    _moved_out, head_changed = ok.events
    assert head_changed.type == "HeadChanged" and head_changed.cause == "MOVED_OUT"
    assert (family.members[3].id_number, "52", "54") in head_changed.relationship_changes


def test_a_new_head_is_named_only_when_the_head_leaves(policy, family):
    cmd = d.MoveOut(
        family.members[2].id_number, "360121", "某村", new_head_id_number=family.members[1].id_number
    )
    with pytest.raises(FailedPrecondition) as err:
        d.move_out(family, cmd, policy=policy, today=TODAY, certificate_number="QY1")
    assert err.value.reason == d.HEAD_NOT_LEAVING


def test_a_minor_cannot_become_head(policy, make_household):
    father = person("甲", Sex.MALE, date(1970, 1, 1), "02")
    daughter = person("乙", Sex.FEMALE, date(2005, 1, 1), "31")
    h = make_household("H9", XUHUI, [father, daughter])
    with pytest.raises(FailedPrecondition) as err:
        d.move_out(
            h,
            d.MoveOut(father.id_number, "360121", "某村", new_head_id_number=daughter.id_number),
            policy=policy,
            today=TODAY,
            certificate_number="QY1",
        )
    assert err.value.reason == d.HEAD_NOT_ADULT


@pytest.fixture
def moving(policy, family):
    son = family.members[2]
    out = d.move_out(
        family,
        d.MoveOut(son.id_number, "360121", "某村1号"),
        policy=policy,
        today=TODAY,
        certificate_number="QY7",
    )
    return out.person, out.certificate


@pytest.fixture
def receiving(make_household):
    return make_household(
        "H-NC", NANCHANG_COUNTY, [person("丑", Sex.MALE, date(1950, 1, 1), "02", region="360121")]
    )


def test_move_in_consumes_the_certificate_and_updates_the_card_record(policy, moving, receiving):
    son, cert = moving
    arrived = TODAY + timedelta(days=2)
    result = d.move_in(
        son,
        receiving,
        d.MoveIn(son.id_number, arrived, "93", "QY7", "H-NC"),
        policy=policy,
        today=arrived + timedelta(days=10),
        certificate=cert,
    )
    assert result.person.status is d.PersonStatus.REGISTERED and result.person.household_number == "H-NC"
    assert result.person.arrived_in_city.on == arrived
    assert result.certificate.used_on == arrived + timedelta(days=10)
    (event,) = result.events
    assert (
        event.type == "PersonMovedIn"
        and event.card_address_update_required
        and not event.card_renewal_required
    )
    assert event.late is False and event.deadline == arrived + timedelta(days=10)  # countryside: 10 days
    late = d.move_in(
        son,
        receiving,
        d.MoveIn(son.id_number, arrived, "93", "QY7", "H-NC"),
        policy=policy,
        today=arrived + timedelta(days=11),
        certificate=cert,
    )
    assert late.events[0].late is True


@pytest.mark.parametrize(
    ("change", "today_shift", "reason"),
    [
        ({"used_on": TODAY}, 1, d.CERTIFICATE_ALREADY_USED),
        ({}, 31, d.CERTIFICATE_EXPIRED),
        ({"destination_region_code": "360102"}, 1, d.CERTIFICATE_DESTINATION_MISMATCH),
        ({"id_number": "11010519491231002X"}, 1, d.CERTIFICATE_PERSON_MISMATCH),
        ({"number": "QY8"}, 1, d.CERTIFICATE_REQUIRED),
    ],
)
def test_move_in_refuses_a_bad_certificate(policy, moving, receiving, change, today_shift, reason):
    son, cert = moving
    cert = dataclasses.replace(cert, **change)
    today = TODAY + timedelta(days=today_shift)
    with pytest.raises(FailedPrecondition) as err:
        d.move_in(
            son,
            receiving,
            d.MoveIn(son.id_number, TODAY, "93", "QY7", "H-NC"),
            policy=policy,
            today=today,
            certificate=cert,
        )
    assert err.value.reason == reason


def test_expiry_is_inclusive_of_the_last_valid_day(policy, moving, receiving):
    son, cert = moving
    result = d.move_in(
        son,
        receiving,
        d.MoveIn(son.id_number, TODAY, "93", "QY7", "H-NC"),
        policy=policy,
        today=cert.valid_until,
        certificate=cert,
    )
    assert result.person.status is d.PersonStatus.REGISTERED


def test_a_registered_person_cannot_move_in_elsewhere(policy, family, receiving):
    son = family.members[2]
    with pytest.raises(FailedPrecondition) as err:
        d.move_in(
            son,
            receiving,
            d.MoveIn(son.id_number, TODAY, "93", "QY7", "H-NC"),
            policy=policy,
            today=TODAY,
            certificate=None,
        )
    assert err.value.reason == d.PERSON_ALREADY_REGISTERED


def test_move_in_input_problems_are_collected(policy, moving, receiving):
    son, cert = moving
    with pytest.raises(InvalidArgument) as err:
        d.move_in(
            son,
            receiving,
            d.MoveIn(son.id_number, TODAY + timedelta(days=1), "88", "QY7", ""),
            policy=policy,
            today=TODAY,
            certificate=cert,
        )
    assert fields_of(err.value) == {
        "arrived_on": d.FUTURE_DATE,
        "household_number": d.REQUIRED,
        "relationship_code": d.RELATIONSHIP_SEX_MISMATCH,  # 88 姨母 for a man
    }


def test_same_city_transfer_moves_in_without_certificate_and_city_deadline_is_three_days(
    policy, family, make_household
):
    son = family.members[2]
    out = d.move_out(
        family,
        d.MoveOut(son.id_number, "310115", "浦东某路"),
        policy=policy,
        today=TODAY,
        certificate_number="",
    )
    pudong = make_household("H-PD", PUDONG, [person("寅", Sex.MALE, date(1950, 1, 1), "02", region="310115")])
    cmd = d.MoveIn(son.id_number, TODAY, "99", "", "H-PD")
    on_time = d.move_in(
        out.person, pudong, cmd, policy=policy, today=TODAY + timedelta(days=3), certificate=None
    )
    assert on_time.events[0].late is False and on_time.events[0].certificate_number is None
    late = d.move_in(
        out.person, pudong, cmd, policy=policy, today=TODAY + timedelta(days=4), certificate=None
    )
    assert late.events[0].late is True
    other = make_household("H-XH2", XUHUI, [person("卯", Sex.MALE, date(1950, 1, 1), "02", sequence=51)])
    with pytest.raises(FailedPrecondition) as err:
        d.move_in(
            out.person,
            other,
            dataclasses.replace(cmd, household_number="H-XH2"),
            policy=policy,
            today=TODAY,
            certificate=None,
        )
    assert err.value.reason == d.CERTIFICATE_DESTINATION_MISMATCH


def test_move_in_founding_a_household(policy, moving):
    son, cert = moving
    new = d.NewHousehold("H-NEW", d.HouseholdType.FAMILY, "南昌县某村2号", NANCHANG_COUNTY)
    result = d.move_in(
        son,
        None,
        d.MoveIn(son.id_number, TODAY, "02", "QY7", new_household=new),
        policy=policy,
        today=TODAY,
        certificate=cert,
    )
    assert result.household.number == "H-NEW" and result.household.head.id_number == son.id_number


# -- deregistration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", list(d.DeregistrationReason))
def test_deregistration_reasons_and_card_cancellation_policy(policy, family, reason):
    son = family.members[2]
    cmd = d.Deregister(son.id_number, reason, TODAY)
    result = d.deregister(family, cmd, policy=policy, today=TODAY)
    assert result.person.status is d.PersonStatus.DEREGISTERED and result.person.status_reason is reason
    assert result.events[0].cancel_id_card is True
    keep_cards = dataclasses.replace(policy, cancel_card_reasons=frozenset())
    assert d.deregister(family, cmd, policy=keep_cards, today=TODAY).events[0].cancel_id_card is False


def test_deregistration_input_and_dates(policy, family):
    with pytest.raises(InvalidArgument) as err:
        d.deregister(family, d.Deregister("", None, TODAY + timedelta(days=1)), policy=policy, today=TODAY)
    assert fields_of(err.value) == {
        "id_number": d.REQUIRED,
        "reason": d.REQUIRED,
        "occurred_on": d.FUTURE_DATE,
    }
    with pytest.raises(NotFound):
        d.deregister(
            family,
            d.Deregister("11010519491231002X", d.DeregistrationReason.DEATH, TODAY),
            policy=policy,
            today=TODAY,
        )


def test_last_member_leaving_closes_the_household(policy, make_household):
    alone = person("辰", Sex.MALE, date(1940, 1, 1), "02")
    h = make_household("H-1", XUHUI, [alone])
    result = d.deregister(
        h, d.Deregister(alone.id_number, d.DeregistrationReason.DEATH, TODAY), policy=policy, today=TODAY
    )
    assert result.household.closed_on == TODAY and result.household.members == ()
    assert [e.type for e in result.events] == ["PersonDeregistered", "HouseholdClosed"]
    with pytest.raises(FailedPrecondition) as err:
        d.register_birth(
            result.household, birth(date(2016, 6, 1)), policy=policy, today=TODAY, used_sequences=()
        )
    assert err.value.reason == d.HOUSEHOLD_CLOSED


def test_a_countryside_death_reported_after_a_month_is_flagged(policy, make_household):
    head = person("巳", Sex.MALE, date(1950, 1, 1), "02", region="360121")
    wife = person("午", Sex.FEMALE, date(1952, 1, 1), "12", region="360121")
    h = make_household("H-R", NANCHANG_COUNTY, [head, wife])
    cmd = d.Deregister(wife.id_number, d.DeregistrationReason.DEATH, date(2016, 5, 31))
    assert d.deregister(h, cmd, policy=policy, today=date(2016, 6, 30)).events[0].late is False
    assert d.deregister(h, cmd, policy=policy, today=date(2016, 7, 1)).events[0].late is True


# -- head change, name change, correction ----------------------------------------------------------------


def test_voluntary_head_change(policy, family):
    wife = family.members[1]
    result = d.change_head(family, d.ChangeHead(wife.id_number, "11"), policy=policy, today=TODAY)
    assert result.household.head.id_number == wife.id_number
    assert result.household.members[1].relationship_code == "11"
    with pytest.raises(InvalidArgument) as err:
        d.change_head(family, d.ChangeHead(wife.id_number, "12"), policy=policy, today=TODAY)
    assert fields_of(err.value) == {"old_head_relationship_code": d.RELATIONSHIP_SEX_MISMATCH}


def test_adults_change_their_own_name(policy, family):
    son = family.members[2]
    result = d.change_name(
        family, d.ChangeName(son.id_number, "甲浩然", son.id_number), policy=policy, today=TODAY
    )
    assert result.person.name == "甲浩然" and result.person.former_names == ("甲浩",)
    (event,) = result.events
    assert event.type == "NameChanged" and event.card_renewal_required is True
    with pytest.raises(FailedPrecondition) as err:
        d.change_name(
            family, d.ChangeName(son.id_number, "甲浩然", family.head.id_number), policy=policy, today=TODAY
        )
    assert err.value.reason == d.APPLICANT_NOT_ALLOWED


def test_a_minors_name_is_changed_by_the_minor_or_a_parent(policy, make_household):
    head = person("未", Sex.MALE, date(1960, 1, 1), "02")
    wife = person("申", Sex.FEMALE, date(1962, 1, 1), "12")
    grandma = person("酉", Sex.FEMALE, date(1935, 1, 1), "52", sequence=22)
    child = person("戌", Sex.FEMALE, date(2005, 1, 1), "31", sequence=24)
    h = make_household("H-M", XUHUI, [head, wife, grandma, child])
    for applicant in (child, head, wife):
        cmd = d.ChangeName(child.id_number, "戌新", applicant.id_number)
        assert d.change_name(h, cmd, policy=policy, today=TODAY).person.name == "戌新"
    with pytest.raises(FailedPrecondition) as err:
        d.change_name(h, d.ChangeName(child.id_number, "戌新", grandma.id_number), policy=policy, today=TODAY)
    assert err.value.reason == d.APPLICANT_NOT_ALLOWED
    assert d.is_parent_in_household(h, grandma.id_number, head.id_number)


def test_correcting_an_item_on_the_card_requires_a_reissue(policy, family):
    son = family.members[2]
    result = d.correct_entry(
        family, d.CorrectEntry(son.id_number, "ethnicity", "回"), policy=policy, today=TODAY
    )
    (event,) = result.events
    assert event.type == "EntryCorrected" and event.card_reissue_required is True
    assert (event.old_value, event.new_value) == ("汉", "回")
    assert result.person.change_log[-1].kind == "CORRECTION"
    edu = d.correct_entry(
        family, d.CorrectEntry(son.id_number, "education", "BACHELOR"), policy=policy, today=TODAY
    )
    assert edu.person.education is d.Education.BACHELOR and edu.events[0].card_reissue_required is False


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("birth_date", "1988-08-09", d.NOT_CORRECTABLE),
        ("education", "PHD", d.BAD_VALUE),
        ("ethnicity", "火星", d.UNKNOWN_ETHNICITY),
        ("name", "", d.REQUIRED),
    ],
)
def test_bad_corrections(policy, family, field, value, reason):
    with pytest.raises(InvalidArgument) as err:
        d.correct_entry(
            family, d.CorrectEntry(family.members[2].id_number, field, value), policy=policy, today=TODAY
        )
    assert list(fields_of(err.value).values()) == [reason]


# -- foreigners' accommodation ----------------------------------------------------------------------------

ARRIVED = datetime(2016, 7, 1, 8, 0, tzinfo=UTC)
HOTEL = d.AccommodationHost(d.HostKind.HOTEL, "某某酒店", "HOTEL-310104-001")


def stay(**overrides) -> d.RegisterAccommodation:
    base = d.RegisterAccommodation(
        "e1234567",
        "DEU",
        "Anna Beispiel",
        "上海市徐汇区某路3号",
        HOTEL,
        ARRIVED,
        ARRIVED.date(),
        date(2016, 7, 10),
    )
    return dataclasses.replace(base, **overrides)


@pytest.mark.parametrize(
    ("station", "hours", "late"),
    [(XUHUI, 24, False), (XUHUI, 25, True), (NANCHANG_COUNTY, 72, False), (NANCHANG_COUNTY, 73, True)],
)
def test_accommodation_deadline(policy, station, hours, late):
    result = d.register_accommodation(
        stay(),
        station=station,
        policy=policy,
        now=ARRIVED + timedelta(hours=hours),
        registration_number="ZS1",
    )
    (event,) = result.events
    assert event.type == "AccommodationRegistered" and event.late is late
    assert result.accommodation.passport_number == "E1234567"


def test_accommodation_problems_are_collected(policy):
    host = d.AccommodationHost(d.HostKind.RESIDENT, "房东", "110105194912310021")
    cmd = stay(
        passport_number="??",
        nationality="CHN",
        to_date=date(2016, 6, 30),
        host=host,
        arrived_at=ARRIVED + timedelta(days=1),
    )
    with pytest.raises(InvalidArgument) as err:
        d.register_accommodation(cmd, station=XUHUI, policy=policy, now=ARRIVED, registration_number="ZS1")
    assert fields_of(err.value) == {
        "passport_number": "BAD_FORMAT",
        "nationality": "NOT_A_FOREIGN_NATIONALITY",
        "host.identifier": "BAD_CHECK_DIGIT",
        "arrived_at": d.FUTURE_DATE,
        "to_date": d.BEFORE_START,
    }


# -- helpers and events ----------------------------------------------------------------------------------


def test_event_payloads_are_json_ready(policy, family):
    event = d.register_birth(
        family, birth(date(2016, 6, 1)), policy=policy, today=TODAY, used_sequences=()
    ).events[0]
    payload = json.loads(json.dumps(event.payload()))
    assert payload["sex"] == "MALE" and payload["birth_date"] == "2016-06-01" and payload["late"] is False
    assert "type" not in payload and event.type == "BirthRegistered"
