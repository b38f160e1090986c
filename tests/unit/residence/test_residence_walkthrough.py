"""One household through the register: birth → name change → move-out → move-in elsewhere → the head's death
with a new head, checking the state and the events at every step."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from residence_factories import NANCHANG_COUNTY, XUHUI, person

from services.common.errors import FailedPrecondition
from services.common.idnumber import Sex, check_id_number
from services.residence import domain as d


def test_household_walkthrough(policy, make_household, fast_id_validator):
    day = date(2016, 7, 1)
    head = person("甲建国", Sex.MALE, date(1960, 3, 1), "02")
    wife = person("乙秀英", Sex.FEMALE, date(1962, 5, 2), "12")
    son = person("甲浩", Sex.MALE, date(1988, 8, 8), "21")
    daughter_in_law = person("丙丽", Sex.FEMALE, date(1989, 9, 9), "38", sequence=14)
    home = make_household(
        "3101040000001",
        XUHUI,
        [
            head,
            wife,
            son,
            daughter_in_law,
        ],
    )

    # 1. Birth of a grandson, registered in time.
    born = date(2016, 6, 20)
    r = d.register_birth(
        home,
        d.RegisterBirth(
            home.number,
            d.NewbornDetails("甲小宝", Sex.MALE, born, "上海市徐汇区", "汉", "上海市"),
            "41",
            declarant_id_number=son.id_number,  # the father
            father_id_number=son.id_number,
        ),
        policy=policy,
        today=day,
        used_sequences={1},
    )
    home, baby = r.household, r.person
    assert [e.type for e in r.events] == ["BirthRegistered"] and r.events[0].late is False
    assert baby.id_number[:17] == "31010420160620003"
    assert check_id_number(baby.id_number).valid and fast_id_validator.is_valid(baby.id_number)
    assert [m.relationship_code for m in home.members] == ["02", "12", "21", "38", "41"]

    # 2. The parents rename the baby (a minor: a parent applies).
    day += timedelta(days=10)
    r = d.change_name(home, d.ChangeName(baby.id_number, "甲天佑", son.id_number), policy=policy, today=day)
    home = r.household
    assert home.member(baby.id_number).name == "甲天佑"
    assert home.member(baby.id_number).former_names == ("甲小宝",)
    (event,) = r.events
    assert (event.type, event.old_name, event.new_name, event.card_renewal_required) == (
        "NameChanged",
        "甲小宝",
        "甲天佑",
        True,
    )

    # 3. The son moves out to 南昌县 (Jiangxi) with a migration certificate.
    day += timedelta(days=5)
    r = d.move_out(
        home,
        d.MoveOut(son.id_number, "360121", "江西省南昌县某村8号"),
        policy=policy,
        today=day,
        certificate_number="QY310104000001",
    )
    home, moving, certificate = r.household, r.person, r.certificate
    assert not home.has_member(son.id_number) and len(home.members) == 4
    assert moving.status is d.PersonStatus.MOVING_OUT
    assert certificate.destination_region_code == "360121" and certificate.used_on is None
    (event,) = r.events
    assert (event.type, event.certificate_number, event.same_city) == (
        "PersonMovedOut",
        "QY310104000001",
        False,
    )

    # 4. He arrives and moves in with his uncle's household there, within the countryside's 10 days.
    uncle = person("甲建军", Sex.MALE, date(1958, 1, 1), "02", region="360121")
    there = make_household("3601210000001", NANCHANG_COUNTY, [uncle])
    arrived = day + timedelta(days=2)
    day = arrived + timedelta(days=9)
    r = d.move_in(
        moving,
        there,
        d.MoveIn(son.id_number, arrived, "93", certificate.number, there.number),
        policy=policy,
        today=day,
        certificate=certificate,
    )
    there, son_now, certificate = r.household, r.person, r.certificate
    assert son_now.status is d.PersonStatus.REGISTERED and son_now.household_number == there.number
    assert [m.relationship_code for m in there.members] == ["02", "93"]
    assert certificate.used_on == day and certificate.used_by_household == there.number
    (event,) = r.events
    assert event.type == "PersonMovedIn" and event.late is False
    assert event.card_address_update_required is True and event.card_renewal_required is False
    # ... and the certificate cannot be used twice, nor can he be registered a second time.
    with pytest.raises(FailedPrecondition) as err:
        d.move_in(
            son_now,
            there,
            d.MoveIn(son.id_number, arrived, "93", certificate.number, there.number),
            policy=policy,
            today=day,
            certificate=certificate,
        )
    assert err.value.reason == d.PERSON_ALREADY_REGISTERED

    # 5. The head dies: refused without a new head, accepted with the widow named as head.
    day += timedelta(days=30)
    death = d.Deregister(head.id_number, d.DeregistrationReason.DEATH, day - timedelta(days=1))
    with pytest.raises(FailedPrecondition) as err:
        d.deregister(home, death, policy=policy, today=day)
    assert err.value.reason == d.HEAD_REPLACEMENT_REQUIRED
    death = d.Deregister(
        head.id_number,
        d.DeregistrationReason.DEATH,
        day - timedelta(days=1),
        new_head_id_number=wife.id_number,
    )
    r = d.deregister(home, death, policy=policy, today=day)
    home = r.household
    assert home.head.id_number == wife.id_number
    assert not home.has_member(head.id_number) and r.person.status is d.PersonStatus.DEREGISTERED
    assert [m.relationship_code for m in home.members] == ["02", "38", "41"]
    deregistered, head_changed = r.events
    assert (deregistered.type, deregistered.reason, deregistered.cancel_id_card) == (
        "PersonDeregistered",
        d.DeregistrationReason.DEATH,
        True,
    )
    assert (
        head_changed.type,
        head_changed.old_head_id_number,
        head_changed.new_head_id_number,
        head_changed.cause,
    ) == ("HeadChanged", head.id_number, wife.id_number, "DEATH")
    d.check_household(home, day)
