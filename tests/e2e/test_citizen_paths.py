"""Issue 13 over real processes: each numbered point of "every citizen's path to its end", seen as the
person sees it through the gateway's HTTP API, and — where the point is about the truth — compared with
the department's own record over gRPC.

One hub for the module (started once, on the real date, plaintext), so the module stays short; every
test uses people of its own from the seeded register, so the tests do not depend on each other's order.
Decisions are taken through the back office's HTTP API, as department staff without a gRPC client would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from govhub.common.v1 import common_pb2
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
from tests.e2e.test_matters import EMPLOYER, FOREIGNER_MATERIALS, register_employer

pytestmark = pytest.mark.e2e

XUHUI = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310104" and len(h.members) == 3)
JINGAN = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310106")
PUDONG = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310115")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = start_hub(tmp_path_factory.mktemp("citizen-paths"), today="")  # the real date
    yield running
    code = stop_hub(running.process)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.log_file.close()
    assert code == 0, running.log()[-4000:]


def rid() -> str:
    return str(uuid.uuid4())


class Window:
    """The gateway over HTTP as a citizen, a counter, the back office and an admin see it, and each
    department's own record over gRPC."""

    def __init__(self, hub: Hub, http: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.http = http
        self.day = Clock().today()
        self.admin = {"Authorization": f"Bearer {hub.token('admin', 'admin-01')}"}
        self.counter = {"Authorization": f"Bearer {hub.token('counter', 'staff-0042', hall='310104')}"}
        self.channels = [hub.channel(n) for n in ("identity", "residence", "permits")]
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels[0])
        self.residence = residence_pb2_grpc.ResidenceServiceStub(self.channels[1])
        self.permits = permits_pb2_grpc.PermitsServiceStub(self.channels[2])

    def office(self, department: str) -> dict[str, str]:
        token = self.hub.token("department", f"clerk-{department}", dept=department)
        return {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, **params: str
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.request(
            method, f"{self.hub.base_url}{path}", json=body, headers=headers, params=params or None
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def submit(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        status, answer = await self.send("POST", "/api/v1/cases", headers, body)
        assert status == 201, answer
        return answer

    async def case(self, case: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        status, view = await self.send("GET", f"/api/v1/cases/{case['case_no']}", headers or self.admin)
        assert status == 200, view
        return view

    async def until(self, case: dict[str, Any], state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.case(case)
            if view["state"] == state:
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"case stuck in {view['state']}, wanted {state}: {view}")
            await asyncio.sleep(0.2)

    async def decide(self, case: dict[str, Any], step: str, word: str, body: Any = None) -> dict[str, Any]:
        """A back-office decision on `step` over HTTP, as the department's clerk."""
        department = next(s["department"] for s in (await self.case(case))["steps"] if s["key"] == step)
        path = f"/api/v1/backoffice/cases/{case['case_no']}/steps/{step}/{word}"
        status, answer = await self.send("POST", path, self.office(department), body)
        assert status == 202, answer
        return answer

    async def withdraw(self, case: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return await self.send("POST", f"/api/v1/cases/{case['case_no']}/withdraw", headers, {})

    async def card_application(self, id_number: str) -> ipb.CardApplication:
        listed = await self.identity.ListCardApplications(
            ipb.ListCardApplicationsRequest(id_number=id_number)
        )
        newest: ipb.CardApplication = listed.card_applications[0]
        return newest

    async def first_card(self, id_number: str, name: str, region: str) -> str:
        """A card for a registered person through the department alone (the starting point of a matter)."""
        created = await self.identity.CreateCardApplication(
            ipb.CreateCardApplicationRequest(
                request_id=rid(),
                id_number=id_number,
                name=name,
                kind=ipb.CARD_APPLICATION_KIND_FIRST_ISSUE,
                accepting_region_code=region,
            )
        )
        app_id = created.card_application.id
        await self.identity.ApproveCardApplication(
            ipb.ApproveCardApplicationRequest(request_id=rid(), id=app_id)
        )
        await self.identity.MarkCardProduced(ipb.MarkCardProducedRequest(request_id=rid(), id=app_id))
        await self.identity.MarkCardReadyForPickup(
            ipb.MarkCardReadyForPickupRequest(request_id=rid(), id=app_id)
        )
        issued = await self.identity.IssueCard(
            ipb.IssueCardRequest(request_id=rid(), id=app_id, old_card_surrendered=True)
        )
        return str(issued.card_application.card_number)

    async def upload(self, kind: str, headers: dict[str, str] | None = None) -> str:
        content = b"%PDF-1.4\n% " + kind.encode() + b" " + uuid.uuid4().hex.encode() + b"\n%%EOF\n"
        form = aiohttp.FormData()
        form.add_field("file", content, filename=f"{kind}.pdf", content_type="application/pdf")
        async with self.http.post(
            f"{self.hub.base_url}/api/v1/materials", data=form, headers=headers or self.counter
        ) as resp:
            assert resp.status == 201, await resp.text()
        return hashlib.sha256(content).hexdigest()

    async def notifications(self, headers: dict[str, str], milestone: str, timeout: float = 30) -> list[Any]:
        """My notifications, once one of `milestone` is among them (the notifier runs every 2 s)."""
        deadline = time.monotonic() + timeout
        while True:
            status, mine = await self.send("GET", "/api/v1/me/notifications", headers)
            assert status == 200, mine
            if any(n["milestone"] == milestone for n in mine["notifications"]):
                return list(mine["notifications"])
            if time.monotonic() > deadline:
                raise AssertionError(f"no {milestone} notification: {mine}")
            await asyncio.sleep(0.3)


@pytest.fixture
async def window(hub: Hub) -> AsyncIterator[Window]:
    async with aiohttp.ClientSession() as http:
        opened = Window(hub, http)
        yield opened
        await opened.close()


def states(view: dict[str, Any]) -> dict[str, str]:
    return {s["key"]: s["state"] for s in view["steps"]}


def step(view: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in view["steps"] if s["key"] == key)


def renewal(person: tuple[str, str], day: dt.date, reason: str = "EXPIRY") -> dict[str, Any]:
    """A cross-province renewal at the Xuhui hall by a holder of another province's hukou."""
    return {
        "matter": "id-card-renewal-cross-province",
        "data": {
            "applicant": {"id_number": person[0], "name": person[1]},
            "renewal_reason": reason,
            "accepting_region_code": "310104",
            "residence_permit": {
                "number": "SH3101042016000999",
                "valid_until": add_years(day, 1).isoformat(),
            },
        },
    }


def member(household: Any, index: int) -> tuple[str, str]:
    m = household.members[index]
    return m.id_number, m.name


def demo(region: str) -> tuple[str, str]:
    """The one member of the single-person demo household of `region`."""
    h = next(h for h in DEMO_HOUSEHOLDS if h.region_code == region and len(h.members) == 1)
    return member(h, 0)


# -- 1. withdrawal tells the truth, at every step boundary ----------------------------------------------


async def test_1_withdrawal_at_each_step_boundary_matches_identitys_record(window: Window) -> None:
    person = demo("360102")  # Jiangxi hukou
    me = window.hub.citizen(person[0])
    # while identity holds it ACCEPTED: withdrawn, and identity's application is cancelled
    case = await window.submit(renewal(person, window.day), me)
    assert states(case) == {"card": "ACCEPTED"}
    status, view = await window.withdraw(case, me)
    if status == 202:  # identity had not cancelled yet when the answer was given: the case says so
        assert view["state"] == "WITHDRAWING" and states(view) == {"card": "COMPENSATING"}, view
        view = await window.until(case, "WITHDRAWN")
    else:
        assert status == 200, view
    assert view["state"] == "WITHDRAWN" and states(view) == {"card": "COMPENSATED"}
    app = await window.card_application(person[0])
    assert app.state == ipb.CARD_APPLICATION_STATE_CANCELLED

    # approved, then produced, then ready: each refused with 409, and identity still holds its record
    case = await window.submit(renewal(person, window.day), me)
    boundaries = [
        ("approve", "APPROVED", ipb.CARD_APPLICATION_STATE_APPROVED),
        ("produced", "APPROVED", ipb.CARD_APPLICATION_STATE_CARD_PRODUCED),
        ("ready-for-pickup", "READY_FOR_PICKUP", ipb.CARD_APPLICATION_STATE_READY_FOR_PICKUP),
    ]
    for word, case_state, department_state in boundaries:
        await window.decide(case, "card", word)
        app = await window.card_application(person[0])
        deadline = time.monotonic() + 30
        while (await window.case(case))["steps"][0]["department_state"] != ipb.CardApplicationState.Name(
            app.state
        ).removeprefix("CARD_APPLICATION_STATE_"):
            assert time.monotonic() < deadline, "the case never followed identity's event"
            await asyncio.sleep(0.2)
        status, problem = await window.withdraw(case, me)
        assert status == 409, problem
        assert problem["type"] == "/problems/withdrawal-refused"
        assert [(s["key"], s["reason"]) for s in problem["steps"]] == [("card", "ALREADY_DECIDED")]
        view = await window.case(case, me)
        assert view["state"] == case_state and step(view, "card")["state"] != "COMPENSATED"
        assert (await window.card_application(person[0])).state == department_state


# -- 2. a name change is withdrawn whole or not at all ---------------------------------------------------


async def test_2_a_recorded_name_change_refuses_withdrawal_and_the_renewal_goes_on(window: Window) -> None:
    person = member(JINGAN, 0)
    me = window.hub.citizen(person[0])
    await window.first_card(person[0], person[1], "310106")
    reason = await window.upload("name_change_reason", me)
    case = await window.submit(
        {
            "matter": "name-change",
            "data": {
                "applicant": {"id_number": person[0], "name": person[1]},
                "new_name": "吴新静",
                "station_region_code": "310106",
            },
            "materials": {"name_change_reason": reason},
        },
        me,
    )
    # the renewal follows the name change; the answer may come while it still runs (and says so)
    deadline = time.monotonic() + 30
    while states(case) != {"name_change": "DONE", "card_renewal": "ACCEPTED"}:
        assert time.monotonic() < deadline, states(case)
        await asyncio.sleep(0.2)
        case = await window.case(case)
    status, problem = await window.withdraw(case, me)
    assert status == 409, problem
    assert [(s["key"], s["reason"]) for s in problem["steps"]] == [("name_change", "NOT_UNDOABLE")]
    # the register keeps the new name, and the renewal the law requires is not cancelled
    registered = await window.residence.GetPerson(rpb.GetPersonRequest(id_number=person[0]))
    assert registered.person.name == "吴新静"
    app = await window.card_application(person[0])
    assert app.state == ipb.CARD_APPLICATION_STATE_ACCEPTED and app.name == "吴新静"
    assert states(await window.case(case, me)) == {"name_change": "DONE", "card_renewal": "ACCEPTED"}


# -- 3. a loss reported online is taken into the id-card-lost matter -------------------------------------


async def test_3_a_loss_reported_online_is_taken_into_the_replacement(window: Window) -> None:
    person = demo("310104")
    me = window.hub.citizen(person[0])
    await window.first_card(person[0], person[1], "310104")
    status, report = await window.send(
        "POST", "/api/v1/me/card/report-lost", me, {"name": person[1], "station_region_code": "310104"}
    )
    assert status == 201, report
    case = await window.submit(
        {
            "matter": "id-card-lost",
            "data": {
                "applicant": {"id_number": person[0], "name": person[1]},
                "station_region_code": "310104",
                "temporary_card": False,
            },
        },
        me,
    )
    view = await window.case(case, me)
    assert states(view) == {"replacement": "ACCEPTED", "temporary_card": "SKIPPED"}
    assert step(view, "replacement")["results"]["loss_report"] == {
        "already_reported": True,
        "reported_on": report["reported_on"],
    }
    app = await window.card_application(person[0])
    assert app.kind == ipb.CARD_APPLICATION_KIND_REPLACEMENT and app.loss_already_reported


# -- 4. a rejection's reasons reach the person -----------------------------------------------------------


async def test_4_a_rejection_shows_its_reasons_on_the_case_notification_and_progress(window: Window) -> None:
    person = demo("440106")  # Guangdong hukou
    me = window.hub.citizen(person[0])
    case = await window.submit(renewal(person, window.day), me)
    await window.decide(
        case, "card", "reject", {"reasons": ["照片不符合要求"], "reason_codes": ["PHOTO_NOT_COMPLIANT"]}
    )
    await window.until(case, "REJECTED")
    own = await window.case(case, me)
    assert own["rejection"] == {"reasons": ["照片不符合要求"], "codes": ["PHOTO_NOT_COMPLIANT"]}
    assert step(own, "card")["state"] == "REFUSED"
    notes = await window.notifications(me, "rejected")
    rejected = next(n for n in notes if n["milestone"] == "rejected")
    assert "照片不符合要求" in rejected["text"]
    status, public = await window.send(
        "GET", f"/api/v1/progress/{case['case_no']}", {}, code=case["query_code"]
    )
    assert status == 200, public
    assert public["state"] == "REJECTED" and public["rejection"]["codes"] == ["PHOTO_NOT_COMPLIANT"]
    app = await window.card_application(person[0])
    assert app.state == ipb.CARD_APPLICATION_STATE_REJECTED and app.rejection_code == "PHOTO_NOT_COMPLIANT"


# -- 5. a second application while one is open -----------------------------------------------------------


async def test_5_a_second_open_application_is_a_409_leaving_no_case_nor_notification(window: Window) -> None:
    person = demo("410105")  # Henan hukou
    me = window.hub.citizen(person[0])
    first = await window.submit(renewal(person, window.day), me)
    await window.notifications(me, "received")
    status, problem = await window.send("POST", "/api/v1/cases", me, renewal(person, window.day))
    assert status == 409, problem
    assert problem["reason"] == "ALREADY_EXISTS" and problem["step"] == "card" and "case_no" not in problem
    status, mine = await window.send("GET", "/api/v1/me/cases", me)
    assert [c["case_no"] for c in mine["cases"]] == [first["case_no"]]
    # the refused attempt left no case, so nothing is ever told about it
    status, notes = await window.send("GET", "/api/v1/me/notifications", me)
    assert {(n["case_no"], n["milestone"]) for n in notes["notifications"]} == {
        (first["case_no"], "received")
    }


# -- 6. a matter that does not apply, a hall that is not the counter's ----------------------------------


async def test_6_a_shanghai_hukou_on_the_cross_province_renewal_and_another_hall_are_refused(
    window: Window,
) -> None:
    person = member(XUHUI, 1)  # Shanghai hukou
    me = window.hub.citizen(person[0])
    status, problem = await window.send("POST", "/api/v1/cases", me, renewal(person, window.day))
    assert status == 422, problem
    assert problem["reason"] == "NOT_CROSS_PROVINCE"
    status, mine = await window.send("GET", "/api/v1/me/cases", me)
    assert mine["cases"] == []
    listed = await window.identity.ListCardApplications(ipb.ListCardApplicationsRequest(id_number=person[0]))
    assert list(listed.card_applications) == []
    elsewhere = renewal(demo("120101"), window.day)  # a Tianjin hukou, at a 310104 counter
    elsewhere["data"]["accepting_region_code"] = "310115"
    status, problem = await window.send("POST", "/api/v1/counter/cases", window.counter, elsewhere)
    assert status == 403, problem
    assert [(e["field"], e["reason"]) for e in problem["errors"]] == [
        ("data.accepting_region_code", "NOT_THIS_HALL")
    ]


# -- 7. results reach those entitled to them -------------------------------------------------------------


async def test_7_the_newborns_id_number_shows_on_the_guardians_case_and_household(window: Window) -> None:
    head = member(XUHUI, 0)
    me = window.hub.citizen(head[0])
    born = window.day - dt.timedelta(days=10)
    case = await window.submit(
        {
            "matter": "newborn-registration",
            "data": {
                "guardian": {"id_number": head[0], "name": head[1]},
                "household_number": XUHUI.number,
                "newborn": {
                    "name": "张小雨",
                    "sex": "FEMALE",
                    "birth_date": born.isoformat(),
                    "birth_place": "上海市徐汇区",
                    "ethnicity": "汉",
                    "native_place": "上海",
                },
                "station_region_code": "310104",
                "relationship_code": "31",
                "first_id_card": False,
            },
            "materials": {"birth_certificate": await window.upload("birth_certificate", me)},
        },
        me,
    )
    members = await window.residence.ListMembers(rpb.ListMembersRequest(household_number=XUHUI.number))
    newborn = next(m for m in members.members if m.name == "张小雨")
    view = await window.case(case, me)
    assert step(view, "birth")["results"]["id_number"] == newborn.id_number
    status, household = await window.send("GET", "/api/v1/me/household", me)
    assert status == 200 and "张小雨" in [m["name"] for m in household["members"]]
    status, public = await window.send(
        "GET", f"/api/v1/progress/{case['case_no']}", {}, code=case["query_code"]
    )
    assert status == 200 and newborn.id_number not in str(public)  # never on the query-code view


# -- 8. validation before sending ------------------------------------------------------------------------


def foreigner(passport: str, day: dt.date, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
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
        "contract": {
            "start_date": day.isoformat(),
            "end_date": (add_years(day, 2) - dt.timedelta(1)).isoformat(),
        },
        "annual_salary_yuan": 450000,
        "education": "MASTER",
        "experience_years": 8,
        "chinese_hsk_level": 3,
        "months_per_year_in_china": 12,
        "entry_date": (day - dt.timedelta(days=5)).isoformat(),
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
    data.update(changes)
    return data


async def test_8_a_contract_ending_before_it_starts_is_named_and_nothing_is_sent(window: Window) -> None:
    await register_employer(window)
    materials = {kind: await window.upload(kind) for kind in FOREIGNER_MATERIALS}
    day = window.day
    data = foreigner(
        "C01X00T81",
        day,
        contract={"start_date": day.isoformat(), "end_date": (day - dt.timedelta(1)).isoformat()},
    )
    data["accommodation"]["to_date"] = (day - dt.timedelta(days=1)).isoformat()
    status, problem = await window.send(
        "POST",
        "/api/v1/counter/cases",
        window.counter,
        {"matter": "foreigner-employment", "data": data, "materials": materials},
    )
    assert status == 400, problem
    assert {(e["field"], e["reason"]) for e in problem["errors"]} == {
        ("data.contract.end_date", "BEFORE_START"),
        ("data.accommodation.to_date", "BEFORE_START"),
    }
    listed = await window.permits.ListWorkPermitApplications(
        ppb.ListWorkPermitApplicationsRequest(passport_number="C01X00T81")
    )
    assert not listed.work_permit_applications  # nothing reached permits (nor residence: no stay to undo)


# -- 9. every input that decides a foreigner's category reaches permits ----------------------------------


async def test_9_category_inputs_reach_permits_and_decide_the_category(window: Window) -> None:
    await register_employer(window)
    materials = {kind: await window.upload(kind) for kind in FOREIGNER_MATERIALS}
    category = {"special_criteria": ["TALENT_PROGRAMME"], "top_university_or_fortune500": True}
    body = {"matter": "foreigner-employment", "data": foreigner("C01X00T91", window.day, category=category)}
    status, problem = await window.send(
        "POST", "/api/v1/counter/cases", window.counter, {**body, "materials": materials}
    )
    assert status == 400, problem  # each claim needs its evidence, named before anything is sent
    assert {(e["field"], e["reason"]) for e in problem["errors"]} == {
        ("materials.talent_evidence", "EVIDENCE_REQUIRED"),
        ("materials.top_university_or_fortune500_proof", "EVIDENCE_REQUIRED"),
    }
    for kind in ("talent_evidence", "top_university_or_fortune500_proof"):
        materials[kind] = await window.upload(kind)
    status, case = await window.send(
        "POST", "/api/v1/counter/cases", window.counter, {**body, "materials": materials}
    )
    assert status == 201, case
    [wp] = (
        await window.permits.ListWorkPermitApplications(
            ppb.ListWorkPermitApplicationsRequest(passport_number="C01X00T91")
        )
    ).work_permit_applications
    assert list(wp.special_criteria) == [ppb.SPECIAL_CRITERION_TALENT_PROGRAMME]
    assert wp.top_university_or_fortune500
    assert wp.category == ppb.CATEGORY_A  # high-end talent, no longer classed B or C


# -- 10. documents that stop being valid -----------------------------------------------------------------


async def test_10_a_death_deregistration_cancels_the_id_card(window: Window) -> None:
    person = member(PUDONG, 1)  # the head's spouse
    card_number = await window.first_card(person[0], person[1], "310115")
    me = window.hub.citizen(person[0])
    status, card = await window.send("GET", "/api/v1/me/card", me)
    assert status == 200 and card["status"] == "VALID", card
    # an application still open when the holder dies: identity cancels it, and the case says why
    case = await window.submit(
        {
            "matter": "id-card-lost",
            "data": {
                "applicant": {"id_number": person[0], "name": person[1]},
                "station_region_code": "310115",
                "temporary_card": False,
            },
        },
        me,
    )
    died = window.day - dt.timedelta(days=2)
    await window.residence.Deregister(
        rpb.DeregisterRequest(
            request_id=rid(),
            id_number=person[0],
            reason=rpb.DEREGISTRATION_REASON_DEATH,
            occurred_on=common_pb2.Date(year=died.year, month=died.month, day=died.day),
        )
    )
    deadline = time.monotonic() + 30
    while True:  # identity follows residence's events with its own cursor
        verdict = await window.identity.VerifyCard(
            ipb.VerifyCardRequest(card_number=card_number, id_number=person[0])
        )
        if verdict.result == ipb.CARD_VERIFICATION_RESULT_CANCELLED:
            break
        assert time.monotonic() < deadline, verdict
        await asyncio.sleep(0.3)
    assert not verdict.valid and verdict.cancelled_on.year
    status, card = await window.send("GET", "/api/v1/me/card", me)
    assert card["status"] == "CANCELLED", card
    view = await window.until(case, "REJECTED")
    assert view["reason"] == "CANCELLED_BY_DEPARTMENT"
    replacement = step(view, "replacement")
    assert replacement["state"] == "CANCELLED"
    assert "户口已注销" in replacement["results"]["cancellation_reason"]
    app = await window.card_application(person[0])
    assert app.state == ipb.CARD_APPLICATION_STATE_CANCELLED


async def test_10_a_cancelled_work_permit_cancels_the_residence_permit_resting_on_it_not_the_stay(
    window: Window,
) -> None:
    await register_employer(window)
    materials = {kind: await window.upload(kind) for kind in FOREIGNER_MATERIALS}
    body = {
        "matter": "foreigner-employment",
        "data": foreigner("C01X00T10", window.day),
        "materials": materials,
    }
    status, case = await window.send("POST", "/api/v1/counter/cases", window.counter, body)
    assert status == 201, case
    for key in ("work_permit", "residence_permit"):  # the clerk approves and issues each, in turn
        await window.decide(case, key, "approve")
        deadline = time.monotonic() + 30
        while step(await window.case(case), key)["department_state"] != "APPROVED":
            assert time.monotonic() < deadline, await window.case(case)
            await asyncio.sleep(0.2)
        await window.decide(case, key, "issue")
    view = await window.until(case, "READY_FOR_PICKUP")
    residence_permit = step(view, "residence_permit")["results"]["permit_number"]
    assert (
        await window.permits.VerifyPermit(ppb.VerifyPermitRequest(permit_number=residence_permit))
    ).valid_now
    [wp] = (
        await window.permits.ListWorkPermitApplications(
            ppb.ListWorkPermitApplicationsRequest(passport_number="C01X00T10")
        )
    ).work_permit_applications
    await window.permits.CancelWorkPermitApplication(
        ppb.CancelWorkPermitApplicationRequest(request_id=rid(), id=wp.id, reason="劳动合同解除")
    )
    verdict = await window.permits.VerifyPermit(ppb.VerifyPermitRequest(permit_number=residence_permit))
    assert not verdict.valid_now and verdict.state == ppb.PERMIT_STATE_CANCELLED
    view = await window.until(case, "REJECTED")  # the case follows permits' events: nothing to pick up
    # both permits end cancelled: by permits' own events, or by the undo the failed case asked for when
    # the other permit's event was applied first — never left as held, never left waiting on staff
    deadline = time.monotonic() + 30
    while not set(states(view).values()) - {"DONE"} <= {"CANCELLED", "COMPENSATED"}:
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.2)
        view = await window.case(case)
    assert view["state"] == "REJECTED" and view["reason"] == "CANCELLED_BY_DEPARTMENT"
    # where the person stays stands on its own: still registered at residence, and the case says so —
    # in force, never shown undone
    stay = step(view, "accommodation")
    assert stay["state"] == "DONE" and stay["in_force"] is True, view
    assert view["in_force"] == ["accommodation"]
    registration = (
        await window.residence.GetAccommodationRegistration(
            rpb.GetAccommodationRegistrationRequest(
                registration_number=stay["results"]["registration_number"]
            )
        )
    ).accommodation_registration
    assert registration.passport_number == "C01X00T10"
    assert not registration.HasField("cancel_time") and not registration.cancellation_reason


# -- 11. households ----------------------------------------------------------------------------------------


async def test_11_only_a_parent_guardian_or_head_may_register_a_birth(window: Window) -> None:
    lodger = member(JINGAN, 1)  # a member of the household, neither parent, guardian nor head
    me = window.hub.citizen(lodger[0])
    body: dict[str, Any] = {
        "matter": "newborn-registration",
        "data": {
            "guardian": {"id_number": lodger[0], "name": lodger[1]},
            "household_number": JINGAN.number,
            "newborn": {
                "name": "吴小禾",
                "sex": "MALE",
                "birth_date": (window.day - dt.timedelta(days=3)).isoformat(),
                "birth_place": "上海市静安区",
                "ethnicity": "汉",
                "native_place": "上海",
            },
            "station_region_code": "310106",
            "relationship_code": "21",
            "first_id_card": False,
        },
        "materials": {"birth_certificate": await window.upload("birth_certificate", me)},
    }
    status, problem = await window.send("POST", "/api/v1/cases", me, body)
    assert status == 422, problem
    assert problem["reason"] == "DECLARANT_NOT_ENTITLED"
    son_in_law = {**body, "data": {**body["data"], "relationship_code": "28"}}  # 女婿: not for a newborn
    status, problem = await window.send("POST", "/api/v1/cases", me, son_in_law)
    assert status in (400, 422), problem
    assert "relationship_code" in str(problem)
    members = await window.residence.ListMembers(rpb.ListMembersRequest(household_number=JINGAN.number))
    assert "吴小禾" not in [m.name for m in members.members]


# -- 12. the window and the department agree ---------------------------------------------------------------


async def test_12_the_damaged_card_fee_shown_is_the_one_identity_charges(window: Window) -> None:
    status, matter = await window.send("GET", "/api/v1/matters/id-card-renewal-cross-province", {})
    assert status == 200, matter
    fees = {f["item"]: f["amount_fen"] for f in matter["fees"]}
    person = demo("120101")  # Tianjin hukou
    me = window.hub.citizen(person[0])
    case = await window.submit(renewal(person, window.day, reason="SERIOUS_DAMAGE"), me)
    app = await window.card_application(person[0])
    assert app.renewal_reason == ipb.RENEWAL_REASON_SERIOUS_DAMAGE
    assert fees["ID card renewal: serious damage"] == app.fee_fen == 4000
    assert (await window.case(case, me))["fee_fen"] == app.fee_fen
