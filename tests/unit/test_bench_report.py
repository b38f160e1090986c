"""The bench's report and picture from tiny synthetic phases (no server, no timing)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from tests.perf.load import Result, closed_loop, open_loop
from tests.perf.report import Phase, build_report, write_report


def _result(name: str, latencies_ms: list[float], errors: int = 0, elapsed: float = 1.0) -> Result:
    result = Result(name, latencies=[ms / 1000 for ms in latencies_ms], errors=errors, elapsed=elapsed)
    result.statuses = {200: len(latencies_ms), **({503: errors} if errors else {})}
    return result


def test_percentiles_are_nearest_rank() -> None:
    result = _result("x", [float(i) for i in range(1, 101)])
    assert result.percentile(0.5) == pytest.approx(50.0)
    assert result.percentile(0.99) == pytest.approx(99.0)
    assert math.isnan(_result("none", []).percentile(0.5))


def test_the_report_and_the_picture_are_written(tmp_path: Path) -> None:
    phases = [
        Phase("submission", "gateway", "saturation", _result("sub gw", [200.0, 220.0, 400.0], errors=1)),
        Phase("submission", "gateway", "half", _result("sub gw half", [80.0, 90.0])),
        Phase("submission", "bare", "saturation", _result("sub bare", [100.0, 120.0])),
        Phase("progress", "gateway", "saturation", _result("prog", [5.0, 6.0, 9.0], elapsed=0.01)),
        Phase("progress", "bare", "saturation", _result("no answer", [])),
    ]
    report = build_report(
        {"database": "sqlite", "people": 12_000, "seconds": 1},
        phases,
        half_load_p99_ms={"submission": 90.0, "progress": None},
    )
    json_path, png_path = write_report(report, tmp_path / "bench")
    saved = json.loads(json_path.read_text())
    first = saved["phases"][0]
    assert (first["group"], first["side"], first["load"]) == ("submission", "gateway", "saturation")
    assert (first["requests"], first["errors"], first["statuses"]) == (4, 1, {"200": 3, "503": 1})
    assert first["p99_ms"] == pytest.approx(400.0)
    assert saved["phases"][3]["throughput"] == pytest.approx(300.0)
    assert saved["phases"][4]["p50_ms"] is None  # NaN is not JSON: a phase with no answer has none
    assert saved["half_load_p99_ms"] == {"submission": 90.0, "progress": None}
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_with_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    report = build_report({}, [Phase("progress", "gateway", "saturation", _result("x", []))])
    with pytest.raises(ValueError, match="no phase"):
        write_report(report, tmp_path)


def test_closed_and_open_loop_count_every_request_and_its_status() -> None:
    async def call(i: int) -> int:
        await asyncio.sleep(0)
        return 503 if i % 4 == 3 else 200

    ok = frozenset({200})
    closed = asyncio.run(closed_loop("c", call, concurrency=3, seconds=60, limit=40, ok=ok))
    assert (closed.count, closed.errors, closed.statuses) == (40, 10, {200: 30, 503: 10})
    opened = asyncio.run(open_loop("o", call, rate=2000, seconds=0.01, limit=1000, ok=ok))
    assert (opened.count, opened.statuses) == (20, {200: 15, 503: 5})
    assert opened.mode == "open" and opened.offered_rate == 2000


def test_the_targets_of_a_run_are_checked() -> None:
    from tests.perf.bench import check_targets

    sums = {
        "ratios": {"progress": {"throughput": 0.3}, "submission": {"throughput": 0.5}},
        "half_load_p99_ms": {"progress": 9.0, "submission": None},
    }
    met = {t["target"]: t["met"] for t in check_targets(sums)}
    assert met == {
        "progress throughput / bare JSON": True,
        "progress half-load p99 ms": True,
        "submission throughput / bare chain": False,
        "submission throughput / bare JSON": None,  # no figure in this run
        "submission half-load p99 ms": None,
    }
