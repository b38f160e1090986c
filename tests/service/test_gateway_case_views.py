"""Public progress answers kept in memory (gateway/cache.py): forgotten on this replica's own writes of
the case, whichever way they are made; another replica's change seen once the view is a second old;
a wrong query code never answered from memory."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from gateway.app import create_app
from gateway.cache import reads_key, views_key
from gateway.ratelimit import MAX_WRONG_CODES
from gateway.store import Case, CaseStep, LookupBucket
from gateway.typedefs import notifier_key, progress_limiter_key, sessions_key
from services.common.clock import Clock
from tests.fakes import FakeDepartment, accepting_identity
from tests.service.gateway_support import TODAY, settings
from tests.service.test_gateway_cases import APPLICANT, VALID

Client = TestClient[web.Request, web.Application]


async def opened(client: Client) -> tuple[str, dict[str, str]]:
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return f"/api/v1/progress/{body['case_no']}", {"code": body["query_code"]}


async def progress(client: Client, url: str, code: dict[str, str]) -> dict[str, Any]:
    resp = await client.get(url, params=code)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_new_cases_answer_is_kept_from_its_submission(client: Client) -> None:
    """The submission's own answer is the public one: kept at once (the applicant's first lookups read
    nothing), with the case's versions as the database has them (a check keeps it)."""
    resp = await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)
    submitted = await resp.json()
    views = client.app[views_key]
    assert views.get(submitted["case_no"], TODAY) is not None
    await views.revalidate(client.app[reads_key])
    kept = views.get(submitted["case_no"], TODAY)
    assert kept is not None  # the versions it was kept with are the database's
    looked_up = await progress(
        client, f"/api/v1/progress/{submitted['case_no']}", {"code": submitted["query_code"]}
    )
    assert looked_up == {k: v for k, v in submitted.items() if k != "query_code"}


async def test_telling_the_applicant_forgets_no_view(client: Client) -> None:
    """The notifier's bookkeeping (what the applicant was told) is not part of any public answer: telling
    the applicant of a new case keeps its answer, while a change the answer shows still forgets it."""
    url, code = await opened(client)
    case_no = url.rsplit("/", 1)[1]
    views = client.app[views_key]
    assert views.get(case_no, TODAY) is not None
    assert await client.app[notifier_key].run_once() == 1  # "received" told
    assert views.get(case_no, TODAY) is not None
    async with client.app[sessions_key]() as session:
        await session.execute(update(Case).where(Case.case_no == case_no).values(state="COMPLETED"))
        await session.commit()
    assert (await progress(client, url, code))["state"] == "COMPLETED"


async def test_an_orm_write_of_a_step_is_seen_by_the_next_lookup(client: Client) -> None:
    url, code = await opened(client)
    before = await progress(client, url, code)
    assert len(client.app[views_key]) == 1  # kept
    async with client.app[sessions_key]() as session:
        step = await session.scalar(select(CaseStep).order_by(CaseStep.position).limit(1))
        assert step is not None
        step.department_state = "PHOTO_TAKEN"
        await session.commit()
    after = await progress(client, url, code)
    assert after["steps"][0]["department_state"] == "PHOTO_TAKEN"
    assert after["steps"][0]["department_state"] != before["steps"][0]["department_state"]


async def test_a_bulk_update_of_cases_is_seen_by_the_next_lookup(client: Client) -> None:
    url, code = await opened(client)
    await progress(client, url, code)
    async with client.app[sessions_key]() as session:
        await session.execute(update(Case).values(state="COMPLETED"))
        await session.commit()
    assert (await progress(client, url, code))["state"] == "COMPLETED"


async def test_a_bulk_update_pinned_to_one_step_or_case_forgets_that_case_only(client: Client) -> None:
    """As the saga runner claims a step (by its id): the other
    cases' views stay."""
    first, other = await opened(client), await opened(client)
    for url, code in (first, other):
        await progress(client, url, code)
    assert len(client.app[views_key]) == 2
    async with client.app[sessions_key]() as session:
        step = await session.scalar(
            select(CaseStep).join(Case).where(Case.case_no == first[0].rsplit("/", 1)[1]).limit(1)
        )
        assert step is not None
        await session.execute(
            update(CaseStep)
            .where(CaseStep.id == step.id, CaseStep.version == step.version)
            .values(department_state="PHOTO_TAKEN", version=CaseStep.version + 1)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    assert len(client.app[views_key]) == 1
    assert (await progress(client, *first))["steps"][0]["department_state"] == "PHOTO_TAKEN"
    other_case = await progress(client, *other)
    async with client.app[sessions_key]() as session:
        await session.execute(
            update(Case)
            .where(Case.case_no == other[0].rsplit("/", 1)[1])  # not pinned by id: every view goes
            .values(notify_due=False)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    assert len(client.app[views_key]) == 0
    assert await progress(client, *other) == other_case
    await progress(client, *first)
    async with client.app[sessions_key]() as session:
        case_id = await session.scalar(select(Case.id).where(Case.case_no == other[0].rsplit("/", 1)[1]))
        await session.execute(
            update(Case)
            .where(Case.id == case_id, Case.notify_due.is_(False))
            .values(state="COMPLETED")
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    assert len(client.app[views_key]) == 1  # the first case's view stays
    assert (await progress(client, *other))["state"] == "COMPLETED"


async def test_a_bulk_update_pinned_to_a_list_of_cases_forgets_those_cases_only(client: Client) -> None:
    """As the notifier moves the cases of a pass on (``cases.id IN (...)``): the other cases' views stay,
    and each case named shows its change at the next lookup."""
    cases = [await opened(client) for _ in range(3)]
    for url, code in cases:
        await progress(client, url, code)
    assert len(client.app[views_key]) == 3
    numbers = [url.rsplit("/", 1)[1] for url, _ in cases[:2]]
    async with client.app[sessions_key]() as session:
        ids = list(await session.scalars(select(Case.id).where(Case.case_no.in_(numbers))))
        await session.execute(
            update(Case)
            .where(Case.id.in_(ids), Case.notify_due.is_not(None))
            .values(state="COMPLETED", version=Case.version + 1)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    assert len(client.app[views_key]) == 1  # the third case's view stays
    assert [(await progress(client, *case))["state"] for case in cases[:2]] == ["COMPLETED"] * 2
    assert (await progress(client, *cases[2]))["state"] != "COMPLETED"


async def test_a_write_rolled_back_changes_nothing_kept(client: Client) -> None:
    url, code = await opened(client)
    before = await progress(client, url, code)
    async with client.app[sessions_key]() as session:
        await session.execute(update(Case).values(state="COMPLETED"))
        await session.rollback()
    assert len(client.app[views_key]) == 1
    assert (await progress(client, url, code)) == before


def replica(db_url: str) -> web.Application:
    departments = {
        "identity": accepting_identity(FakeDepartment("identity")),
        "residence": FakeDepartment("residence"),
        "permits": FakeDepartment("permits"),
    }
    return create_app(settings(db_url), departments=departments, clock=Clock(TODAY), background=False)


async def replicas(aiohttp_client: Any, db_url: str, now: list[float]) -> tuple[Client, Client]:
    """Two gateway replicas on one database; the first's views on the clock `now`, checked only when a
    test says so (``revalidate``)."""
    first, second = await aiohttp_client(replica(db_url)), await aiohttp_client(replica(db_url))
    first.app[views_key]._monotonic = lambda: now[0]
    return first, second


async def test_another_replicas_change_is_seen_once_the_view_is_a_second_old(
    aiohttp_client: Any, db_url: str
) -> None:
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    assert (await progress(first, url, code))["state"] != "COMPLETED"
    async with second.app[sessions_key]() as session:  # the other replica's own write
        case = await session.scalar(select(Case))
        assert case is not None
        case.state = "COMPLETED"
        await session.commit()
    assert (await progress(second, url, code))["state"] == "COMPLETED"
    now[0] += 0.5
    assert (await progress(first, url, code))["state"] != "COMPLETED"  # its view is half a second old
    now[0] += 0.5
    assert (await progress(first, url, code))["state"] == "COMPLETED"


async def test_wrong_codes_are_counted_while_the_right_answer_is_kept(client: Client) -> None:
    url, code = await opened(client)
    await progress(client, url, code)
    for _ in range(MAX_WRONG_CODES):
        assert (await client.get(url, params={"code": "WRONG234"})).status == 404
    locked = await client.get(url, params=code)  # kept in memory, but the number is locked
    assert locked.status == 429
    assert (await locked.json())["type"] == "/problems/case-locked"


async def lock(client: Client, url: str, code: dict[str, str]) -> None:
    for _ in range(MAX_WRONG_CODES):
        assert (await client.get(url, params={"code": "WRONG234"})).status == 404
    assert (await client.get(url, params=code)).status == 429


async def test_another_replicas_lock_is_seen_once_the_view_is_a_second_old(
    aiohttp_client: Any, db_url: str
) -> None:
    """The window the lockout allows (docs/security.md): a replica holding a view read before another
    replica locked the number still answers the right code from memory, for at most TTL."""
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    await progress(first, url, code)  # kept by the first
    await lock(second, url, code)
    now[0] += 0.5
    await progress(first, url, code)  # its view is half a second old
    now[0] += 0.5
    locked = await first.get(url, params=code)
    assert locked.status == 429
    assert (await locked.json())["type"] == "/problems/case-locked"


async def test_a_replica_that_meets_the_lock_forgets_its_view_at_once(
    aiohttp_client: Any, db_url: str
) -> None:
    """A wrong code is always decided by the database: the replica that refuses it as locked stops
    answering the right code from memory too (no right/wrong oracle while a lock is not yet seen)."""
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    await progress(first, url, code)
    await lock(second, url, code)
    assert (await first.get(url, params={"code": "WRONG234"})).status == 429
    assert (await first.get(url, params=code)).status == 429  # the same instant: its view is forgotten


async def test_another_replicas_wrong_codes_make_the_right_code_clear_them(
    aiohttp_client: Any, db_url: str
) -> None:
    """Wrong codes counted by another replica are cleared by the next right code read from the database
    (an answer from memory clears nothing: the count only stays higher, for at most TTL)."""
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    await progress(first, url, code)
    for _ in range(MAX_WRONG_CODES - 1):
        assert (await second.get(url, params={"code": "WRONG234"})).status == 404
    now[0] += 1.0
    await progress(first, url, code)  # read again: the count is cleared
    assert (await second.get(url, params={"code": "WRONG234"})).status == 404  # one, not the fifth
    await progress(second, url, code)


async def test_a_view_stays_while_checks_find_its_case_unchanged(aiohttp_client: Any, db_url: str) -> None:
    now = [100.0]
    first, _ = await replicas(aiohttp_client, db_url, now)
    views = first.app[views_key]
    url, code = await opened(first)
    before = await progress(first, url, code)
    for served in (True, True, False, False):  # two seconds, checked every half second
        now[0] += 0.5
        await views.revalidate(first.app[reads_key])
        if served:
            assert await progress(first, url, code) == before
    case_no = url.rsplit("/", 1)[1]
    assert views.get(case_no, TODAY) is not None  # kept, served or not
    now[0] += 1.0  # no check for a second (the database busy): it runs out
    assert views.get(case_no, TODAY) is None
    assert await progress(first, url, code) == before  # read again from the database, and kept
    assert len(views) == 1


async def test_a_check_forgets_a_view_another_replica_changed(aiohttp_client: Any, db_url: str) -> None:
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    assert (await progress(first, url, code))["state"] != "COMPLETED"
    async with second.app[sessions_key]() as session:  # the other replica's own write
        case = await session.scalar(select(Case))
        assert case is not None
        case.state = "COMPLETED"
        await session.commit()
    await first.app[views_key].revalidate(first.app[reads_key])
    assert (await progress(first, url, code))["state"] == "COMPLETED"  # well within the second


async def test_a_check_forgets_a_view_whose_number_another_replica_locked(
    aiohttp_client: Any, db_url: str
) -> None:
    now = [100.0]
    first, second = await replicas(aiohttp_client, db_url, now)
    url, code = await opened(first)
    await progress(first, url, code)
    await lock(second, url, code)
    await first.app[views_key].revalidate(first.app[reads_key])
    assert (await first.get(url, params=code)).status == 429


async def test_leased_lookups_never_exceed_the_shared_bucket(client: Client) -> None:
    """At a rate where a replica leases several tokens at once, what it admits still comes out of the
    one bucket in the database: with the clock standing still (no refill), no more than the burst."""

    class Stopped:
        def now(self) -> dt.datetime:
            return dt.datetime(2016, 9, 15, 9, tzinfo=dt.UTC)

    guard = client.app[progress_limiter_key]
    guard.clock = Stopped()  # type: ignore[assignment]
    guard.rate, guard.burst = 100.0, 40  # a lease of 10 tokens
    admitted = 0
    for _ in range(60):
        admitted += await guard.admit("198.51.100.1") == 0
    await asyncio.gather(*guard._renewing.values())
    assert 10 < admitted <= 40
    assert await guard.admit("198.51.100.1") > 0  # nothing left: wait
    async with client.app[sessions_key]() as session:
        left = await session.scalar(select(LookupBucket.tokens).where(LookupBucket.key.like("%198.51.100.1")))
    assert left is not None and left < 1
