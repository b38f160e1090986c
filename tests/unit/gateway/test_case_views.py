"""CaseViews (gateway/cache.py): what is kept, for how long, and what a change forgets."""

from __future__ import annotations

import datetime as dt

from gateway.cache import ALL, SPREAD, CaseViews

DAY = dt.date(2016, 12, 30)


def views(now: list[float], size: int = 10, jitter: float = 0.0) -> CaseViews:
    return CaseViews(ttl=1.0, size=size, monotonic=lambda: now[0], jitter=lambda: jitter)


def test_a_view_is_kept_for_its_ttl_only() -> None:
    now = [0.0]
    kept = views(now)
    kept.put(kept.generation, "id-1", "GH1", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY) is not None
    now[0] = 0.99
    assert kept.get("GH1", DAY) is not None
    now[0] = 1.0
    assert kept.get("GH1", DAY) is None


def test_a_views_lifetime_is_shortened_by_at_most_the_spread() -> None:
    now = [0.0]
    kept = views(now, jitter=0.999)
    kept.put(kept.generation, "id-1", "GH1", "hash", b"{}", DAY)
    now[0] = (1 - SPREAD) * 0.999
    assert kept.get("GH1", DAY) is not None
    now[0] = 1 - SPREAD * 0.999
    assert kept.get("GH1", DAY) is None


def test_views_read_together_run_out_at_different_times() -> None:
    """No burst of re-reads: views read in the same instant expire spread over the last SPREAD of TTL."""
    kept = CaseViews(ttl=1.0, size=200, monotonic=lambda: 0.0)
    for n in range(100):
        kept.put(kept.generation, f"id-{n}", f"GH{n}", "hash", b"{}", DAY)
    expiries = [kept._views[f"GH{n}"].expires for n in range(100)]
    assert all(1 - SPREAD <= e <= 1.0 for e in expiries)
    assert len(set(expiries)) == 100
    assert max(expiries) - min(expiries) > SPREAD / 2


def test_forgetting_a_case_number_drops_its_view_and_refuses_reads_begun_before() -> None:
    kept = views([0.0])
    read_at = kept.generation
    kept.put(read_at, "id-1", "GH1", "hash", b"{}", DAY)
    kept.forget_number("GH1")  # a wrong code counted here, or the number read locked
    assert kept.get("GH1", DAY) is None
    kept.put(read_at, "id-1", "GH1", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY) is None


def test_a_view_of_another_day_is_not_served() -> None:
    kept = views([0.0])
    kept.put(kept.generation, "id-1", "GH1", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY + dt.timedelta(days=1)) is None


def test_forgetting_a_case_by_its_id_drops_only_its_view() -> None:
    kept = views([0.0])
    for n in (1, 2):
        kept.put(kept.generation, f"id-{n}", f"GH{n}", "hash", b"{}", DAY)
    kept.forget(["id-1", "id-unknown"])
    assert kept.get("GH1", DAY) is None
    assert kept.get("GH2", DAY) is not None
    kept.forget([ALL])
    assert len(kept) == 0


def test_a_view_read_before_a_change_is_not_kept() -> None:
    kept = views([0.0])
    read_at = kept.generation
    kept.forget(["id-1"])  # committed while the view was being read
    kept.put(read_at, "id-1", "GH1", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY) is None
    kept.put(kept.generation, "id-1", "GH1", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY) is not None


def test_the_least_recently_read_view_goes_first() -> None:
    kept = views([0.0], size=2)
    kept.put(kept.generation, "id-1", "GH1", "hash", b"{}", DAY)
    kept.put(kept.generation, "id-2", "GH2", "hash", b"{}", DAY)
    assert kept.get("GH1", DAY) is not None
    kept.put(kept.generation, "id-3", "GH3", "hash", b"{}", DAY)
    assert [n for n in ("GH1", "GH2", "GH3") if kept.get(n, DAY)] == ["GH1", "GH3"]
    kept.forget(["id-2"])  # no longer kept: nothing to drop
    assert len(kept) == 2
