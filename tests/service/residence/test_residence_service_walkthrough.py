"""The issue's "done when": a household walked through birth → name change → move-out → move-in elsewhere →
the head's death with a new head, checking the register and the events at each step."""

from __future__ import annotations

import datetime as dt

from id_validator import validator

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from services.common.idnumber import check_id_number
from tests.service.residence.conftest import PUDONG_FAMILY, TIANJIN, TODAY, Residence, as_date, date, rid


async def test_household_walkthrough(residence: Residence) -> None:
    stub = residence.stub
    number = PUDONG_FAMILY.number
    head, grandmother, father, mother, grandson = (m.id_number for m in PUDONG_FAMILY.members)
    household = await residence.household(number)
    assert household.head_id_number == head and household.member_count == 5
    cursor = await residence.last_sequence()

    # 1. Birth: a granddaughter, registered ten days after birth (in time).
    born = TODAY - dt.timedelta(days=10)
    birth = await stub.RegisterBirth(
        pb.RegisterBirthRequest(
            request_id=rid(),
            household_number=number,
            person=pb.Newborn(
                name="赵小雨",
                sex=common_pb2.SEX_FEMALE,
                birth_date=date(born),
                birth_place="上海市浦东新区",
                ethnicity="汉",
                native_place="上海市",
            ),
            relationship_code="42",
            declarant_id_number=mother,
            mother_id_number=mother,
            father_id_number=father,
        )
    )
    baby = birth.id_number
    assert not birth.late and as_date(birth.deadline) == dt.date(2016, 10, 5)
    assert baby == birth.person.id_number and baby.startswith(f"310115{born:%Y%m%d}")
    assert check_id_number(baby, TODAY).valid and validator.is_valid(baby, True)
    assert int(baby[16]) % 2 == 0  # female: an even sequence
    person = await residence.person(baby)
    assert person.status == pb.PERSON_STATUS_REGISTERED and person.id == birth.person.id
    assert (person.household_number, person.hukou_region_code, person.hukou_province_code) == (
        number,
        "310115",
        "31",
    )
    assert await residence.members(number) == [
        ("赵建国", "02"),
        ("钱秀英", "12"),
        ("赵伟", "21"),
        ("孙芳", "38"),
        ("赵子涵", "41"),
        ("赵小雨", "42"),
    ]
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["BirthRegistered"]
    assert events[0].aggregate_id == person.id and events[0].data["id_number"] == baby
    assert events[0].data["household_id"] == household.id and events[0].data["late"] is False
    assert "name" not in events[0].data

    # 2. Name change, applied for by a parent: identity learns that the card must be renewed.
    renamed = await stub.ChangeName(
        pb.ChangeNameRequest(request_id=rid(), id_number=baby, new_name="赵雨桐", applicant_id_number=father)
    )
    assert renamed.card_renewal_required
    person = await residence.person(baby)
    assert person.name == "赵雨桐" and list(person.former_names) == ["赵小雨"]
    assert [(c.kind, c.old_value, c.new_value) for c in person.changes] == [
        ("NAME_CHANGE", "赵小雨", "赵雨桐")
    ]
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["NameChanged"]
    assert events[0].aggregate_id == person.id
    assert events[0].data["id_number"] == baby and events[0].data["card_renewal_required"] is True

    # 3. Move-out of the grandson to Tianjin: a migration certificate.
    moved_out = await stub.MoveOut(
        pb.MoveOutRequest(
            request_id=rid(),
            id_number=grandson,
            destination_region_code="120101",
            destination_address="天津市和平区南京路101号3门201室",
        )
    )
    certificate = moved_out.certificate
    assert not moved_out.same_city_transfer and certificate.number.startswith("3101152016")
    assert as_date(certificate.valid_until) == TODAY + dt.timedelta(days=30)
    assert moved_out.person.status == pb.PERSON_STATUS_MOVING_OUT
    assert moved_out.origin_household.member_count == 5
    person = await residence.person(grandson)
    assert person.status == pb.PERSON_STATUS_MOVING_OUT
    assert person.pending_move.certificate_number == certificate.number
    assert "赵子涵" not in [name for name, _ in await residence.members(number)]
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonMovedOut"]
    assert events[0].aggregate_id == person.id
    assert events[0].data["certificate_number"] == certificate.number
    assert events[0].data["destination_region_code"] == "120101"

    # 4. Move-in elsewhere: into the Tianjin household, consuming the certificate.
    moved_in = await stub.MoveIn(
        pb.MoveInRequest(
            request_id=rid(),
            id_number=grandson,
            arrived_on=date(TODAY),
            certificate_number=certificate.number,
            household_number=TIANJIN.number,
            relationship_code="93",
        )
    )
    assert not moved_in.late and moved_in.certificate.used_by_household_number == TIANJIN.number
    person = await residence.person(grandson)
    assert person.status == pb.PERSON_STATUS_REGISTERED
    assert (person.household_number, person.hukou_province_code, person.hukou_region_code) == (
        TIANJIN.number,
        "12",
        "120101",
    )
    assert person.arrived_at_address.from_place.startswith("上海市浦东新区")
    assert await residence.members(TIANJIN.number) == [("王津生", "02"), ("赵子涵", "93")]
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonMovedIn"]
    data = events[0].data
    assert events[0].aggregate_id == person.id and data["id_number"] == grandson
    assert data["card_address_update_required"] is True and data["card_renewal_required"] is False
    assert data["household_id"] == person.household_id and data["region_code"] == "120101"

    # 5. The head dies; his son becomes the head in the same operation, the others' codes follow.
    died = await stub.Deregister(
        pb.DeregisterRequest(
            request_id=rid(),
            id_number=head,
            reason=pb.DEREGISTRATION_REASON_DEATH,
            occurred_on=date(TODAY - dt.timedelta(days=2)),
            new_head_id_number=father,
            relationship_updates={grandmother: "52", mother: "12", baby: "32"},
        )
    )
    assert died.cancel_id_card and died.person.status == pb.PERSON_STATUS_DEREGISTERED
    assert died.household.head_id_number == father
    person = await residence.person(head)
    assert person.status == pb.PERSON_STATUS_DEREGISTERED
    assert person.deregistration_reason == pb.DEREGISTRATION_REASON_DEATH
    assert await residence.members(number) == [
        ("赵伟", "02"),
        ("孙芳", "12"),
        ("赵雨桐", "32"),
        ("钱秀英", "52"),
    ]
    household = await residence.household(number)
    assert household.head_name == "赵伟" and household.member_count == 4
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonDeregistered", "HeadChanged"]
    assert events[0].aggregate_id == person.id and events[0].data["reason"] == "DEATH"
    assert events[1].aggregate_id == household.id
    assert events[1].data["old_head_id_number"] == head and events[1].data["new_head_id_number"] == father
    assert events[1].data["cause"] == "DEATH"
    assert sorted(tuple(c) for c in events[1].data["relationship_changes"]) == sorted(
        [(father, "21", "02"), (grandmother, "12", "52"), (mother, "38", "12"), (baby, "42", "32")]
    )
