"""What ``make bench`` leaves behind: ``report.json`` (every phase's figures, the ratios, the half-load
p99s, memory) and ``latency.png`` (for each group of phases, p50 and p99 latency against throughput, the
gateway beside its bare baseline, at saturation and at half of it)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.perf.load import Result


@dataclass(frozen=True)
class Phase:
    """One measured phase: `group` (submission, progress, residence, ...), `side` (gateway, bare,
    department) and `load` (saturation: closed loop; half: open loop at half of the saturation rate)."""

    group: str
    side: str
    load: str
    result: Result

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "side": self.side, "load": self.load, **self.result.to_json()}


def build_report(meta: dict[str, Any], phases: Iterable[Phase], **sections: Any) -> dict[str, Any]:
    return {"meta": meta, "phases": [p.to_json() for p in phases], **sections}


def write_report(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write report.json and latency.png into `directory`; answers their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, png_path = directory / "report.json", directory / "latency.png"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    plot(report, png_path)
    return json_path, png_path


_STYLES = {"gateway": "tab:blue", "bare": "tab:gray", "department": "tab:green"}


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per group: for each side, p50 (solid, circles) and p99 (dashed, triangles) latency
    against throughput, from the half-load point to the saturation point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [p for p in report["phases"] if p["throughput"] > 0 and p["p50_ms"] is not None]
    groups = list(dict.fromkeys(p["group"] for p in phases))
    if not groups:
        raise ValueError("no phase with a successful request to draw")
    columns = min(3, len(groups))
    rows = math.ceil(len(groups) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    for ax, group in zip(axes.flat, groups, strict=False):
        mine = [p for p in phases if p["group"] == group]
        for side in dict.fromkeys(p["side"] for p in mine):
            points = sorted((p for p in mine if p["side"] == side), key=lambda p: p["throughput"])
            xs = [p["throughput"] for p in points]
            color = _STYLES.get(side, "tab:orange")
            ax.plot(xs, [p["p50_ms"] for p in points], "o-", color=color, label=f"{side} p50")
            ax.plot(xs, [p["p99_ms"] for p in points], "^--", color=color, label=f"{side} p99")
            for p in points:
                ax.annotate(p["load"], (p["throughput"], p["p99_ms"]), fontsize=7, alpha=0.7)
        ax.set_title(group)
        ax.set_xlabel("throughput (req/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    meta = report.get("meta", {})
    fig.suptitle(
        f"govhub bench — {meta.get('database', '?')}, {meta.get('people', '?')} people, "
        f"{meta.get('seconds', '?')} s a phase",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
