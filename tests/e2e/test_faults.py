"""Fault tests over real processes: the gateway killed with SIGKILL at every step boundary of
foreigner-employment (and once in the middle of a submission), a department killed while a step waits
for it, and two gateways on one PostgreSQL with one killed mid-flow. Every case still reaches its end,
with exactly one department record per step."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import pytest

from govhub.permits.v1 import permits_pb2 as ppb
from govhub.permits.v1 import permits_pb2_grpc
from tests.e2e.conftest import free_port, mint_token
from tests.e2e.stack import Stack
from tests.e2e.test_matters import EMPLOYER, FOREIGNER_MATERIALS, REPLAY_DAY, foreigner, rid

TODAY = REPLAY_DAY  # the faults run on the replay: every matter is available

pytestmark = pytest.mark.e2e
POSTGRES_URL = os.environ.get("GOVHUB_TEST_POSTGRES_URL", "")


class Window:
    """The counter of hall 310115 talking to a gateway, and the permits back office over gRPC."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession) -> None:
        self.stack = stack
        self.http = http
        self.base = f"http://127.0.0.1:{stack.ports['gateway']}"
        self.counter = {
            "Authorization": f"Bearer {mint_token(stack.var_dir, 'counter', 'staff-1', hall='310115')}"
        }
        self.admin = {"Authorization": f"Bearer {mint_token(stack.var_dir, 'admin', 'admin-1')}"}

    async def upload(self, kind: str) -> str:
        content = b"%PDF-1.4\n% " + kind.encode() + b" " + uuid.uuid4().hex.encode() + b"\n%%EOF\n"
        form = aiohttp.FormData()
        form.add_field("file", content, filename=f"{kind}.pdf", content_type="application/pdf")
        async with self.http.post(f"{self.base}/api/v1/materials", data=form, headers=self.counter) as resp:
            assert resp.status in (200, 201), await resp.text()
        return hashlib.sha256(content).hexdigest()

    async def open(self, passport: str, key: str) -> dict[str, Any]:
        materials = {kind: await self.upload(kind) for kind in FOREIGNER_MATERIALS}
        body = {
            "matter": "foreigner-employment",
            "data": foreigner(passport, TODAY - dt.timedelta(days=3), TODAY),
            "materials": materials,
        }
        async with self.http.post(
            f"{self.base}/api/v1/counter/cases", json=body, headers={**self.counter, "Idempotency-Key": key}
        ) as resp:
            answer = await resp.json()
            assert resp.status == 201, answer
            return answer

    async def view(self, case_no: str) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/api/v1/cases/{case_no}", headers=self.admin) as resp:
            return await resp.json()

    async def until(self, case_no: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                view = await self.view(case_no)
            except aiohttp.ClientError:
                view = {}
            if view.get("state") == state:
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"{case_no} is {view.get('state')}, wanted {state}\n{self.stack.tail()}")
            await asyncio.sleep(0.2)

    async def until_step(self, case_no: str, key: str, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.view(case_no)
            if {s["key"]: s["state"] for s in view.get("steps", [])}.get(key) == state:
                return
            assert time.monotonic() < deadline, f"{key} never {state}: {view}\n{self.stack.tail()}"
            await asyncio.sleep(0.2)

    async def pickup(self, case_no: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.base}/api/v1/counter/cases/{case_no}/pickup", json={}, headers=self.counter
        ) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
            return answer


async def permits_call(stack: Stack, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(stack.target("permits")) as channel:
        return await getattr(permits_pb2_grpc.PermitsServiceStub(channel), method)(request, timeout=10)


async def one_each(
    stack: Stack, passport: str
) -> tuple[ppb.WorkPermitApplication, ppb.ResidencePermitApplication | None]:
    wps = await permits_call(
        stack, "ListWorkPermitApplications", ppb.ListWorkPermitApplicationsRequest(passport_number=passport)
    )
    rps = await permits_call(
        stack,
        "ListResidencePermitApplications",
        ppb.ListResidencePermitApplicationsRequest(passport_number=passport),
    )
    assert len(wps.work_permit_applications) == 1, wps
    assert len(rps.residence_permit_applications) <= 1, rps
    return wps.work_permit_applications[0], (rps.residence_permit_applications or [None])[0]


def accommodation_count(stack: Stack, passport: str) -> int:
    with sqlite3.connect(stack.var_dir / "residence.db") as db:
        (count,) = db.execute(
            "SELECT count(*) FROM accommodation_registrations WHERE passport_number = ?", (passport,)
        ).fetchone()
    return count


async def wait_for_residence_permit(
    stack: Stack, passport: str, timeout: float = 60
) -> ppb.ResidencePermitApplication:
    deadline = time.monotonic() + timeout
    while True:
        _, rp = await one_each(stack, passport)
        if rp is not None:
            return rp
        assert time.monotonic() < deadline, stack.tail()
        await asyncio.sleep(0.2)


async def register_employer(stack: Stack) -> None:
    try:
        await permits_call(
            stack,
            "RegisterEmployer",
            ppb.RegisterEmployerRequest(
                request_id=rid(),
                unified_social_credit_code=EMPLOYER,
                name="测试科技有限公司",
                address="上海市浦东新区",
            ),
        )
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("faults"), today=TODAY.isoformat(), GOVHUB_GATEWAY_PROGRESS_BURST="1000"
    )
    running.seed(10)
    try:
        running.start_all()
        yield running
    finally:
        running.stop()


async def test_gateway_killed_at_every_step_boundary(stack: Stack) -> None:
    passport = "K1LL00001"
    await register_employer(stack)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        window = Window(stack, http)
        case = await window.open(passport, key="boundary-1")
        case_no = case["case_no"]

        stack.kill_gateway()  # boundary 1: submitted; work permit under review, accommodation done
        stack.start_gateway()
        wp, _ = await one_each(stack, passport)
        await permits_call(
            stack,
            "ApproveWorkPermitApplication",
            ppb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=wp.id),
        )
        stack.kill_gateway()  # boundary 2: the approval event is pending; the residence permit step is due
        stack.start_gateway()
        rp = await wait_for_residence_permit(stack, passport)
        stack.kill_gateway()  # boundary 3: the residence permit application was just sent
        stack.start_gateway()
        await permits_call(stack, "IssueWorkPermit", ppb.IssueWorkPermitRequest(request_id=rid(), id=wp.id))
        await permits_call(
            stack,
            "ApproveResidencePermitApplication",
            ppb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=rp.id),
        )
        stack.kill_gateway()  # boundary 4: decisions pending
        stack.start_gateway()
        await permits_call(
            stack, "IssueResidencePermit", ppb.IssueResidencePermitRequest(request_id=rid(), id=rp.id)
        )
        await window.until(case_no, "READY_FOR_PICKUP")
        stack.kill_gateway()  # boundary 5: ready for pickup
        stack.start_gateway()
        assert (await window.pickup(case_no))["state"] == "COMPLETED"
    await one_each(stack, passport)  # exactly one work permit and one residence permit application
    assert accommodation_count(stack, passport) == 1


async def test_gateway_killed_in_the_middle_of_a_submission(stack: Stack) -> None:
    """Killed while answering the POST: the client retries with its Idempotency-Key and gets its case."""
    passport = "K1LL00002"
    await register_employer(stack)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        window = Window(stack, http)
        materials = {kind: await window.upload(kind) for kind in FOREIGNER_MATERIALS}
        body = {
            "matter": "foreigner-employment",
            "data": foreigner(passport, TODAY - dt.timedelta(days=3), TODAY),
            "materials": materials,
        }
        headers = {**window.counter, "Idempotency-Key": "mid-submission"}
        post = asyncio.create_task(
            http.post(f"{window.base}/api/v1/counter/cases", json=body, headers=headers)
        )
        await asyncio.sleep(0.05)
        stack.kill_gateway()
        with contextlib.suppress(aiohttp.ClientError):
            (await post).release()
        stack.start_gateway()
        deadline = time.monotonic() + 90
        while True:  # a retry is a conflict while the dead request's key is fresh, then it is answered
            async with http.post(f"{window.base}/api/v1/counter/cases", json=body, headers=headers) as resp:
                answer = await resp.json()
                if resp.status == 201:
                    break
                assert resp.status == 409, answer
            assert time.monotonic() < deadline
            await asyncio.sleep(1)
        await window.until_step(answer["case_no"], "work_permit", "ACCEPTED")
    await one_each(stack, passport)
    assert accommodation_count(stack, passport) == 1


async def test_a_department_killed_while_a_step_waits_for_it(stack: Stack) -> None:
    passport = "K1LL00003"
    await register_employer(stack)
    stack.kill("permits")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        window = Window(stack, http)
        case = await window.open(passport, key="permits-down")
        steps = {s["key"]: s["state"] for s in case["steps"]}
        assert steps["work_permit"] == "PENDING"  # retried with backoff, not refused
        assert steps["accommodation"] == "DONE"
        stack.start("permits")
        await window.until_step(case["case_no"], "work_permit", "ACCEPTED")
    await one_each(stack, passport)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs GOVHUB_TEST_POSTGRES_URL")
async def test_two_gateways_on_one_postgres_one_killed_mid_flow(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import asyncpg

    name = f"govhub_gw_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    stack = Stack(tmp_path_factory.mktemp("two"), today=TODAY.isoformat(), GOVHUB_GATEWAY_DATABASE_URL=url)
    try:
        stack.seed(10)
        stack.start_all()
        other_port = free_port()
        stack.start_gateway(port=other_port)
        await register_employer(stack)
        passports = [f"TW0GW{n:04d}" for n in range(4)]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            window = Window(stack, http)
            cases = [await window.open(p, key=f"two-{p}") for p in passports]
            for passport in passports:
                wp, _ = await one_each(stack, passport)
                await permits_call(
                    stack,
                    "ApproveWorkPermitApplication",
                    ppb.ApproveWorkPermitApplicationRequest(request_id=rid(), id=wp.id),
                )
            stack.kill_gateway()  # the first gateway dies mid-flow; the second carries on alone
            window.base = f"http://127.0.0.1:{other_port}"
            for passport in passports:
                rp = await wait_for_residence_permit(stack, passport)
                await permits_call(
                    stack,
                    "IssueWorkPermit",
                    ppb.IssueWorkPermitRequest(request_id=rid(), id=(await one_each(stack, passport))[0].id),
                )
                await permits_call(
                    stack,
                    "ApproveResidencePermitApplication",
                    ppb.ApproveResidencePermitApplicationRequest(request_id=rid(), id=rp.id),
                )
                await permits_call(
                    stack, "IssueResidencePermit", ppb.IssueResidencePermitRequest(request_id=rid(), id=rp.id)
                )
            for case in cases:
                await window.until(case["case_no"], "READY_FOR_PICKUP", timeout=90)
                assert (await window.pickup(case["case_no"]))["state"] == "COMPLETED"
        for passport in passports:
            await one_each(stack, passport)
            assert accommodation_count(stack, passport) == 1
    finally:
        stack.stop()
        admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
