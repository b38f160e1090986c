"""CaseViews (gateway/cache.py): what is kept, for how long, and what a change forgets."""

from __future__ import annotations

import asyncio
import datetime as dt

from gateway.cache import ALL, CaseViews

DAY = dt.date(2016, 12, 30)
V = (0, 1, 0)  # a case's versions as read


def views(now: list[float], size: int = 10) -> CaseViews:
    return CaseViews(ttl=1.0, size=size, monotonic=lambda: now[0])


def keep(kept: CaseViews, n: int) -> None:
    kept.put(kept.reading(), f"id-{n}", f"GH{n}", "hash", V, (f"step-{n}",), b"{}", DAY)


def test_a_view_is_kept_for_its_ttl_only() -> None:
    now = [0.0]
    kept = views(now)
    keep(kept, 1)
    assert kept.get("GH1", DAY) is not None
    now[0] = 0.99
    assert kept.get("GH1", DAY) is not None
    now[0] = 1.0
    assert kept.get("GH1", DAY) is None


def test_the_ttl_counts_from_before_the_read() -> None:
    now = [0.0]
    kept = views(now)
    reading = kept.reading()
    now[0] = 0.6  # the read took this long
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    now[0] = 1.0
    assert kept.get("GH1", DAY) is None


def test_a_view_of_another_day_is_not_served() -> None:
    kept = views([0.0])
    keep(kept, 1)
    assert kept.get("GH1", DAY + dt.timedelta(days=1)) is None


def test_forgetting_a_case_by_its_id_drops_only_its_view() -> None:
    kept = views([0.0])
    for n in (1, 2):
        keep(kept, n)
    kept.forget(["id-1", "id-unknown"])
    assert kept.get("GH1", DAY) is None
    assert kept.get("GH2", DAY) is not None
    kept.forget([ALL])
    assert len(kept) == 0


def test_forgetting_a_step_drops_its_cases_view_only() -> None:
    kept = views([0.0])
    for n in (1, 2):
        keep(kept, n)
    kept.forget([], ["step-1", "step-unknown"])
    assert kept.get("GH1", DAY) is None
    assert kept.get("GH2", DAY) is not None


def test_a_view_read_before_a_change_is_not_kept() -> None:
    kept = views([0.0])
    reading = kept.reading()
    kept.forget(["id-1"])  # committed while the view was being read
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    assert kept.get("GH1", DAY) is None
    keep(kept, 1)
    assert kept.get("GH1", DAY) is not None


def test_a_read_is_kept_whatever_changed_meanwhile_in_other_cases_only() -> None:
    kept = views([0.0])
    reading = kept.reading()
    kept.forget(["id-2"], ["step-2"])  # other cases changed while case 1 was being read
    kept.forget_number("GH2")
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    assert kept.get("GH1", DAY) is not None
    reading = kept.reading()
    kept.forget([], ["step-1"])  # one of its steps (the view of case 1 is dropped with it)
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    assert kept.get("GH1", DAY) is None
    reading = kept.reading()
    kept.forget([ALL])  # any case
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    assert kept.get("GH1", DAY) is None


def test_forgetting_a_case_number_drops_its_view_and_refuses_reads_begun_before() -> None:
    kept = views([0.0])
    reading = kept.reading()
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    kept.forget_number("GH1")  # a wrong code counted here, or read on record for it
    assert kept.get("GH1", DAY) is None
    kept.put(reading, "id-1", "GH1", "hash", V, ("step-1",), b"{}", DAY)
    assert kept.get("GH1", DAY) is None


def test_the_least_recently_read_view_goes_first() -> None:
    kept = views([0.0], size=2)
    keep(kept, 1)
    keep(kept, 2)
    assert kept.get("GH1", DAY) is not None
    keep(kept, 3)
    assert [n for n in ("GH1", "GH2", "GH3") if kept.get(n, DAY)] == ["GH1", "GH3"]
    kept.forget(["id-2"])  # no longer kept: nothing to drop
    assert len(kept) == 2


async def test_lookups_of_one_number_that_miss_together_share_one_read() -> None:
    kept = views([0.0])
    reads: list[str] = []
    release = asyncio.Event()

    async def read() -> str:
        reads.append("GH1")
        await release.wait()
        return "answer"

    together = [asyncio.ensure_future(kept.load("GH1", read)) for _ in range(5)]
    other = asyncio.ensure_future(kept.load("GH2", read))
    await asyncio.sleep(0)
    together[0].cancel()  # a caller gone: the others still get the read
    release.set()
    assert await asyncio.gather(*together[1:], other) == ["answer"] * 5
    assert len(reads) == 2  # one for GH1, one for GH2
    assert await kept.load("GH1", read) == "answer"  # once done, the next miss reads again
    assert len(reads) == 3


async def test_a_shared_read_that_fails_fails_every_lookup_waiting_for_it() -> None:
    kept = views([0.0])

    async def read() -> str:
        await asyncio.sleep(0)
        raise TimeoutError

    waiting = [kept.load("GH1", read) for _ in range(3)]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
