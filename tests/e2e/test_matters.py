"""Every matter of the catalogue run to its end over real processes: submitted over HTTP by a citizen
or at a counter, decided by the departments' back offices over gRPC, moved on by their events, handed
over at the counter — and a refusal that compensates what the departments already hold.

Every test runs twice (``mode``): on a pinned day of the 2016 replay, and with no GOVHUB_TODAY at all (the
real date), so the suite cannot pass only in the demo year. Dates in the data — entry dates, births,
contracts, permit validity — are computed from the day in force (``day``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as ipb
from govhub.identity.v1 import identity_pb2_grpc
from govhub.permits.v1 import permits_pb2 as ppb
from govhub.permits.v1 import permits_pb2_grpc
from govhub.residence.v1 import residence_pb2 as rpb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.clock import Clock
from services.common.dates import add_years
from services.residence.seed import DEMO_HOUSEHOLDS
from tests.e2e.conftest import Hub, start_hub, stop_hub

pytestmark = pytest.mark.e2e

REPLAY_DAY = dt.date(2016, 11, 15)  # every matter is available; the 2016 pilot's points table is in force


@dataclass(frozen=True)
class Mode:
    today: str  # GOVHUB_TODAY; "" leaves it unset: the real date
    tls: bool = False  # mutual TLS between every process, every grant enforced
    env: tuple[tuple[str, str], ...] = ()  # more settings of the hub


# Two runs keep `make test` short and still cover both axes: the 2016 replay over plaintext gRPC, and the
# real date (no GOVHUB_TODAY) over mutual TLS as production runs.
MODES = {"replay-2016-plaintext": Mode(REPLAY_DAY.isoformat()), "real-date-tls": Mode("", tls=True)}
ONE_DAY = dt.timedelta(days=1)
EMPLOYER = "91110000600037341L"
XUHUI = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310104" and len(h.members) == 3)
JINGAN = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310106")


@pytest.fixture(scope="module", params=sorted(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def day(mode: str) -> dt.date:
    """The day in force in the hub of this mode."""
    today = MODES[mode].today
    return dt.date.fromisoformat(today) if today else Clock().today()


@pytest.fixture(scope="module")
def hub(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    running = start_hub(
        tmp_path_factory.mktemp(f"matters-{mode}"),
        today=MODES[mode].today,
        extra_env=dict(MODES[mode].env),
        tls=MODES[mode].tls,
    )
    yield running
    code = stop_hub(running.process)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.log_file.close()
    assert code == 0, running.log()[-4000:]


def rid() -> str:
    return str(uuid.uuid4())


class Departments:
    def __init__(self, hub: Hub) -> None:
        self.channels = [hub.channel(n) for n in ("identity", "residence", "permits")]
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels[0])
        self.residence = residence_pb2_grpc.ResidenceServiceStub(self.channels[1])
        self.permits = permits_pb2_grpc.PermitsServiceStub(self.channels[2])

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def card_application(self, id_number: str) -> ipb.CardApplication:
        listed = await self.identity.ListCardApplications(
            ipb.ListCardApplicationsRequest(id_number=id_number)
        )
        return listed.card_applications[0]  # newest first

    async def decide_card(self, app_id: str, *, issue: bool) -> None:
        await self.identity.ApproveCardApplication(
            ipb.ApproveCardApplicationRequest(request_id=rid(), id=app_id)
        )
        await self.identity.MarkCardProduced(ipb.MarkCardProducedRequest(request_id=rid(), id=app_id))
        await self.identity.MarkCardReadyForPickup(
            ipb.MarkCardReadyForPickupRequest(request_id=rid(), id=app_id)
        )
        if issue:
            await self.identity.IssueCard(
                ipb.IssueCardRequest(request_id=rid(), id=app_id, old_card_surrendered=True)
            )

    async def first_card(self, id_number: str, name: str, region: str) -> None:
        """Give a registered person a card through the department alone (the starting point of a matter)."""
        created = await self.identity.CreateCardApplication(
            ipb.CreateCardApplicationRequest(
                request_id=rid(),
                id_number=id_number,
                name=name,
                kind=ipb.CARD_APPLICATION_KIND_FIRST_ISSUE,
                accepting_region_code=region,
            )
        )
        await self.decide_card(created.card_application.id, issue=True)


class Client:
    def __init__(self, hub: Hub, http: aiohttp.ClientSession, day: dt.date) -> None:
        self.hub = hub
        self.http = http
        self.day = day  # the day in force in the hub
        self.counter = {"Authorization": f"Bearer {hub.token('counter', 'staff-0042', hall='310104')}"}
        self.admin = {"Authorization": f"Bearer {hub.token('admin', 'admin-01')}"}

    async def submit(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        async with self.http.post(f"{self.hub.base_url}/api/v1/cases", json=body, headers=headers) as resp:
            answer = await resp.json()
            assert resp.status == 201, answer
            return answer

    async def at_counter(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(
            f"{self.hub.base_url}/api/v1/counter/cases", json=body, headers=self.counter
        ) as resp:
            answer = await resp.json()
            assert resp.status == 201, answer
            return answer

    async def progress(self, case: dict[str, Any]) -> dict[str, Any]:
        """The case as staff see it (the public lookup is rate-limited; polling it would be refused)."""
        url = f"{self.hub.base_url}/api/v1/cases/{case['case_no']}"
        async with self.http.get(url, headers=self.admin) as resp:
            view = await resp.json()
            assert resp.status == 200, view
            return view

    async def until(self, case: dict[str, Any], state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.progress(case)
            if view["state"] == state:
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"case stuck in {view['state']}, wanted {state}: {view}")
            await asyncio.sleep(0.2)

    async def settled(
        self, case: dict[str, Any], expected: dict[str, str], timeout: float = 30
    ) -> dict[str, Any]:
        """The case once its steps are in the `expected` states. A submission's answer tells the truth of
        its moment: under load a chained step may still be running when it is sent."""
        deadline = time.monotonic() + timeout
        view = case
        while any(steps(view).get(key) != state for key, state in expected.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"steps {steps(view)}, wanted {expected}")
            await asyncio.sleep(0.2)
            view = await self.progress(case)
        return view

    async def pickup(self, case: dict[str, Any], hall: str = "310104") -> dict[str, Any]:
        """Hand everything over at the counter of the case's hall."""
        staff = {"Authorization": f"Bearer {self.hub.token('counter', f'staff-{hall}', hall=hall)}"}
        async with self.http.post(
            f"{self.hub.base_url}/api/v1/counter/cases/{case['case_no']}/pickup",
            json={"old_card_surrendered": True},
            headers=staff,
        ) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
            return answer

    async def upload(self, kind: str) -> str:
        content = b"%PDF-1.4\n% " + kind.encode() + b" " + uuid.uuid4().hex.encode() + b"\n%%EOF\n"
        form = aiohttp.FormData()
        form.add_field("file", content, filename=f"{kind}.pdf", content_type="application/pdf")
        async with self.http.post(
            f"{self.hub.base_url}/api/v1/materials", data=form, headers=self.counter
        ) as r:
            assert r.status == 201, await r.text()
        return hashlib.sha256(content).hexdigest()


@pytest.fixture
async def env(hub: Hub, day: dt.date) -> Any:
    departments = Departments(hub)
    async with aiohttp.ClientSession() as http:
        yield Client(hub, http, day), departments
    await departments.close()


def steps(view: dict[str, Any]) -> dict[str, str]:
    return {s["key"]: s["state"] for s in view["steps"]}


async def test_cross_province_renewal_to_pickup(env: Any) -> None:
    client, dept = env
    person = {"id_number": "360102199205200454", "name": "刘赣平"}  # Jiangxi: accepted from 2016-07-01
    case = await client.submit(
        {
            "matter": "id-card-renewal-cross-province",
            "data": {
                "applicant": person,
                "renewal_reason": "EXPIRY",
                "accepting_region_code": "310104",
                "residence_permit": {
                    "number": "SH3101042016000999",
                    "valid_until": add_years(client.day, 1).isoformat(),
                },
            },
        },
        client.hub.citizen(person["id_number"]),
    )
    app = await dept.card_application(person["id_number"])
    await dept.decide_card(app.id, issue=False)
    await client.until(case, "READY_FOR_PICKUP")
    receipt = await client.pickup(case)
    assert receipt["state"] == "COMPLETED"
    assert (await dept.card_application(person["id_number"])).state == ipb.CARD_APPLICATION_STATE_ISSUED


async def test_lost_card_with_a_temporary_card(env: Any) -> None:
    client, dept = env
    person = {"id_number": "310104197811300337", "name": "陈沪明"}
    await dept.first_card(person["id_number"], person["name"], "310104")
    case = await client.submit(
        {
            "matter": "id-card-lost",
            "data": {"applicant": person, "station_region_code": "310104", "temporary_card": True},
        },
        client.hub.citizen(person["id_number"]),
    )
    # the loss is reported with the replacement, in one transaction at identity
    case = await client.settled(case, {"replacement": "ACCEPTED", "temporary_card": "DONE"})
    assert steps(case) == {"replacement": "ACCEPTED", "temporary_card": "DONE"}
    current = await dept.identity.GetCurrentCard(ipb.GetCurrentCardRequest(id_number=person["id_number"]))
    verdict = await dept.identity.VerifyCard(
        ipb.VerifyCardRequest(card_number=current.card.card_number, id_number=person["id_number"])
    )
    assert not verdict.valid  # reported lost at once
    app = await dept.card_application(person["id_number"])
    assert app.kind == ipb.CARD_APPLICATION_KIND_REPLACEMENT
    await dept.decide_card(app.id, issue=False)
    await client.until(case, "READY_FOR_PICKUP")
    assert (await client.pickup(case))["state"] == "COMPLETED"


def foreigner(passport: str, entry: dt.date, day: dt.date) -> dict[str, Any]:
    """A foreign employee who entered on `entry`, applying on `day`: a two-year contract from `day`."""
    return {
        "applicant": {
            "passport_number": passport,
            "nationality": "DEU",
            "surname": "Beispiel",
            "given_names": "Kim",
            "birth_date": add_years(day, -30).isoformat(),
            "sex": "FEMALE",
        },
        "employer_uscc": EMPLOYER,
        "position": "Software engineer",
        "work_region": "310115",
        "contract": {"start_date": day.isoformat(), "end_date": (add_years(day, 2) - ONE_DAY).isoformat()},
        "annual_salary_yuan": 450000,
        "education": "MASTER",
        "experience_years": 8,
        "chinese_hsk_level": 3,
        "months_per_year_in_china": 12,
        "entry_date": entry.isoformat(),
        "accommodation": {
            "address": "上海市浦东新区世纪大道100号",
            "police_station_code": "31011501",
            "host_kind": "HOTEL",
            "host_name": "测试酒店",
            "host_identifier": "HOTEL-310115-01",
            "arrived_at": f"{day.isoformat()}T08:00:00+08:00",
            "from_date": day.isoformat(),
            "to_date": (day + dt.timedelta(days=45)).isoformat(),
        },
    }


FOREIGNER_MATERIALS = [
    "passport",
    "photo",
    "health_certificate",
    "contract",
    "wp_application_form",
    "work_experience_proof",
    "degree_certificate",
    "no_criminal_record",
    "entry_stamp",
    "rp_application_form",
    "employer_letter",
    "employer_licence_copy",
]


async def register_employer(dept: Any) -> None:
    """Register the employer of the foreigner matters at permits (`dept` has a `permits` stub); once is
    enough, so an earlier registration is fine."""
    try:
        await dept.permits.RegisterEmployer(
            ppb.RegisterEmployerRequest(
                request_id=rid(),
                unified_social_credit_code=EMPLOYER,
                name="测试科技有限公司",
                address="上海市浦东新区",
            )
        )
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_foreigner_employment_three_windows_in_one(env: Any) -> None:
    client, dept = env
    await register_employer(dept)
    materials = {kind: await client.upload(kind) for kind in FOREIGNER_MATERIALS}
    case = await client.at_counter(
        {
            "matter": "foreigner-employment",
            "data": foreigner("C01X00T47", client.day - dt.timedelta(days=5), client.day),
            "materials": materials,
        }
    )
    case = await client.settled(case, {"accommodation": "DONE"})
    listed = await dept.permits.ListWorkPermitApplications(
        ppb.ListWorkPermitApplicationsRequest(passport_number="C01X00T47")
    )
    [wp] = listed.work_permit_applications
    # the residence permit is lodged at submission, right after the work permit (decided after it)
    rps = await dept.permits.ListResidencePermitApplications(
        ppb.ListResidencePermitApplicationsRequest(passport_number="C01X00T47")
    )
    [rp] = rps.residence_permit_applications
    await dept.permits.ApproveWorkPermitApplication(
        ppb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=wp.id)
    )
    assert rp.work_permit_id == wp.id
    await dept.permits.IssueWorkPermit(ppb.IssueWorkPermitRequest(request_id=rid(), id=wp.id))
    await dept.permits.ApproveResidencePermitApplication(
        ppb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=rp.id)
    )
    await dept.permits.IssueResidencePermit(ppb.IssueResidencePermitRequest(request_id=rid(), id=rp.id))
    await client.until(case, "READY_FOR_PICKUP")
    assert (await client.pickup(case))["state"] == "COMPLETED"


async def test_a_late_residence_permit_is_refused_before_anything_is_sent(env: Any) -> None:
    client, dept = env
    await register_employer(dept)
    materials = {kind: await client.upload(kind) for kind in FOREIGNER_MATERIALS}
    body = {
        "matter": "foreigner-employment",
        "data": foreigner("C01X00T48", client.day - dt.timedelta(days=40), client.day),
        "materials": materials,
    }
    async with client.http.post(
        f"{client.hub.base_url}/api/v1/counter/cases", json=body, headers=client.counter
    ) as resp:
        answer = await resp.json()
    assert resp.status == 400, answer
    assert [(e["field"], e["reason"]) for e in answer["errors"]] == [
        ("data.entry_date", "TOO_LONG_AFTER_ENTRY")
    ]
    listed = await dept.permits.ListWorkPermitApplications(
        ppb.ListWorkPermitApplicationsRequest(passport_number="C01X00T48")
    )
    assert not listed.work_permit_applications  # nothing reached permits


async def test_same_city_move_in_updates_the_register(env: Any) -> None:
    client, dept = env
    mover = JINGAN.members[1]
    case = await client.at_counter(
        {
            "matter": "household-move-in",
            "data": {
                "applicant": {"id_number": mover.id_number, "name": mover.name},
                "same_city_transfer": True,
                "destination": {
                    "region_code": "310104",
                    "address": XUHUI.address,
                    "household_number": XUHUI.number,
                },
                "relationship_code": "99",
                "arrived_on": client.day.isoformat(),
            },
        }
    )
    # the three steps run in a chain; under load the answer may come while a later one still runs (and
    # says so), so the case is followed to its end
    case = await client.until(case, "COMPLETED")
    assert steps(case) == {"move_out": "DONE", "move_in": "DONE", "card_address": "DONE"}
    person = (await dept.residence.GetPerson(rpb.GetPersonRequest(id_number=mover.id_number))).person
    assert person.household_number == XUHUI.number
    assert person.hukou_region_code == "310104"


async def test_newborn_registered_and_first_card(env: Any) -> None:
    client, dept = env
    head = XUHUI.members[0]
    birth_certificate = await client.upload("birth_certificate")
    born = client.day - dt.timedelta(days=14)  # registered within the month
    case = await client.submit(
        {
            "matter": "newborn-registration",
            "data": {
                "guardian": {"id_number": head.id_number, "name": head.name},
                "household_number": XUHUI.number,
                "newborn": {
                    "name": "张小玉",
                    "sex": "FEMALE",
                    "birth_date": born.isoformat(),
                    "birth_place": "上海市徐汇区",
                    "ethnicity": "汉",
                    "native_place": "上海",
                },
                "station_region_code": "310104",
                "relationship_code": "31",
                "first_id_card": True,
            },
            "materials": {"birth_certificate": birth_certificate},
        },
        client.hub.citizen(head.id_number),
    )
    case = await client.settled(case, {"birth": "DONE", "first_card": "ACCEPTED"})
    assert steps(case) == {"birth": "DONE", "first_card": "ACCEPTED"}
    members = await dept.residence.ListMembers(rpb.ListMembersRequest(household_number=XUHUI.number))
    newborn = next(m for m in members.members if m.name == "张小玉")
    assert newborn.id_number[:6] == "310104" and newborn.id_number[6:14] == born.strftime("%Y%m%d")
    app = await dept.card_application(newborn.id_number)
    await dept.decide_card(app.id, issue=False)
    await client.until(case, "READY_FOR_PICKUP")
    assert (await client.pickup(case))["state"] == "COMPLETED"


async def test_name_change_then_renewal(env: Any) -> None:
    client, dept = env
    person = JINGAN.members[0]
    await dept.first_card(person.id_number, person.name, "310106")
    case = await client.submit(
        {
            "matter": "name-change",
            "data": {
                "applicant": {"id_number": person.id_number, "name": person.name},
                "new_name": "吴新安",
                "station_region_code": "310106",
            },
            "materials": {"name_change_reason": await client.upload("name_change_reason")},
        },
        client.hub.citizen(person.id_number),
    )
    case = await client.settled(case, {"name_change": "DONE", "card_renewal": "ACCEPTED"})
    assert steps(case) == {"name_change": "DONE", "card_renewal": "ACCEPTED"}
    app = await dept.card_application(person.id_number)
    assert app.name == "吴新安" and app.renewal_reason == ipb.RENEWAL_REASON_NAME_CHANGE
    await dept.decide_card(app.id, issue=False)
    await client.until(case, "READY_FOR_PICKUP")
    assert (await client.pickup(case, hall="310106"))["state"] == "COMPLETED"


RAW_NUMBERS = (
    "360102199205200454",
    "310104197811300337",
    "C01X00T47",
    "C01X00T48",
    *(m.id_number for h in (XUHUI, JINGAN) for m in h.members),
)


async def test_zz_every_trail_is_intact_and_no_log_holds_a_raw_number(hub: Hub) -> None:
    """Runs last in this module: the audit chains the matters above wrote verify, name the people they
    touched by key only, and no log line of any process holds a raw ID or passport number."""
    from services.common.audit import RecordKeys, load_key, verify_database

    keys = RecordKeys(load_key(hub.var_dir / "audit.key", create=False))
    for database in ("identity", "residence", "permits", "gateway"):
        verdict = await verify_database(f"sqlite+aiosqlite:///{hub.var_dir / f'{database}.db'}")
        assert verdict.finding is None, (database, verdict.finding)
        assert verdict.checked > 0, database
    with sqlite3.connect(hub.var_dir / "identity.db") as db:
        keyed = {row[0] for row in db.execute("SELECT record_key FROM audit_log")}
        dump = "\n".join(str(row) for row in db.execute("SELECT * FROM audit_log"))
    assert keys.id_number("360102199205200454") in keyed  # the renewal above was recorded, by key
    assert "360102199205200454" not in dump
    log = hub.log()
    assert hub.refusals_of_access() == []
    for number in RAW_NUMBERS:
        assert number not in log, f"{number[:3]}… appears in a log line"
