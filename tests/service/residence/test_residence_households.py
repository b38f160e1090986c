"""Issue 13.11 through a real residence server: civil capacity is its own field (18, or 16-17 on own
earnings, removed by a court), a head's death leaving only children is recorded with a guardian as the
household's contact and the register flagged, only a parent, guardian or the head registers a birth, and a
newborn's relationship code is one a newborn can have."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from services.common.idnumber import Sex, build_id_number
from services.residence.policy import default_policy
from services.residence.seed import DEMO_HOUSEHOLDS
from tests.service.residence.conftest import TODAY, XUHUI_FAMILY, Residence, date, reason, rid, violations

ALONE = DEMO_HOUSEHOLDS[2]  # 陈沪明 (1978), alone, 徐汇
PARENT = ALONE.members[0].id_number
GRANDMOTHER = build_id_number("310104", dt.date(1950, 2, 3), 22)  # synthetic, not in this household


def _female(code: str) -> bool:
    """The sex the code names (GB/T 4761 in residence's data); a boy where it names none."""
    return default_policy().relationships.get(code).sex is Sex.FEMALE  # type: ignore[union-attr]


async def fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


def birth(born: dt.date, code: str = "20", declarant: str = PARENT, **extra: str) -> pb.RegisterBirthRequest:
    return pb.RegisterBirthRequest(
        request_id=rid(),
        household_number=ALONE.number,
        person=pb.Newborn(
            name="陈小" + ("一二三四五六七八"[born.year % 8]),
            sex=common_pb2.SEX_FEMALE if _female(code) else common_pb2.SEX_MALE,
            birth_date=date(born),
            birth_place="上海市徐汇区",
            ethnicity="汉",
            native_place="上海市",
        ),
        relationship_code=code,
        declarant_id_number=declarant,
        **extra,
    )


async def children(residence: Residence, *ages: int) -> list[str]:
    out = []
    for i, age in enumerate(ages):
        born = TODAY.replace(year=TODAY.year - age) - dt.timedelta(days=30 + i)
        reply = await residence.stub.RegisterBirth(birth(born, "20" if i % 2 == 0 else "30"))
        out.append(reply.id_number)
        assert reply.person.relationship_code == ("20" if i % 2 == 0 else "30")
    return out


async def test_a_single_parents_death_leaving_children_is_recorded_with_a_guardian(
    residence: Residence,
) -> None:
    son, daughter = await children(residence, 8, 6)
    death = pb.DeregisterRequest(
        request_id=rid(),
        id_number=PARENT,
        reason=pb.DEREGISTRATION_REASON_DEATH,
        occurred_on=date(TODAY - dt.timedelta(days=2)),
    )
    exc = await fails(residence.stub.Deregister(death))
    assert reason(exc) == "GUARDIAN_REQUIRED"
    exc = await fails(
        residence.stub.Deregister(
            pb.DeregisterRequest(
                request_id=rid(),
                id_number=PARENT,
                reason=pb.DEREGISTRATION_REASON_DEATH,
                occurred_on=date(TODAY),
                new_head_id_number=son,
            )
        )
    )
    assert reason(exc) == "HEAD_NOT_ADULT"  # an eight-year-old cannot head it

    cursor = await residence.last_sequence()
    death.request_id = rid()
    death.guardian.CopyFrom(
        pb.Guardian(id_number=GRANDMOTHER, name="陈老太", relationship="祖母", phone="021-0000")
    )
    reply = await residence.stub.Deregister(death)
    assert reply.person.status == pb.PERSON_STATUS_DEREGISTERED and reply.cancel_id_card
    household = reply.household
    assert household.follow_up_required and household.follow_up_reason == "NO_MEMBER_WITH_FULL_CIVIL_CAPACITY"
    assert household.guardian.id_number == GRANDMOTHER and not household.head_id_number
    assert household.member_count == 2 and not household.HasField("close_date")
    events, _ = await residence.events(cursor)
    assert [e.type for e in events] == ["PersonDeregistered", "HouseholdAwaitingHead"]
    assert events[1].data["guardian_id_number"] == GRANDMOTHER

    # The guardian may register a birth into it (e.g. a late registration of a sibling) ...
    await residence.stub.RegisterBirth(birth(TODAY - dt.timedelta(days=900), "30", declarant=GRANDMOTHER))
    # ... and once someone can head it, ChangeHead names them and clears the flag.
    exc = await fails(
        residence.stub.ChangeHead(
            pb.ChangeHeadRequest(
                request_id=rid(),
                household_number=ALONE.number,
                new_head_id_number=daughter,
            )
        )
    )
    assert reason(exc) == "HEAD_NOT_ADULT"


async def test_a_seventeen_year_old_on_own_earnings_may_head_the_household(residence: Residence) -> None:
    [teen] = await children(residence, 17)
    person = await residence.person(teen)
    assert not person.full_civil_capacity and person.civil_capacity == pb.CIVIL_CAPACITY_BY_AGE
    change = pb.ChangeHeadRequest(
        request_id=rid(),
        household_number=ALONE.number,
        new_head_id_number=teen,
        old_head_relationship_code="51",
    )
    assert reason(await fails(residence.stub.ChangeHead(change))) == "HEAD_NOT_ADULT"

    recorded = await residence.stub.RecordCivilCapacity(
        pb.RecordCivilCapacityRequest(
            request_id=rid(),
            id_number=teen,
            civil_capacity=pb.CIVIL_CAPACITY_OWN_EARNINGS,
            since=date(TODAY - dt.timedelta(days=10)),
        )
    )
    assert (
        recorded.person.full_civil_capacity
        and recorded.person.civil_capacity == pb.CIVIL_CAPACITY_OWN_EARNINGS
    )
    change.request_id = rid()
    headed = (await residence.stub.ChangeHead(change)).household
    assert headed.head_id_number == teen

    # A court decision cannot take the head's capacity while they head it; for another member it can.
    court = pb.RecordCivilCapacityRequest(
        request_id=rid(),
        id_number=teen,
        civil_capacity=pb.CIVIL_CAPACITY_LIMITED,
        since=date(TODAY),
        reference="(2016)沪0104民特1号",
    )
    assert reason(await fails(residence.stub.RecordCivilCapacity(court))) == "HEAD_CHANGE_REQUIRED"
    court.id_number, court.request_id = PARENT, rid()
    limited = (await residence.stub.RecordCivilCapacity(court)).person
    assert not limited.full_civil_capacity and limited.civil_capacity == pb.CIVIL_CAPACITY_LIMITED
    exc = await fails(
        residence.stub.RecordCivilCapacity(
            pb.RecordCivilCapacityRequest(
                request_id=rid(),
                id_number=PARENT,
                civil_capacity=pb.CIVIL_CAPACITY_NONE,
                since=date(TODAY),
            )
        )
    )
    assert violations(exc) == {"reference": "REQUIRED"}
    exc = await fails(
        residence.stub.RecordCivilCapacity(
            pb.RecordCivilCapacityRequest(
                request_id=rid(),
                id_number=PARENT,
                civil_capacity=pb.CIVIL_CAPACITY_OWN_EARNINGS,
                since=date(TODAY),
            )
        )
    )
    assert reason(exc) == "NOT_SIXTEEN_OR_SEVENTEEN"


async def test_only_a_parent_guardian_or_head_registers_a_birth(residence: Residence) -> None:
    born = TODAY - dt.timedelta(days=5)
    stranger = XUHUI_FAMILY.members[0].id_number  # the head of another household
    exc = await fails(residence.stub.RegisterBirth(birth(born, declarant=stranger)))
    assert reason(exc) == "DECLARANT_NOT_ENTITLED"
    exc = await fails(residence.stub.RegisterBirth(birth(born, declarant="")))
    assert violations(exc) == {"declarant_id_number": "REQUIRED"}
    exc = await fails(
        residence.stub.RegisterBirth(birth(born, declarant=stranger, mother_id_number=stranger))
    )
    assert violations(exc) == {"mother_id_number": "PARENT_SEX_MISMATCH"}  # 张沪生 is a man
    # A parent who lives elsewhere (named as the father) may register the child into this household.
    reply = await residence.stub.RegisterBirth(
        birth(born, "41", declarant=stranger, father_id_number=stranger)
    )
    assert reply.person.relationship_code == "41" and reply.id_number.startswith("310104")


@pytest.mark.parametrize("code", ["28", "38", "76", "71", "27", "52", "81"])
async def test_a_newborn_cannot_be_an_in_law_an_elder_or_adopted(residence: Residence, code: str) -> None:
    exc = await fails(residence.stub.RegisterBirth(birth(TODAY - dt.timedelta(days=3), code)))
    assert violations(exc) == {"relationship_code": "RELATIONSHIP_IMPOSSIBLE_FOR_NEWBORN"}
