"""A permits clerk approves a foreign employee's work permit and then issues it from the back office
over HTTP: the issue decision opens only once the permit is approved."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.fakes import accepting_permits, accepting_residence
from tests.service.gateway_fakes import deciding_permits
from tests.service.gateway_support import department
from tests.service.test_gateway_foreigner import APPLICANT, DATA, client, event, upload_all, view

__all__ = ["client"]  # the foreigner tests' gateway, on a day the matter can be applied for
PERMITS = department("permits", "officer-3")


@pytest.fixture
def permits(departments: Any) -> Any:
    accepting_residence(departments["residence"])
    return deciding_permits(accepting_permits(departments["permits"]))


async def decisions(client: TestClient, state: str) -> dict[str, list[str]]:
    body = await (await client.get(f"/api/v1/backoffice/steps?state={state}", headers=PERMITS)).json()
    return {s["step"]: s["decisions"] for s in body["steps"]}


async def test_a_work_permit_is_approved_then_issued_in_the_back_office(
    client: TestClient, permits: Any
) -> None:
    shas = await upload_all(client)
    resp = await client.post(
        "/api/v1/cases",
        json={"matter": "foreigner-employment", "data": DATA, "materials": shas},
        headers=APPLICANT,
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    case_no = body["case_no"]
    url = f"/api/v1/backoffice/cases/{case_no}/steps/work_permit"
    assert (await decisions(client, "ACCEPTED"))["work_permit"] == ["approve", "reject"]
    assert (await client.post(f"{url}/issue", headers=PERMITS)).status == 409  # not yet approved
    assert permits.calls_to("IssueWorkPermit") == []

    assert (await client.post(f"{url}/approve", headers=PERMITS)).status == 202
    [(approved, _)] = permits.calls_to("ApproveWorkPermitApplication")
    await event(client, "permits", "WorkPermitApproved", approved.id)
    assert (await decisions(client, "APPROVED"))["work_permit"] == ["issue"]
    # a card's decisions are not a permit's
    assert (await client.post(f"{url}/produced", headers=PERMITS)).status == 409

    resp = await client.post(f"{url}/issue", headers=PERMITS)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["department_state"] == "ISSUED"
    [(issued, ctx)] = permits.calls_to("IssueWorkPermit")
    assert issued.id == approved.id and ctx.case_no == case_no
    await event(client, "permits", "WorkPermitIssued", issued.id)
    steps = {s["key"]: s["state"] for s in (await view(client, body))["steps"]}
    assert steps["work_permit"] == "READY"
