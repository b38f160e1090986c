"""The residence service layer over in-memory repositories: each use case loads (and locks) what its rule
needs, saves what the rule changed, allocates numbers again after a clash, and writes the rule's events to
the outbox of its unit of work with the right aggregate; a refused change saves and publishes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from residence_factories import NANCHANG_COUNTY, PUDONG, TODAY, XUHUI, person
from residence_fakes import FakeWork

from services.common.clock import Clock
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.idnumber import Sex, build_id_number
from services.residence import domain as d
from services.residence.handlers import FoundHousehold, ResidenceHandlers

HEAD = person("甲建国", Sex.MALE, dt.date(1960, 3, 1), "02")
WIFE = person("乙秀英", Sex.FEMALE, dt.date(1962, 5, 2), "12")
SON = person("甲浩", Sex.MALE, dt.date(1988, 8, 8), "21")


@pytest.fixture
def handlers(policy: d.ResidencePolicy) -> ResidenceHandlers:
    return ResidenceHandlers(policy, Clock(fixed_today=TODAY))


@pytest.fixture
def work(policy: d.ResidencePolicy, family: d.Household) -> FakeWork:
    """The conftest's family in the 徐汇 household 3101040000001, and an empty register in 南昌县."""
    work = FakeWork(policy)
    work.registers.put_household(family)
    work.registers.stations[NANCHANG_COUNTY.code] = NANCHANG_COUNTY
    return work


def household_id(work: FakeWork, number: str = "3101040000001") -> str:
    return work.registers.households[number][1].id


def person_id(work: FakeWork, id_number: str) -> str:
    return work.registers.people[id_number].id


def refused_without_effect(work: FakeWork) -> None:
    assert work.registers.saved == [] and work.outbox == []


# -- births -------------------------------------------------------------------------------------------------


def birth(declarant: str = HEAD.id_number) -> d.RegisterBirth:
    newborn = d.NewbornDetails("甲小宝", Sex.MALE, dt.date(2016, 6, 20), "上海市徐汇区", "汉", "上海市")
    return d.RegisterBirth("", newborn, "22", declarant_id_number=declarant)


async def test_register_birth_saves_the_newborn_and_publishes_on_the_newborn(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    outcome = await handlers.register_birth(work, birth(), household_id="", household_number="3101040000001")

    newborn = outcome.result.person
    assert newborn is not None and newborn.id_number.startswith("31010420160620")
    assert ("household", "3101040000001") in work.registers.locked
    assert work.registers.entry(newborn.id_number).household_number == "3101040000001"
    assert newborn.id_number in {m.id_number for m in work.registers.households["3101040000001"][0].members}
    (entry,) = work.outbox
    assert entry.type == "BirthRegistered"
    assert entry.aggregate_id == outcome.person_row.id == person_id(work, newborn.id_number)
    assert entry.payload["household_id"] == household_id(work)
    assert "name" not in entry.payload  # other departments do not need the newborn's name
    assert entry.request_id == "req-1"


async def test_register_birth_needs_the_household(handlers: ResidenceHandlers, work: FakeWork) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await handlers.register_birth(work, birth(), household_id="", household_number="")
    assert [(v.field, v.reason) for v in caught.value.violations] == [("household_id", "REQUIRED")]
    refused_without_effect(work)


async def test_register_birth_refused_by_the_rule_changes_nothing(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.register_birth(
            work, birth(declarant=SON.id_number), household_id=household_id(work), household_number=""
        )
    assert caught.value.reason == d.DECLARANT_NOT_ENTITLED
    refused_without_effect(work)


# -- moves --------------------------------------------------------------------------------------------------


async def test_move_out_issues_the_next_free_certificate_number(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    work.registers.taken_certificates.add("3101042016000001")  # taken by a concurrent move-out
    cmd = d.MoveOut(SON.id_number, NANCHANG_COUNTY.jurisdiction, "南昌县某路3号")

    outcome = await handlers.move_out(work, cmd)

    assert outcome.certificate_row is not None and outcome.certificate_row.number == "3101042016000002"
    assert work.registers.locked[:2] == [("person", SON.id_number), ("household", "3101040000001")]
    assert work.registers.entry(SON.id_number).status is d.PersonStatus.MOVING_OUT
    assert SON.id_number not in {m.id_number for m in work.registers.households["3101040000001"][0].members}
    (entry,) = work.outbox
    assert (entry.type, entry.aggregate_id) == ("PersonMovedOut", person_id(work, SON.id_number))
    assert entry.payload["certificate_number"] == "3101042016000002"


async def test_move_out_within_the_city_issues_no_certificate(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    outcome = await handlers.move_out(work, d.MoveOut(SON.id_number, PUDONG.jurisdiction, "浦东某路4号"))
    assert outcome.certificate_row is None and work.registers.certificates == {}
    assert outcome.event(d.PersonMovedOut).same_city


async def test_move_out_of_the_head_publishes_the_head_change_on_the_household(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    cmd = d.MoveOut(
        HEAD.id_number, NANCHANG_COUNTY.jurisdiction, "南昌县某路3号", SON.id_number, {WIFE.id_number: "50"}
    )
    await handlers.move_out(work, cmd)
    assert [(e.type, e.aggregate_id) for e in work.outbox] == [
        ("PersonMovedOut", person_id(work, HEAD.id_number)),
        ("HeadChanged", household_id(work)),
    ]
    assert work.registers.entry(SON.id_number).relationship_code == d.HEAD_CODE


async def test_only_a_registered_member_moves_out(handlers: ResidenceHandlers, work: FakeWork) -> None:
    await handlers.move_out(work, d.MoveOut(SON.id_number, PUDONG.jurisdiction, "浦东某路4号"))
    work.registers.saved.clear()
    work.outbox.clear()
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.move_out(work, d.MoveOut(SON.id_number, PUDONG.jurisdiction, "浦东某路4号"))
    assert caught.value.reason == d.PERSON_NOT_REGISTERED_HERE
    refused_without_effect(work)


async def test_cancel_move_out_revokes_the_certificate_and_registers_the_person_again(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    await handlers.move_out(work, d.MoveOut(SON.id_number, NANCHANG_COUNTY.jurisdiction, "南昌县某路3号"))
    work.outbox.clear()

    outcome = await handlers.cancel_move_out(work, SON.id_number, reason="saga compensation")

    assert outcome.certificate_row is not None and outcome.certificate_row.revoked_on == TODAY
    assert ("certificate", outcome.certificate_row.number) in work.registers.locked
    assert work.registers.entry(SON.id_number).status is d.PersonStatus.REGISTERED
    (entry,) = work.outbox
    assert (entry.type, entry.payload["reason"]) == ("MoveOutCancelled", "saga compensation")


async def test_cancel_move_out_needs_a_move_out(handlers: ResidenceHandlers, work: FakeWork) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.cancel_move_out(work, SON.id_number, reason="")
    assert caught.value.reason == d.PERSON_NOT_MOVING_OUT
    refused_without_effect(work)


async def moved_out_to_nanchang(handlers: ResidenceHandlers, work: FakeWork) -> str:
    outcome = await handlers.move_out(
        work, d.MoveOut(SON.id_number, NANCHANG_COUNTY.jurisdiction, "南昌县某路3号")
    )
    assert outcome.certificate_row is not None
    work.registers.saved.clear()
    work.outbox.clear()
    return outcome.certificate_row.number


async def test_move_in_to_a_household_consumes_the_certificate(
    handlers: ResidenceHandlers, work: FakeWork, make_household
) -> None:
    certificate = await moved_out_to_nanchang(handlers, work)
    uncle = person("丁国强", Sex.MALE, dt.date(1958, 2, 2), "02", household="3601210000001", region="360121")
    work.registers.put_household(make_household("3601210000001", NANCHANG_COUNTY, [uncle]))
    cmd = d.MoveIn(SON.id_number, TODAY, "99", certificate, household_number="3601210000001")

    outcome = await handlers.move_in(work, cmd)

    assert (
        outcome.certificate_row is not None and outcome.certificate_row.used_by_household == "3601210000001"
    )
    assert ("certificate", certificate) in work.registers.locked
    moved = work.registers.entry(SON.id_number)
    assert (moved.status, moved.household_number) == (d.PersonStatus.REGISTERED, "3601210000001")
    (entry,) = work.outbox
    assert (entry.type, entry.aggregate_id) == ("PersonMovedIn", person_id(work, SON.id_number))
    assert entry.payload["household_id"] == household_id(work, "3601210000001")


async def test_move_in_founding_a_household_allocates_its_number_again_after_a_clash(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    certificate = await moved_out_to_nanchang(handlers, work)
    work.registers.taken_households.add("3601215000001")  # inserted by a concurrent request
    cmd = d.MoveIn(SON.id_number, TODAY, "", certificate)
    founding = FoundHousehold(d.HouseholdType.FAMILY, "南昌县某路3号", NANCHANG_COUNTY.code)

    outcome = await handlers.move_in(work, cmd, founding=founding)

    assert outcome.household_row is not None and outcome.household_row.number == "3601215000002"
    assert work.registers.entry(SON.id_number).relationship_code == d.HEAD_CODE
    (entry,) = work.outbox
    assert entry.payload["household_id"] == outcome.household_row.id


async def test_move_in_founding_at_an_unknown_station(handlers: ResidenceHandlers, work: FakeWork) -> None:
    certificate = await moved_out_to_nanchang(handlers, work)
    founding = FoundHousehold(d.HouseholdType.FAMILY, "某路", "99999999")
    with pytest.raises(InvalidArgument) as caught:
        await handlers.move_in(work, d.MoveIn(SON.id_number, TODAY, "", certificate), founding=founding)
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("new_household.police_station_code", "UNKNOWN_POLICE_STATION")
    ]
    refused_without_effect(work)


# -- deregistration and changes -----------------------------------------------------------------------------


async def test_deregister_saves_the_person_and_the_household(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    cmd = d.Deregister(WIFE.id_number, d.DeregistrationReason.DEATH, dt.date(2016, 6, 1))
    outcome = await handlers.deregister(work, cmd)
    assert outcome.event(d.PersonDeregistered).cancel_id_card
    assert work.registers.entry(WIFE.id_number).status is d.PersonStatus.DEREGISTERED
    assert ("household", "3101040000001") in work.registers.saved
    assert [(e.type, e.aggregate_id) for e in work.outbox] == [
        ("PersonDeregistered", person_id(work, WIFE.id_number))
    ]


async def test_change_head_publishes_on_the_household(handlers: ResidenceHandlers, work: FakeWork) -> None:
    cmd = d.ChangeHead(SON.id_number, "51", {WIFE.id_number: "52"})
    outcome = await handlers.change_head(work, cmd, household_id=household_id(work), household_number="")
    assert outcome.person_row is None
    assert ("household", "3101040000001") in work.registers.locked
    assert work.registers.entry(SON.id_number).relationship_code == d.HEAD_CODE
    assert work.registers.entry(HEAD.id_number).relationship_code == "51"
    assert [(e.type, e.aggregate_id) for e in work.outbox] == [("HeadChanged", household_id(work))]


async def test_change_name_saves_the_entry(handlers: ResidenceHandlers, work: FakeWork) -> None:
    outcome = await handlers.change_name(work, d.ChangeName(SON.id_number, "甲浩然", SON.id_number))
    assert outcome.person_row is not None and outcome.person_row.name == "甲浩然"
    assert work.registers.entry(SON.id_number).former_names == ("甲浩",)
    assert [(e.type, e.aggregate_id) for e in work.outbox] == [
        ("NameChanged", person_id(work, SON.id_number))
    ]


async def test_change_refused_by_the_rule_changes_nothing(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await handlers.change_name(work, d.ChangeName(SON.id_number, "甲浩", SON.id_number))
    assert caught.value.reason == d.NOTHING_TO_CHANGE
    refused_without_effect(work)


async def test_correct_entry_and_record_civil_capacity(handlers: ResidenceHandlers, work: FakeWork) -> None:
    await handlers.correct_entry(work, d.CorrectEntry(SON.id_number, "education", "BACHELOR"))
    await handlers.record_civil_capacity(
        work,
        d.RecordCivilCapacity(
            WIFE.id_number, d.CivilCapacity.LIMITED, dt.date(2016, 6, 1), "(2016)沪0104民特1号"
        ),
    )
    assert work.registers.entry(SON.id_number).education is d.Education.BACHELOR
    assert work.registers.entry(WIFE.id_number).civil_capacity is d.CivilCapacity.LIMITED
    assert [(e.type, e.aggregate_id) for e in work.outbox] == [
        ("EntryCorrected", person_id(work, SON.id_number)),
        ("CivilCapacityRecorded", person_id(work, WIFE.id_number)),
    ]


async def test_a_change_of_an_unknown_person(handlers: ResidenceHandlers, work: FakeWork) -> None:
    stranger = build_id_number("310104", dt.date(1990, 1, 1), 31)
    with pytest.raises(NotFound):
        await handlers.correct_entry(work, d.CorrectEntry(stranger, "education", "BACHELOR"))
    refused_without_effect(work)


# -- foreigners' accommodation ------------------------------------------------------------------------------


def stay(arrived: dt.datetime) -> d.RegisterAccommodation:
    host = d.AccommodationHost(d.HostKind.HOTEL, "锦江饭店", "310104-HOTEL-1")
    return d.RegisterAccommodation(
        "X1234567",
        "DEU",
        "Anna Schmidt",
        "上海市徐汇区某路5号",
        host,
        arrived,
        TODAY,
        TODAY + dt.timedelta(3),
    )


async def test_register_accommodation_takes_the_next_number_after_a_clash(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    work.accommodations.taken.add(f"ZS{XUHUI.code}2016070100001")
    arrived = dt.datetime(2016, 6, 30, 20, 0, tzinfo=dt.UTC)

    outcome = await handlers.register_accommodation(work, stay(arrived), police_station_code=XUHUI.code)

    row = outcome.accommodation_row
    assert row is not None and row.registration_number == f"ZS{XUHUI.code}2016070100002"
    (entry,) = work.outbox
    assert (entry.type, entry.aggregate_id) == ("AccommodationRegistered", row.id)


async def test_register_accommodation_at_an_unknown_station(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    arrived = dt.datetime(2016, 6, 30, 20, 0, tzinfo=dt.UTC)
    with pytest.raises(InvalidArgument) as caught:
        await handlers.register_accommodation(work, stay(arrived), police_station_code="99999999")
    assert caught.value.violations[0].reason == "UNKNOWN_POLICE_STATION"
    assert work.accommodations.rows == {} and work.outbox == []


async def test_cancel_accommodation(handlers: ResidenceHandlers, work: FakeWork) -> None:
    arrived = dt.datetime(2016, 6, 30, 20, 0, tzinfo=dt.UTC)
    registered = await handlers.register_accommodation(work, stay(arrived), police_station_code=XUHUI.code)
    assert registered.accommodation_row is not None
    row_id = registered.accommodation_row.id

    outcome = await handlers.cancel_accommodation(work, row_id, reason="stay did not happen")

    assert outcome.accommodation_row is not None and outcome.accommodation_row.cancelled_at is not None
    assert work.accommodations.locked == [row_id]
    assert [(e.type, e.aggregate_id) for e in work.outbox][-1] == (
        "AccommodationRegistrationCancelled",
        row_id,
    )
    with pytest.raises(InvalidArgument):
        await handlers.cancel_accommodation(work, "", reason="")


# -- queries ------------------------------------------------------------------------------------------------


async def test_list_members_refuses_a_page_token_of_another_household(
    handlers: ResidenceHandlers, work: FakeWork
) -> None:
    household, page = await handlers.list_members(work.registers, "", "3101040000001", after=None, limit=2)
    assert [m.entry.id_number for m in page.members] == [HEAD.id_number, WIFE.id_number] and page.has_more
    with pytest.raises(InvalidArgument) as caught:
        await handlers.list_members(work.registers, household.id, "", after=("another", "0"), limit=2)
    assert caught.value.violations[0].field == "page_token"


async def test_lookups(handlers: ResidenceHandlers, work: FakeWork) -> None:
    person, household = await handlers.get_person(work.registers, SON.id_number)
    assert household.household.number == "3101040000001" and person.entry == SON
    found = await handlers.verify_hukou(work.registers, SON.id_number)
    assert found is not None and (found.status, found.region_code) == (d.PersonStatus.REGISTERED, "310104")
    assert (
        await handlers.verify_hukou(work.registers, build_id_number("310104", dt.date(1990, 1, 1), 31))
        is None
    )
    with pytest.raises(NotFound):
        await handlers.get_certificate(work.registers, "3101042016999999")
    with pytest.raises(InvalidArgument):
        await handlers.get_household(work.registers, "", "")
