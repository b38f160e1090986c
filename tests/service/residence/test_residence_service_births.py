"""ID numbers assigned at birth: valid by identity's own checker and by the independent id-validator package,
never a duplicate, race-free (the unique ID number and the retry), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from collections import Counter

import pytest
from sqlalchemy import select

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from services.common.db import UnitOfWork, make_engine, session_factory
from services.common.idnumber import Sex, check_id_number
from services.residence import domain as d
from services.residence.policy import default_policy
from services.residence.seed import DEMO_HOUSEHOLDS, seed
from services.residence.store import HouseholdRow, RegisterRepository
from tests.service.residence.conftest import TODAY, XUHUI_FAMILY, Residence, date, rid

BIRTHS = 1000


@pytest.fixture(scope="module")
def id_validator():
    """id-validator rebuilds its 690 kB code tables on every call; cache them (they are constants)."""
    from id_validator import data, validator

    for name in ("get_address_code", "get_address_code_timeline", "get_additional_address_code_timeline"):
        original = getattr(data, name)
        if not hasattr(original, "cache_info"):
            setattr(data, name, functools.cache(original))
    return validator


def newborn(i: int) -> d.RegisterBirth:
    sex = Sex.MALE if i % 2 else Sex.FEMALE
    return d.RegisterBirth(
        household_number="",
        person=d.NewbornDetails(
            name="新生儿",
            sex=sex,
            birth_date=TODAY - dt.timedelta(days=i % 25),
            birth_place="上海市",
            ethnicity="汉",
            native_place="上海市",
        ),
        relationship_code="20" if sex is Sex.MALE else "30",
    )


async def test_a_thousand_births_get_valid_unique_numbers(db_url: str, id_validator) -> None:
    """Through the store's assignment (the path RegisterBirth takes), one unit of work per birth. Every third
    birth is assigned from a stale read of the used sequences, as a concurrent registration would see it: its
    first number is taken, the insert does nothing, and the retry assigns the next free one."""
    policy = default_policy()
    engine = make_engine(db_url, pool_size=4)
    try:
        await seed(engine, households=60)
        sessions = session_factory(engine)
        async with sessions() as session:
            numbers = list(
                (await session.scalars(select(HouseholdRow.number).order_by(HouseholdRow.number))).all()
            )
        assigned: list[tuple[str, d.RegisterBirth, bool]] = []
        for i in range(BIRTHS):
            cmd = newborn(i)
            stale = i % 3 == 0
            async with UnitOfWork(sessions) as uow:
                repo = RegisterRepository(uow.session, policy)
                record = await repo.household(numbers[i % len(numbers)], for_update=True)
                if record.household.closed_on is not None:
                    continue
                cmd = dataclasses.replace(cmd, declarant_id_number=record.household.head.id_number)
                result, row = await repo.add_newborn(
                    record,
                    cmd,
                    today=TODAY,
                    now=dt.datetime.now(dt.UTC),
                    used_sequences=set() if stale else None,
                )
                assert result.household is not None
                await repo.save_household(record, result.household, dt.datetime.now(dt.UTC))
                await uow.commit()
                assert row.id_number == result.person.id_number  # type: ignore[union-attr]
                assigned.append((row.id_number, cmd, stale))
    finally:
        await engine.dispose()

    assert len(assigned) >= BIRTHS - 10
    numbers_assigned = [n for n, _, _ in assigned]
    assert len(set(numbers_assigned)) == len(numbers_assigned)
    retried = 0
    seen: set[tuple[str, int]] = set()
    for number, cmd, stale in assigned:
        check = check_id_number(number, TODAY)
        assert check.valid, (number, check.problems)
        assert id_validator.is_valid(number) and id_validator.is_valid(number, True), number
        assert check.birth_date == cmd.person.birth_date and check.sex is cmd.person.sex
        key = (number[:14], int(number[16]) % 2)
        if stale and key in seen:  # the stale read offered sequence 1 or 2, which was taken
            assert int(number[14:17]) > 2, number
            retried += 1
        seen.add(key)
    assert retried > 30
    per_prefix = Counter((n[:14], int(n[16]) % 2) for n in numbers_assigned)
    assert max(per_prefix.values()) > 1  # several births share an area, date and sex


async def test_concurrent_births_never_share_a_number(residence: Residence) -> None:
    """Twenty births of boys born the same day in the same area, all at once, in two households (so that
    on PostgreSQL the household locks do not serialise them all)."""
    households = (XUHUI_FAMILY.number, DEMO_HOUSEHOLDS[2].number)  # both 310104 徐汇
    heads = [
        next(m.id_number for m in h.members if m.relationship_code == "02")
        for h in (XUHUI_FAMILY, DEMO_HOUSEHOLDS[2])
    ]
    born = TODAY - dt.timedelta(days=3)

    async def register(i: int) -> str:
        response = await residence.stub.RegisterBirth(
            pb.RegisterBirthRequest(
                request_id=rid(),
                household_number=households[i % 2],
                person=pb.Newborn(
                    name="并发",
                    sex=common_pb2.SEX_MALE,
                    birth_date=date(born),
                    birth_place="上海市徐汇区",
                    ethnicity="汉",
                    native_place="上海市",
                ),
                relationship_code="20",
                declarant_id_number=heads[i % 2],
            )
        )
        return response.id_number

    numbers = await asyncio.gather(*(register(i) for i in range(20)))
    assert len(set(numbers)) == 20
    assert sorted(int(n[14:17]) for n in numbers) == list(range(1, 40, 2))
    assert all(n.startswith(f"310104{born:%Y%m%d}") and check_id_number(n).valid for n in numbers)
