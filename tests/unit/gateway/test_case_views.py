"""CaseViews (gateway/cache.py): what is kept, for how long, and what a change forgets."""

from __future__ import annotations

import asyncio
import datetime as dt

from gateway.cache import ALL, READ_TOGETHER, READERS, CaseViews

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
    reads: list[list[str]] = []
    release = asyncio.Event()

    async def read(numbers: list[str]) -> dict[str, str]:
        reads.append(numbers)
        await release.wait()
        return {n: f"answer {n}" for n in numbers if n != "GH9"}

    together = [asyncio.ensure_future(kept.load("GH1", read)) for _ in range(5)]
    other = asyncio.ensure_future(kept.load("GH2", read))
    missing = asyncio.ensure_future(kept.load("GH9", read))
    await asyncio.sleep(0)
    together[0].cancel()  # a caller gone: the others still get the read
    release.set()
    assert await asyncio.gather(*together[1:], other) == ["answer GH1"] * 4 + ["answer GH2"]
    assert await missing is None  # not found
    assert sorted(n for numbers in reads for n in numbers) == ["GH1", "GH2", "GH9"]  # each read once
    assert await kept.load("GH1", read) == "answer GH1"  # once done, the next miss reads again
    assert reads[-1] == ["GH1"]


async def test_misses_that_wait_for_a_statement_are_read_together_in_the_next() -> None:
    kept = views([0.0])
    reads: list[list[str]] = []
    under_way = 0
    most = 0
    release = asyncio.Event()

    async def read(numbers: list[str]) -> dict[str, str]:
        nonlocal under_way, most
        reads.append(numbers)
        under_way += 1
        most = max(most, under_way)
        await release.wait()
        under_way -= 1
        return {n: n for n in numbers}

    first = []
    for n in range(READERS):  # one at a time: each finds every statement under way busy
        first.append(asyncio.ensure_future(kept.load(f"GH{n}", read)))
        for _ in range(3):
            await asyncio.sleep(0)
    assert reads == [[f"GH{n}"] for n in range(READERS)]  # each statement under way at once
    waiting = [asyncio.ensure_future(kept.load(f"GH{n}", read)) for n in range(READERS, 100)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(reads) == READERS  # no more statements while those are under way
    release.set()
    assert await asyncio.gather(*first, *waiting) == [f"GH{n}" for n in range(100)]
    assert most == READERS
    assert [len(numbers) for numbers in reads[READERS:]] == [
        min(READ_TOGETHER, 100 - READERS - i) for i in range(0, 100 - READERS, READ_TOGETHER)
    ]


async def test_a_shared_read_that_fails_fails_every_lookup_waiting_for_it() -> None:
    kept = views([0.0])

    async def read(numbers: list[str]) -> dict[str, str]:
        await asyncio.sleep(0)
        raise TimeoutError

    waiting = [kept.load(n, read) for n in ("GH1", "GH1", "GH2")]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
