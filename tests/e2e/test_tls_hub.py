"""The hub over mutual TLS with every grant enforced, as ``make certs && GOVHUB_TLS=on make run`` runs it:
a renewal decided through the gateway's back-office route and handed over, a citizen's own card, a name
change — and not one call of the hub's own refused for want of a grant."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as ipb
from govhub.identity.v1 import identity_pb2_grpc
from services.residence.seed import DEMO_HOUSEHOLDS
from tests.e2e.conftest import Hub, start_hub, stop_hub

pytestmark = pytest.mark.e2e

TODAY = "2016-11-15"
JINGAN = next(h for h in DEMO_HOUSEHOLDS if h.region_code == "310106")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = start_hub(tmp_path_factory.mktemp("tls-hub"), today=TODAY, tls=True)
    yield running
    code = stop_hub(running.process)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.log_file.close()
    assert code == 0, running.log()[-4000:]


def bearer(hub: Hub, role: str, sub: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.token(role, sub, **claims)}"}


async def wait_state(
    http: aiohttp.ClientSession,
    hub: Hub,
    case_no: str,
    state: str | None,
    steps: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The case once it is in `state` (any, if None) with its steps in `steps` (those named)."""
    admin = bearer(hub, "admin", "admin-01")
    deadline = time.monotonic() + 30
    while True:
        async with http.get(f"{hub.base_url}/api/v1/cases/{case_no}", headers=admin) as resp:
            view = await resp.json()
            assert resp.status == 200, view
        now = {s["key"]: s["state"] for s in view["steps"]}
        if state in (None, view["state"]) and all(now.get(k) == v for k, v in (steps or {}).items()):
            return view
        assert time.monotonic() < deadline, f"case in {view['state']} {now}, wanted {state} {steps}: {view}"
        await asyncio.sleep(0.2)


async def test_department_ports_demand_a_client_certificate(hub: Hub) -> None:
    async with grpc.aio.insecure_channel(hub.targets["identity"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await identity_pb2_grpc.IdentityServiceStub(channel).GetCurrentCard(
                ipb.GetCurrentCardRequest(id_number=JINGAN.members[0].id_number), timeout=3
            )
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_renewal_card_and_name_change_over_mutual_tls(hub: Hub) -> None:
    person = JINGAN.members[0]
    citizen = hub.citizen(person.id_number)
    identity_office = bearer(hub, "department", "officer-identity", dept="identity")
    async with hub.channel("identity") as channel, aiohttp.ClientSession() as http:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        # A first card, through the department's back office alone.
        created = await identity.CreateCardApplication(
            ipb.CreateCardApplicationRequest(
                request_id=str(uuid.uuid4()),
                id_number=person.id_number,
                name=person.name,
                kind=ipb.CARD_APPLICATION_KIND_FIRST_ISSUE,
                accepting_region_code="310106",
            )
        )
        app_id = created.card_application.id
        for call, request in (
            (identity.ApproveCardApplication, ipb.ApproveCardApplicationRequest),
            (identity.MarkCardProduced, ipb.MarkCardProducedRequest),
            (identity.MarkCardReadyForPickup, ipb.MarkCardReadyForPickupRequest),
        ):
            await call(request(request_id=str(uuid.uuid4()), id=app_id))
        await identity.IssueCard(
            ipb.IssueCardRequest(request_id=str(uuid.uuid4()), id=app_id, old_card_surrendered=True)
        )

        # The citizen's own card, through the gateway (identity GetCurrentCard).
        async with http.get(f"{hub.base_url}/api/v1/me/card", headers=citizen) as resp:
            card = await resp.json()
            assert resp.status == 200, card
        assert card["status"] == "VALID" and card["card_number"]

        # A renewal, decided by the identity office through the gateway's back-office route.
        body = {
            "matter": "id-card-renewal-cross-province",
            "data": {
                "applicant": {"id_number": "360102199205200454", "name": "刘赣平"},
                "renewal_reason": "EXPIRY",
                "accepting_region_code": "310104",
                "residence_permit": {"number": "SH3101042016000999", "valid_until": "2017-12-31"},
            },
        }
        renewer = hub.citizen("360102199205200454")
        async with http.post(f"{hub.base_url}/api/v1/cases", json=body, headers=renewer) as resp:
            case = await resp.json()
            assert resp.status == 201, case
        step = case["steps"][0]["key"]
        approve = f"{hub.base_url}/api/v1/backoffice/cases/{case['case_no']}/steps/{step}/approve"
        async with http.post(approve, headers=identity_office) as resp:
            decided = await resp.json()
            assert resp.status == 202, decided
        assert decided["decision"] == "approved"
        listed = await identity.ListCardApplications(
            ipb.ListCardApplicationsRequest(id_number="360102199205200454")
        )
        renewal = listed.card_applications[0]
        assert renewal.state == ipb.CARD_APPLICATION_STATE_APPROVED
        for call, request in (
            (identity.MarkCardProduced, ipb.MarkCardProducedRequest),
            (identity.MarkCardReadyForPickup, ipb.MarkCardReadyForPickupRequest),
        ):
            await call(request(request_id=str(uuid.uuid4()), id=renewal.id))
        await wait_state(http, hub, case["case_no"], "READY_FOR_PICKUP")
        counter = bearer(hub, "counter", "staff-310104", hall="310104")
        pickup = f"{hub.base_url}/api/v1/counter/cases/{case['case_no']}/pickup"
        async with http.post(pickup, json={"old_card_surrendered": True}, headers=counter) as resp:
            receipt = await resp.json()
            assert resp.status == 200, receipt
        assert receipt["state"] == "COMPLETED"

        # A name change: residence ChangeName, then a card renewal in the new name.
        form = aiohttp.FormData()
        content = b"%PDF-1.4\n% name change " + uuid.uuid4().hex.encode() + b"\n%%EOF\n"
        form.add_field("file", content, filename="reason.pdf", content_type="application/pdf")
        async with http.post(f"{hub.base_url}/api/v1/materials", data=form, headers=counter) as resp:
            assert resp.status == 201, await resp.text()
        digest = hashlib.sha256(content).hexdigest()
        body = {
            "matter": "name-change",
            "data": {
                "applicant": {"id_number": person.id_number, "name": person.name},
                "new_name": "吴新安",
                "station_region_code": "310106",
            },
            "materials": {"name_change_reason": digest},
        }
        async with http.post(f"{hub.base_url}/api/v1/cases", json=body, headers=citizen) as resp:
            case = await resp.json()
            assert resp.status == 201, case
        # the renewal follows the name change; the answer may come while it still runs (and says so)
        wanted = {"name_change": "DONE", "card_renewal": "ACCEPTED"}
        case = await wait_state(http, hub, case["case_no"], None, wanted)
        assert {s["key"]: s["state"] for s in case["steps"]} == wanted
    assert hub.refusals_of_access() == []


async def test_zz_a_call_without_its_grant_is_refused_and_logged(hub: Hub) -> None:
    """Runs last: the gateway's own certificate has no grant for VerifyHukou; the refusal is the one
    that ``refusals_of_access`` finds (so the check above can fail)."""
    from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
    from services.common.settings import TlsFiles
    from tests.e2e.conftest import department_channel

    assert hub.back_office is not None
    certs = hub.back_office.ca.parent
    gateway = TlsFiles(certs / "ca.crt", certs / "clients" / "gateway.crt", certs / "clients" / "gateway.key")
    async with department_channel(hub.targets["residence"], gateway) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await residence_pb2_grpc.ResidenceServiceStub(channel).VerifyHukou(
                residence_pb2.VerifyHukouRequest(id_number=JINGAN.members[0].id_number), timeout=5
            )
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    for _ in range(50):  # the department's log line may reach the file just after the answer
        if hub.refusals_of_access():
            break
        await asyncio.sleep(0.1)
    refused = hub.refusals_of_access()
    assert len(refused) == 1 and "VerifyHukou" in refused[0], refused
