"""``python -m services.residence.seed [--households N]``: load the synthetic demo population.

Settings come from the environment exactly as the service reads them (``GOVHUB_RESIDENCE_DATABASE_URL``,
default ``sqlite+aiosqlite:///<GOVHUB_VAR_DIR>/residence.db``). The schema is prepared as the service
prepares it at start (``services.common.migrate.prepare_schema``: upgraded on SQLite, created in an empty
PostgreSQL database, refused if behind), the police-station catalogue loaded if missing, then:

* the demo people (`DEMO_PEOPLE`, used by the README and the end-to-end tests) and the demo households in
  Shanghai (`DEMO_HOUSEHOLDS`) are inserted, always;
* the generator's households (`population.generate_population`, fixed seed `SEED`, as of `AS_OF`) are
  streamed in batches and written with batched Core inserts.

Everything is inserted with INSERT … ON CONFLICT DO NOTHING under deterministic ids (uuid5 of the household
number / ID number), so running the seed twice adds nothing, and running it with a larger N adds only the
households after the first N (the generator's stream is the same for the same seed). No events are written:
a bulk load is not a register change. Progress goes to stderr; stdout gets one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db import make_engine
from services.common.idnumber import Sex, build_id_number
from services.common.migrate import prepare_schema
from services.common.settings import ServiceSettings, SettingsError
from services.residence import domain as d
from services.residence.migrations import DATABASE
from services.residence.policy import default_policy
from services.residence.population import AREAS, generate_population
from services.residence.stations import first_station
from services.residence.store import (
    HouseholdRow,
    PersonRow,
    ensure_stations,
    household_values,
    insert_ignoring_conflicts,
    person_values,
    seeded_id,
)

SEED = 20160701
AS_OF = date(2016, 1, 1)
DEFAULT_HOUSEHOLDS = 300
BATCH_HOUSEHOLDS = 2000
# Demo households take serials from 4,000,001 in their area: above the generator's, below the service's.
_DEMO_SERIAL = 4_000_001


@dataclass(frozen=True, slots=True)
class DemoPerson:
    id_number: str
    name: str
    sex: Sex
    birth_date: date
    relationship_code: str = d.HEAD_CODE


@dataclass(frozen=True, slots=True)
class DemoHousehold:
    number: str
    region_code: str
    address: str
    members: tuple[DemoPerson, ...]


def _p(id_number: str, name: str, relationship_code: str = d.HEAD_CODE) -> DemoPerson:
    sex = Sex.MALE if int(id_number[16]) % 2 else Sex.FEMALE
    born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    return DemoPerson(id_number, name, sex, born, relationship_code)


def _code(region_code: str, year: int) -> str:
    """The address code numbers were assigned under in `region_code`'s area in `year`."""
    area = next(a for a in AREAS if a.code == region_code)
    code = area.code_for(year)
    assert code is not None
    return code


def _born(region_code: str, born: date, sequence: int, name: str, code: str) -> DemoPerson:
    return _p(build_id_number(_code(region_code, born.year), born, sequence), name, code)


# The five demo people of the README and the end-to-end tests (synthetic: sex and birth date match the
# numbers), each the head of their own family household in the area of their number.
DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    _p("120101198503120115", "王津生"),
    _p("410105199007080221", "李豫华"),
    _p("310104197811300337", "陈沪明"),
    _p("360102199205200454", "刘赣平"),
    _p("440106198801150570", "黄粤东"),
)
_DEMO_ADDRESSES = {
    "120101": "天津市和平区南京路101号3门201室",
    "410105": "河南省郑州市金水区花园路88号2号楼502室",
    "310104": "上海市徐汇区漕溪北路200号12楼1203室",
    "360102": "江西省南昌市东湖区八一大道99号4栋301室",
    "440106": "广东省广州市天河区天河路385号1座1808室",
}

# Demo households in Shanghai with several members, for the later matters (births, moves, a head's death).
DEMO_HOUSEHOLDS: tuple[DemoHousehold, ...] = (
    *(
        DemoHousehold(
            f"{p.id_number[:6]}{_DEMO_SERIAL + i:07d}",
            p.id_number[:6],
            _DEMO_ADDRESSES[p.id_number[:6]],
            (p,),
        )
        for i, p in enumerate(DEMO_PEOPLE)
    ),
    # 徐汇: a couple with a young son (a newborn can be registered here; the son can move out with a parent).
    DemoHousehold(
        f"310104{_DEMO_SERIAL + 100:07d}",
        "310104",
        "上海市徐汇区天钥桥路150弄6号402室",
        (
            _born("310104", date(1980, 4, 2), 901, "张沪生", d.HEAD_CODE),
            _born("310104", date(1982, 9, 15), 902, "周丽华", "12"),
            _born("310104", date(2012, 6, 1), 903, "张小明", "21"),
        ),
    ),
    # 浦东: three generations; the head is the eldest (his death names a new head).
    DemoHousehold(
        f"310115{_DEMO_SERIAL + 100:07d}",
        "310115",
        "上海市浦东新区张杨路1500弄3号1101室",
        (
            _born("310115", date(1948, 2, 20), 905, "赵建国", d.HEAD_CODE),
            _born("310115", date(1950, 11, 3), 906, "钱秀英", "12"),
            _born("310115", date(1976, 7, 9), 907, "赵伟", "21"),
            _born("310115", date(1978, 3, 30), 908, "孙芳", "38"),
            _born("310115", date(2006, 12, 12), 909, "赵子涵", "41"),
        ),
    ),
    # 静安: two adult siblings sharing a flat.
    DemoHousehold(
        f"310106{_DEMO_SERIAL + 100:07d}",
        "310106",
        "上海市静安区南京西路1266号21楼2102室",
        (
            _born("310106", date(1986, 5, 5), 911, "吴静安", d.HEAD_CODE),
            _born("310106", date(1989, 8, 8), 912, "吴雅琴", "77"),
        ),
    ),
)

# Numbers kept out of the generated population: the demo people, and a valid number that is nobody's (the
# end-to-end tests' "unknown person").
UNREGISTERED_ID_NUMBER = "11010519491231002X"
RESERVED_ID_NUMBERS = frozenset(
    {m.id_number for h in DEMO_HOUSEHOLDS for m in h.members} | {UNREGISTERED_ID_NUMBER}
)


def demo_households(policy: d.ResidencePolicy) -> list[d.Household]:
    out = []
    for demo in DEMO_HOUSEHOLDS:
        station = first_station(demo.region_code)
        members = [
            d.PersonEntry(
                id_number=m.id_number,
                name=m.name,
                sex=m.sex,
                birth_date=m.birth_date,
                ethnicity="汉",
                birth_place=station.name.split("第")[0],
                native_place=demo.address[:3],
                household_number=demo.number,
                relationship_code=m.relationship_code,
                registered_on=m.birth_date,
                marital_status=d.MaritalStatus.MARRIED
                if m.relationship_code in {"11", "12", "38"}
                or (m.relationship_code == "02" and len(demo.members) > 2)
                else d.MaritalStatus.UNMARRIED,
                status_since=m.birth_date,
            )
            for m in demo.members
        ]
        out.append(
            d.establish_household(
                demo.number,
                d.HouseholdType.FAMILY,
                demo.address,
                station,
                members,
                policy=policy,
                today=AS_OF,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr (redrawn in place on a terminal, a line per tenth otherwise)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.stream, self.width = max(total, 1), stream or sys.stderr, width
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_tenth = -1

    def update(self, done: int, people: int) -> None:
        fraction = min(done / self.total, 1.0)
        elapsed = time.monotonic() - self.started
        rate = people / elapsed if elapsed > 0 else 0.0
        filled = int(fraction * self.width)
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction:6.1%} "
            f"{done:,}/{self.total:,} households, {people:,} people, {elapsed:,.0f} s ({rate:,.0f} people/s)"
        )
        if self.tty:
            self.stream.write("\r" + line)
        elif int(fraction * 10) != self._last_tenth:
            self._last_tenth = int(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _rows(households: Iterable[d.Household], policy: d.ResidencePolicy) -> tuple[list[Any], list[Any]]:
    household_rows: list[dict[str, Any]] = []
    people_rows: list[dict[str, Any]] = []
    stamp = _stamp()
    for household in households:
        household_id = seeded_id("household", household.number)
        household_rows.append(
            {"id": household_id, "created_at": stamp, "updated_at": stamp, **household_values(household)}
        )
        for member in household.members:
            people_rows.append(
                {
                    "id": seeded_id("person", member.id_number),
                    "created_at": stamp,
                    "updated_at": stamp,
                    **person_values(member, household_id, policy.relationships),
                }
            )
    return household_rows, people_rows


async def _write(conn: AsyncConnection, households: Iterable[d.Household], policy: d.ResidencePolicy) -> int:
    """Insert a batch of households and their members, ignoring rows already there; the number of people
    in the batch."""
    household_rows, people_rows = _rows(households, policy)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # A bulk load: a large page cache for this connection (random UUID keys touch index pages all
        # over a large register; SQLite's default cache is 2 MB).
        await conn.exec_driver_sql("PRAGMA cache_size=-262144")
    await conn.execute(insert_ignoring_conflicts(dialect, HouseholdRow.__table__), household_rows)
    await conn.execute(insert_ignoring_conflicts(dialect, PersonRow.__table__), people_rows)
    return len(people_rows)


def _stamp() -> Any:
    import datetime as dt

    return dt.datetime.combine(AS_OF, dt.time(), tzinfo=dt.UTC)


@dataclass
class SeedReport:
    households: int
    people: int
    inserted_households: int
    inserted_people: int
    seconds: float


async def seed(
    engine: AsyncEngine,
    households: int,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_HOUSEHOLDS,
    auto_migrate: str = "auto",
) -> SeedReport:
    """Prepare the schema as the service does at start (`prepare_schema`, GOVHUB_AUTO_MIGRATE), then load
    the demo data and `households` generated households."""
    started = time.monotonic()
    policy = default_policy()
    await prepare_schema(engine, DATABASE, auto_migrate)
    await ensure_stations(engine)
    before = await _counts(engine)
    async with engine.begin() as conn:
        await _write(conn, demo_households(policy), policy)
    done = people = 0
    batches = generate_population(
        seed=SEED,
        households=households,
        as_of=AS_OF,
        policy=policy,
        batch_size=batch_size,
        reserved=RESERVED_ID_NUMBERS,
    )
    # The next batch is generated in a thread while this one is written (SQLite and asyncpg do their
    # work without the interpreter lock): the two overlap on a machine with a core to spare.
    coming = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    while (batch := await coming) is not None:
        coming = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
        async with engine.begin() as conn:
            people += await _write(conn, batch, policy)
        done += len(batch)
        if progress is not None:
            progress.update(done, people)
    if progress is not None:
        progress.close()
    total_households, total_people = await _counts(engine)
    return SeedReport(
        total_households,
        total_people,
        total_households - before[0],
        total_people - before[1],
        time.monotonic() - started,
    )


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        households = await conn.scalar(select(func.count()).select_from(HouseholdRow))
        people = await conn.scalar(select(func.count()).select_from(PersonRow))
    return households or 0, people or 0


async def _main(settings: ServiceSettings, households: int) -> SeedReport:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        return await seed(
            engine, households, progress=Progress(households), auto_migrate=settings.common.auto_migrate
        )
    finally:
        await engine.dispose()


PEOPLE_PER_HOUSEHOLD = 3  # the generator's average (1,000,402 people in 333,342 households)


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.residence.seed", description=__doc__.split("\n")[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--households",
        type=int,
        default=DEFAULT_HOUSEHOLDS,
        help=f"generated households (default {DEFAULT_HOUSEHOLDS}; about 3 people each)",
    )
    size.add_argument(
        "--people",
        type=int,
        help="about this many generated people (households of 3 on average: 1000000 -> 333334 households)",
    )
    args = parser.parse_args(argv)
    if args.people is not None:
        if args.people < 0:
            parser.error("--people must not be negative")
        args.households = -(-args.people // PEOPLE_PER_HOUSEHOLD)
    if args.households < 0:
        parser.error("--households must not be negative")
    try:
        settings = ServiceSettings.from_env("residence", os.environ if env is None else env)
    except SettingsError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(_main(settings, args.households))
    print(
        f"residence seed: {report.inserted_households:,} households and {report.inserted_people:,} people "
        f"added in {report.seconds:,.1f} s; the register holds {report.households:,} households, "
        f"{report.people:,} people"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
