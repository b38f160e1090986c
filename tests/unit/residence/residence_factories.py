"""Synthetic people and stations for the residence tests (no real people)."""

from __future__ import annotations

from datetime import date

from services.common.idnumber import Sex, build_id_number
from services.residence import domain as d

TODAY = date(2016, 7, 1)

XUHUI = d.PoliceStation("31010401", "徐汇区第1派出所", "310104")
PUDONG = d.PoliceStation("31011501", "浦东新区第1派出所", "310115")
NANCHANG_COUNTY = d.PoliceStation("36012101", "南昌县第1派出所", "360121", rural=True)


def person(
    name: str,
    sex: Sex,
    born: date,
    code: str,
    *,
    household: str = "3101040000001",
    region: str = "310104",
    sequence: int | None = None,
) -> d.PersonEntry:
    seq = sequence if sequence is not None else (11 if sex is Sex.MALE else 12)
    return d.PersonEntry(
        id_number=build_id_number(region, born, seq),
        name=name,
        sex=sex,
        birth_date=born,
        ethnicity="汉",
        birth_place="上海市徐汇区",
        native_place="上海市",
        household_number=household,
        relationship_code=code,
        registered_on=born,
    )
