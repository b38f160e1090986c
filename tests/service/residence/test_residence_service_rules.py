"""Idempotency, field violations from the status details, refusals, compensation and pagination."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import pytest

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from services.residence.seed import DEMO_PEOPLE
from tests.service.residence.conftest import (
    JINGAN_SIBLINGS,
    PUDONG_FAMILY,
    TIANJIN,
    TODAY,
    XUHUI_FAMILY,
    Residence,
    accommodation_request,
    date,
    instant,
    reason,
    rid,
    violations,
)

CHEN = DEMO_PEOPLE[2]  # 陈沪明, alone in 徐汇


def birth_request(**overrides: Any) -> pb.RegisterBirthRequest:
    fields: dict[str, Any] = {
        "request_id": rid(),
        "household_number": XUHUI_FAMILY.number,
        "person": pb.Newborn(
            name="张小雪",
            sex=common_pb2.SEX_FEMALE,
            birth_date=date(TODAY - dt.timedelta(days=40)),
            birth_place="上海市徐汇区",
            ethnicity="汉",
            native_place="上海市",
        ),
        "relationship_code": "32",
        "declarant_id_number": XUHUI_FAMILY.members[0].id_number,  # the head
    }
    fields.update(overrides)
    return pb.RegisterBirthRequest(**fields)


async def test_the_same_request_id_answers_the_same_and_changes_nothing(residence: Residence) -> None:
    cursor = await residence.last_sequence()
    request = birth_request()
    first = await residence.stub.RegisterBirth(request)
    again = await residence.stub.RegisterBirth(request)
    assert first == again and first.late  # 40 days after birth: accepted, flagged
    assert (await residence.household(XUHUI_FAMILY.number)).member_count == 4
    events, _ = await residence.events(cursor)
    assert [e.type for e in events] == ["BirthRegistered"]
    assert events[0].request_id == request.request_id and events[0].data["late"] is True

    other = birth_request(request_id=request.request_id, relationship_code="31")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await residence.stub.RegisterBirth(other)
    assert violations(exc.value) == {"request_id": "REUSED_WITH_DIFFERENT_REQUEST"}


async def test_field_violations_are_reported_together(residence: Residence) -> None:
    stub = residence.stub
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetPerson(pb.GetPersonRequest(id_number="120101198503120116"))
    assert violations(exc.value) == {"id_number": "BAD_CHECK_DIGIT"}

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.RegisterBirth(
            birth_request(
                relationship_code="13",
                person=pb.Newborn(
                    name="张小雪",
                    sex=common_pb2.SEX_FEMALE,
                    birth_date=date(TODAY + dt.timedelta(days=1)),
                    birth_place="上海市徐汇区",
                    ethnicity="汉",
                    native_place="上海市",
                ),
            )
        )
    assert violations(exc.value) == {
        "person.birth_date": "FUTURE_DATE",
        "relationship_code": "UNKNOWN_RELATIONSHIP_CODE",
    }

    # A second head: nobody joins a household as its head ("02").
    moved = await stub.MoveOut(
        pb.MoveOutRequest(
            request_id=rid(),
            id_number=XUHUI_FAMILY.members[2].id_number,
            destination_region_code="120101",
            destination_address="天津市和平区南京路101号",
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.MoveIn(
            pb.MoveInRequest(
                request_id=rid(),
                id_number=moved.person.id_number,
                arrived_on=date(TODAY),
                certificate_number=moved.certificate.number,
                household_number=TIANJIN.number,
                relationship_code="02",
            )
        )
    assert violations(exc.value) == {"relationship_code": "RELATIONSHIP_NOT_FOR_MEMBER"}

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Deregister(
            pb.DeregisterRequest(
                request_id=rid(),
                id_number=PUDONG_FAMILY.members[0].id_number,
                reason=pb.DEREGISTRATION_REASON_DEATH,
                occurred_on=date(TODAY),
                new_head_id_number="31011519760709090X",
                relationship_updates={"123": "52"},
            )
        )
    found = violations(exc.value)
    assert (
        found["new_head_id_number"] == "BAD_CHECK_DIGIT"
        and found["relationship_updates[123]"] == "BAD_LENGTH"
    )


async def test_refusals_name_the_rule(residence: Residence) -> None:
    stub = residence.stub
    head = PUDONG_FAMILY.members[0].id_number
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.MoveOut(
            pb.MoveOutRequest(
                request_id=rid(),
                id_number=head,
                destination_region_code="120101",
                destination_address="天津市",
            )
        )
    assert reason(exc.value) == "HEAD_REPLACEMENT_REQUIRED"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.MoveIn(
            pb.MoveInRequest(
                request_id=rid(),
                id_number=head,
                arrived_on=date(TODAY),
                household_number=TIANJIN.number,
                relationship_code="99",
            )
        )
    assert reason(exc.value) == "PERSON_ALREADY_REGISTERED"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.CancelMoveOut(pb.CancelMoveOutRequest(request_id=rid(), id_number=head))
    assert reason(exc.value) == "PERSON_NOT_MOVING_OUT"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.MoveOut(
            pb.MoveOutRequest(
                request_id=rid(),
                id_number=CHEN.id_number,
                destination_region_code="310104",
                destination_address="上海市徐汇区",
            )
        )
    assert reason(exc.value) == "SAME_REGISTERING_AREA"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ChangeName(
            pb.ChangeNameRequest(
                request_id=rid(), id_number=head, new_name="赵新国", applicant_id_number=CHEN.id_number
            )
        )
    assert reason(exc.value) == "APPLICANT_NOT_ALLOWED"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetPerson(pb.GetPersonRequest(id_number="11010519491231002X"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    unknown = await stub.VerifyHukou(pb.VerifyHukouRequest(id_number="11010519491231002X", name="无此人"))
    assert not unknown.found and unknown.status == pb.PERSON_STATUS_UNSPECIFIED
    wrong_name = await stub.VerifyHukou(pb.VerifyHukouRequest(id_number=CHEN.id_number, name="陈沪"))
    assert wrong_name.found and not wrong_name.name_matches and wrong_name.hukou_region_code == ""
    right = await stub.VerifyHukou(pb.VerifyHukouRequest(id_number=CHEN.id_number, name=CHEN.name))
    assert right.name_matches and (right.hukou_province_code, right.hukou_region_code) == ("31", "310104")
    assert right.status == pb.PERSON_STATUS_REGISTERED


async def test_a_head_who_moved_out_is_restored_by_cancel_move_out(residence: Residence) -> None:
    stub = residence.stub
    head, sister = (m.id_number for m in JINGAN_SIBLINGS.members)
    cursor = await residence.last_sequence()
    moved = await stub.MoveOut(
        pb.MoveOutRequest(
            request_id=rid(),
            id_number=head,
            destination_region_code="440106",
            destination_address="广东省广州市天河区",
            new_head_id_number=sister,
        )
    )
    assert moved.origin_household.head_id_number == sister
    assert await residence.members(JINGAN_SIBLINGS.number) == [("吴雅琴", "02")]

    cancel = pb.CancelMoveOutRequest(request_id=rid(), id_number=head, reason="后续步骤失败")
    cancelled = await stub.CancelMoveOut(cancel)
    assert cancelled == await stub.CancelMoveOut(cancel)  # a retried compensation changes nothing
    assert (
        cancelled.person.status == pb.PERSON_STATUS_REGISTERED and cancelled.person.relationship_code == "02"
    )
    assert cancelled.household.head_id_number == head
    assert await residence.members(JINGAN_SIBLINGS.number) == [("吴静安", "02"), ("吴雅琴", "77")]
    certificate = (
        await stub.GetMigrationCertificate(pb.GetMigrationCertificateRequest(number=moved.certificate.number))
    ).certificate
    assert certificate.revoke_date == date(TODAY) and not certificate.HasField("use_date")

    events, _ = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonMovedOut", "HeadChanged", "MoveOutCancelled", "HeadChanged"]
    assert events[2].aggregate_id == cancelled.person.id and events[2].data["head_restored"] is True
    assert events[3].data["cause"] == "MOVE_OUT_CANCELLED" and events[3].data["new_head_id_number"] == head

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.CancelMoveOut(pb.CancelMoveOutRequest(request_id=rid(), id_number=head))
    assert reason(exc.value) == "PERSON_NOT_MOVING_OUT"


async def test_a_same_city_transfer_closes_and_reopens_and_founds_households(residence: Residence) -> None:
    stub = residence.stub
    cursor = await residence.last_sequence()
    moved = await stub.MoveOut(
        pb.MoveOutRequest(
            request_id=rid(),
            id_number=CHEN.id_number,
            destination_region_code="310115",
            destination_address="上海市浦东新区世纪大道100号",
        )
    )
    assert moved.same_city_transfer and not moved.HasField("certificate")
    assert moved.origin_household.HasField("close_date") and moved.origin_household.member_count == 0
    cancelled = await stub.CancelMoveOut(pb.CancelMoveOutRequest(request_id=rid(), id_number=CHEN.id_number))
    assert (
        not cancelled.household.HasField("close_date")
        and cancelled.household.head_id_number == CHEN.id_number
    )
    events, cursor = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonMovedOut", "HouseholdClosed", "MoveOutCancelled"]
    assert events[1].aggregate_id == cancelled.household.id
    assert events[2].data["household_reopened"] is True

    # Again, and this time completed: founding a household in 浦东.
    await stub.MoveOut(
        pb.MoveOutRequest(
            request_id=rid(),
            id_number=CHEN.id_number,
            destination_region_code="310115",
            destination_address="上海市浦东新区世纪大道100号",
        )
    )
    moved_in = await stub.MoveIn(
        pb.MoveInRequest(
            request_id=rid(),
            id_number=CHEN.id_number,
            arrived_on=date(TODAY),
            new_household=pb.NewHousehold(
                type=pb.HOUSEHOLD_TYPE_FAMILY,
                address="上海市浦东新区世纪大道100号",
                police_station_code="31011501",
            ),
        )
    )
    assert not moved_in.late and moved_in.household.number == "3101155000001"
    assert moved_in.household.head_id_number == CHEN.id_number
    person = await residence.person(CHEN.id_number)
    assert person.hukou_region_code == "310115" and person.police_station_code == "31011501"

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.MoveIn(
            pb.MoveInRequest(
                request_id=rid(),
                id_number=PUDONG_FAMILY.members[2].id_number,
                arrived_on=date(TODAY),
                new_household=pb.NewHousehold(
                    type=pb.HOUSEHOLD_TYPE_FAMILY, address="上海市", police_station_code="99999999"
                ),
            )
        )
    assert violations(exc.value) == {"new_household.police_station_code": "UNKNOWN_POLICE_STATION"}


async def test_accommodation_registration_and_its_cancellation(residence: Residence) -> None:
    stub = residence.stub
    cursor = await residence.last_sequence()
    late = accommodation_request(arrive_time=instant(dt.datetime(2016, 9, 13, 0, 0, tzinfo=dt.UTC)))
    registration = (await stub.RegisterAccommodation(late)).accommodation_registration
    assert registration.late and registration.police_station.region_code == "310104"
    assert registration.registration_number.startswith("ZS3101040120160915")
    cancel = pb.CancelAccommodationRegistrationRequest(request_id=rid(), id=registration.id, reason="未入住")
    cancelled = (await stub.CancelAccommodationRegistration(cancel)).accommodation_registration
    assert cancelled.HasField("cancel_time") and cancelled.cancellation_reason == "未入住"
    events, _ = await residence.events(cursor)
    assert [(e.type, e.aggregate_id) for e in events] == [
        ("AccommodationRegistered", registration.id),
        ("AccommodationRegistrationCancelled", registration.id),
    ]
    assert events[0].data["passport_number"] == "E1234567" and events[0].data["late"] is True

    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.CancelAccommodationRegistration(
            pb.CancelAccommodationRegistrationRequest(request_id=rid(), id=registration.id)
        )
    assert reason(exc.value) == "REGISTRATION_CANCELLED"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.RegisterAccommodation(accommodation_request(nationality="CHN"))
    assert violations(exc.value) == {"nationality": "NOT_A_FOREIGN_NATIONALITY"}
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.RegisterAccommodation(accommodation_request(police_station_code="31010499"))
    assert violations(exc.value) == {"police_station_code": "UNKNOWN_POLICE_STATION"}


async def test_members_are_listed_in_register_order_page_by_page(residence: Residence) -> None:
    stub = residence.stub
    first = await stub.ListMembers(pb.ListMembersRequest(household_number=PUDONG_FAMILY.number, page_size=3))
    assert [m.relationship_code for m in first.members] == ["02", "12", "21"] and first.next_page_token
    rest = await stub.ListMembers(
        pb.ListMembersRequest(household_number=PUDONG_FAMILY.number, page_token=first.next_page_token)
    )
    assert [m.relationship_code for m in rest.members] == ["38", "41"] and not rest.next_page_token
    assert rest.members[0].hukou_address.startswith("上海市浦东新区")

    for bad in ("not-a-token", first.next_page_token):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.ListMembers(pb.ListMembersRequest(household_number=TIANJIN.number, page_token=bad))
        assert violations(exc.value) == {"page_token": "BAD_PAGE_TOKEN"}
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ListMembers(pb.ListMembersRequest(household_number=TIANJIN.number, page_size=-1))
    assert violations(exc.value) == {"page_size": "OUT_OF_RANGE"}
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.ListMembers(pb.ListMembersRequest(household_number="9999999999999"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
