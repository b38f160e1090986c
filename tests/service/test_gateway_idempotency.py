"""An Idempotency-Key whose gateway died before answering is not stuck: the request that opened a case
is answered with that case (and a fresh query code, the first never having been delivered); one that
died before opening anything is taken over."""

from __future__ import annotations

import datetime as dt
import hashlib

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from gateway.store import Case, IdempotencyKey
from gateway.typedefs import clock_key, sessions_key
from tests.service.test_gateway_cases import APPLICANT, VALID


def stored_key(key: str) -> str:
    return hashlib.sha256(f"citizen-002X\0{key}".encode()).hexdigest()  # keys are per caller


async def age(client: TestClient, key: str, *, state: str, case_id: str | None) -> None:
    async with client.app[sessions_key]() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == stored_key(key))
            .values(
                state=state, case_id=case_id, created_at=client.app[clock_key].now() - dt.timedelta(minutes=5)
            )
        )
        await session.commit()


async def test_a_request_whose_gateway_died_after_opening_the_case_gets_that_case(client: TestClient) -> None:
    headers = {"Idempotency-Key": "died-after-opening", **APPLICANT}
    first = await (await client.post("/api/v1/cases", json=VALID, headers=headers)).json()
    async with client.app[sessions_key]() as session:
        row = await session.get_one(IdempotencyKey, stored_key("died-after-opening"))
        assert row.case_id is not None  # bound in the case's own transaction
        case_id = row.case_id
    await age(client, "died-after-opening", state="RUNNING", case_id=case_id)  # as if it never answered
    again = await client.post("/api/v1/cases", json=VALID, headers=headers)
    assert again.status == 201
    body = await again.json()
    assert body["case_no"] == first["case_no"]
    assert body["query_code"]
    view = await client.get(f"/api/v1/progress/{body['case_no']}", params={"code": body["query_code"]})
    assert view.status == 200
    async with client.app[sessions_key]() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 1


async def test_a_request_whose_gateway_died_before_opening_is_taken_over(client: TestClient) -> None:
    headers = {"Idempotency-Key": "died-before-opening", **APPLICANT}
    await client.post("/api/v1/cases", json=VALID, headers=headers)
    async with client.app[sessions_key]() as session:
        await session.execute(update(Case).values(applicant_key="someone-else"))  # not this request's
        await session.commit()
    await age(client, "died-before-opening", state="RUNNING", case_id=None)
    again = await client.post("/api/v1/cases", json=VALID, headers=headers)
    assert again.status == 201
    async with client.app[sessions_key]() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 2


async def test_a_recent_running_key_is_still_a_conflict(client: TestClient) -> None:
    headers = {"Idempotency-Key": "still-running", **APPLICANT}
    await client.post("/api/v1/cases", json=VALID, headers=headers)
    async with client.app[sessions_key]() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == stored_key("still-running"))
            .values(state="RUNNING")
        )
        await session.commit()
    resp = await client.post("/api/v1/cases", json=VALID, headers=headers)
    assert resp.status == 409
    assert resp.headers["Retry-After"] == "1"
