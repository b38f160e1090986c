"""``make bench``: the gateway under load beside a bare baseline, measured in the same run.

Starts the whole hub as ``make run`` does (``python -m deploy.launcher``) in a temporary var dir, on
SQLite (or with ``--database postgresql`` on databases of its own on the local server, created for the
run and dropped after it), with the seeded population and GOVHUB_TODAY=2016-12-30 (every province
accepted), then drives, over loopback only:

(a) submissions of ``id-card-renewal-cross-province`` (each by a different seeded non-Shanghai resident,
    with their own citizen token), and beside them a bare aiohttp handler doing the same one gRPC call to
    the same identity service and the same three write transactions (tests/perf/baseline.py);
(b) public progress lookups of the cases just opened, and beside them a bare aiohttp JSON handler;
(c) residence's VerifyHukou and GetPerson straight over gRPC (the reads a submission and a case need).

Each of (a) and (b) runs first at saturation (closed loop: a fixed number of clients, each sending its
next request when the last one answered), then open loop at half of the throughput just measured (a
fixed arrival rate: what a user sees when the hub is busy but not overrun). Prints throughput, p50, p99
and errors of each, the two ratios gateway / bare, the half-load p99s and the processes' memory, and
writes var/bench/report.json and var/bench/latency.png.

``--people 10000,1000000`` runs the whole bench once per register size (1 M takes minutes to seed:
``make bench-scale``) and compares the lookups of the largest with those of the smallest.
``python -m tests.perf.bench [--seconds 8] [--concurrency 8] [--lookup-concurrency 16]
[--database sqlite|postgresql] [--people N[,N...]]``"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from gateway.auth import mint
from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from tests.perf.departments import OK, get_person, verify_hukou
from tests.perf.hub import (
    DEFAULT_POSTGRES,
    ROOT,
    TODAY,
    Hub,
    free_port,
    rss_mb,
    seeded_people,
    start,
    stop,
)
from tests.perf.load import Call, Result, closed_loop, open_loop
from tests.perf.report import Phase, build_report, write_report

OUT = ROOT / "var" / "bench"
CREATED = frozenset({201})
ANSWERED = frozenset({200})


async def wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer")


def application(person: tuple[str, str]) -> dict[str, Any]:
    return {
        "matter": "id-card-renewal-cross-province",
        "data": {
            "applicant": {"id_number": person[0], "name": person[1]},
            "renewal_reason": "SERIOUS_DAMAGE",
            "accepting_region_code": "310104",
            "residence_permit": {"number": "SH3101042016000123", "valid_until": "2017-12-31"},
        },
    }


def half(saturation: Result) -> float:
    """Half of a measured saturation throughput (at least one request a second)."""
    return max(1.0, saturation.throughput / 2)


async def measure(
    args: argparse.Namespace, hub: Hub, bare: str
) -> tuple[list[Phase], list[tuple[str, str]], list[tuple[str, str]]]:
    """The phases, the cases opened (case number, query code) and the people sampled."""
    # Four disjoint groups of applicants (one open application per person): gateway and bare, each at
    # saturation and at half load.
    people = await seeded_people(hub.database_url("residence"), 4 * args.max_submissions)
    if len(people) < 8 * args.concurrency:
        raise SystemExit(f"bench: only {len(people)} eligible seeded people; raise --people")
    groups = [people[i::4] for i in range(4)]
    secret = (hub.var / "dev-jwt-secret").read_bytes().strip()
    created: list[tuple[str, str]] = []
    connector = aiohttp.TCPConnector(limit=0)
    http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
    gateway = hub.gateway

    def submit(mine: list[tuple[str, str]], tag: str) -> Call:
        headers = [
            {"Authorization": f"Bearer {mint(secret, role='citizen', sub=f'bench-{tag}-{i}', person=p[0])}"}
            for i, p in enumerate(mine)
        ]

        async def call(i: int) -> int:
            async with http.post(
                f"{gateway}/api/v1/cases", json=application(mine[i]), headers=headers[i]
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 201:
                    created.append((body["case_no"], body["query_code"]))
                return resp.status

        return call

    def bare_submit(theirs: list[tuple[str, str]]) -> Call:
        async def call(i: int) -> int:
            person = theirs[i]
            async with http.post(f"{bare}/submit", json={"id_number": person[0], "name": person[1]}) as resp:
                await resp.read()
                return resp.status

        return call

    async def lookup(i: int) -> int:
        case_no, code = created[i % len(created)]
        async with http.get(f"{gateway}/api/v1/progress/{case_no}", params={"code": code}) as resp:
            await resp.read()
            return resp.status

    async def bare_json(i: int) -> int:
        async with http.get(f"{bare}/json") as resp:
            await resp.read()
            return resp.status

    phases: list[Phase] = []
    secs, conc, lconc = args.seconds, args.concurrency, args.lookup_concurrency
    try:
        sub = await closed_loop(
            "submission   gateway", submit(groups[0], "s"), concurrency=conc, seconds=secs,
            limit=len(groups[0]), ok=CREATED,
        )  # fmt: skip
        bare_sub = await closed_loop(
            "submission   bare (1 gRPC + 3 writes)", bare_submit(groups[1]), concurrency=conc,
            seconds=secs, limit=len(groups[1]), ok=CREATED,
        )  # fmt: skip
        phases += [
            Phase("submission", "gateway", "saturation", sub),
            Phase("submission", "bare", "saturation", bare_sub),
        ]
        if not created:
            raise SystemExit(f"bench: no submission succeeded: {sub.statuses}")
        prog = await closed_loop(
            "progress     gateway", lookup, concurrency=lconc, seconds=secs, limit=args.max_lookups,
            ok=ANSWERED,
        )  # fmt: skip
        bare_prog = await closed_loop(
            "progress     bare JSON handler", bare_json, concurrency=lconc, seconds=secs,
            limit=args.max_lookups, ok=ANSWERED,
        )  # fmt: skip
        phases += [
            Phase("progress", "gateway", "saturation", prog),
            Phase("progress", "bare", "saturation", bare_prog),
        ]
        # Half load: open loop at half of each saturation just measured.
        phases += [
            Phase("submission", "gateway", "half", await open_loop(
                "submission   gateway, half load", submit(groups[2], "h"), rate=half(sub), seconds=secs,
                limit=len(groups[2]), ok=CREATED,
            )),
            Phase("submission", "bare", "half", await open_loop(
                "submission   bare, half load", bare_submit(groups[3]), rate=half(bare_sub), seconds=secs,
                limit=len(groups[3]), ok=CREATED,
            )),
            Phase("progress", "gateway", "half", await open_loop(
                "progress     gateway, half load", lookup, rate=half(prog), seconds=secs,
                limit=args.max_lookups, ok=ANSWERED,
            )),
            Phase("progress", "bare", "half", await open_loop(
                "progress     bare JSON, half load", bare_json, rate=half(bare_prog), seconds=secs,
                limit=args.max_lookups, ok=ANSWERED,
            )),
        ]  # fmt: skip
    finally:
        await http.close()
    # The register's reads, straight over gRPC.
    sample = people[: max(1, min(len(people), 3000))]
    async with grpc.aio.insecure_channel(hub.target("residence")) as channel:
        for label, make in (("VerifyHukou", verify_hukou), ("GetPerson", get_person)):
            call = make(channel, sample)
            sat = await closed_loop(
                f"residence    {label}", call, concurrency=conc, seconds=secs / 2, limit=10**9, ok=OK
            )
            phases.append(Phase(f"residence {label}", "department", "saturation", sat))
            phases.append(
                Phase(f"residence {label}", "department", "half", await open_loop(
                    f"residence    {label}, half load", call, rate=half(sat), seconds=secs / 2,
                    limit=10**9, ok=OK,
                ))
            )  # fmt: skip
    return phases, created, sample


async def soak(
    hub: Hub, requests: int, created: list[tuple[str, str]], people: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """`requests` requests in a row, a quarter each: progress lookups, VerifyHukou, GetPerson and
    identity's ListCardApplications; answers the RSS (MB) of every process at each tenth of them."""
    pids = hub.pids()
    samples = [{"requests": 0, **{name: round(rss_mb(pid), 1) for name, pid in pids.items()}}]
    step = max(1, requests // 10)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    async with (
        grpc.aio.insecure_channel(hub.target("residence")) as residence,
        grpc.aio.insecure_channel(hub.target("identity")) as identity,
    ):
        verify, person = verify_hukou(residence, people), get_person(residence, people)
        applications = identity_pb2_grpc.IdentityServiceStub(identity)  # type: ignore[no-untyped-call]

        async def call(i: int) -> int:
            kind = i % 4
            if kind == 0:
                case_no, code = created[i % len(created)]
                async with http.get(
                    f"{hub.gateway}/api/v1/progress/{case_no}", params={"code": code}
                ) as resp:
                    await resp.read()
                    return 0 if resp.status == 200 else resp.status
            if kind == 1:
                return await verify(i)
            if kind == 2:
                return await person(i)
            await applications.ListCardApplications(
                identity_pb2.ListCardApplicationsRequest(id_number=people[i % len(people)][0]), timeout=10
            )
            return 0

        try:
            for done in range(0, requests, step):

                def shifted(i: int, base: int = done) -> Awaitable[int]:
                    return call(base + i)

                await closed_loop("soak", shifted, concurrency=16, seconds=10**9,
                                  limit=min(step, requests - done), ok=OK)  # fmt: skip
                samples.append(
                    {"requests": done + min(step, requests - done),
                     **{name: round(rss_mb(pid), 1) for name, pid in pids.items()}}
                )  # fmt: skip
        finally:
            await http.close()
    return samples


def _find(phases: list[Phase], group: str, side: str, load: str) -> Result:
    return next(p.result for p in phases if (p.group, p.side, p.load) == (group, side, load))


def summary(phases: list[Phase]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for label in ("submission", "progress"):
        gw, bare = _find(phases, label, "gateway", "saturation"), _find(phases, label, "bare", "saturation")
        ratios[label] = {
            "throughput": gw.throughput / bare.throughput if bare.throughput else None,
            "p50": gw.percentile(0.5) / bare.percentile(0.5) if bare.latencies else None,
        }
    gw_sub, bare_json = (
        _find(phases, "submission", "gateway", "saturation"),
        _find(phases, "progress", "bare", "saturation"),
    )
    ratios["submission_to_bare_json"] = (
        gw_sub.throughput / bare_json.throughput if bare_json.throughput else None
    )
    half_p99 = {
        label: _nan_none(_find(phases, label, "gateway", "half").percentile(0.99))
        for label in ("submission", "progress")
    }
    sums = {"ratios": ratios, "half_load_p99_ms": half_p99}
    return {**sums, "targets": check_targets(sums)}


# The targets of issue 14, as (name, the summary's figure, comparison, bound): `make bench` says which of
# them its run met.
TARGETS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("progress throughput / bare JSON", ("ratios", "progress", "throughput"), ">=", 0.25),
    ("progress half-load p99 ms", ("half_load_p99_ms", "progress"), "<", 10.0),
    ("submission throughput / bare chain", ("ratios", "submission", "throughput"), ">=", 0.6),
    ("submission throughput / bare JSON", ("ratios", "submission_to_bare_json"), ">=", 0.006),
    ("submission half-load p99 ms", ("half_load_p99_ms", "submission"), "<", 100.0),
)


def check_targets(sums: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the run's figure and whether it was met (None: no figure)."""
    checked = []
    for name, path, op, bound in TARGETS:
        value: Any = sums
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = None if value is None else (value >= bound if op == ">=" else value < bound)
        checked.append({"target": name, "value": value, "op": op, "bound": bound, "met": met})
    return checked


def _nan_none(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def print_run(args: argparse.Namespace, people: int, phases: list[Phase], sums: dict[str, Any]) -> None:
    print(
        f"\ngovhub bench — {args.database}, {people:,} people, loopback, {args.seconds:g} s a phase, "
        f"concurrency {args.concurrency} (submissions) / {args.lookup_concurrency} (lookups), "
        f"GOVHUB_TODAY={TODAY}\n"
    )
    print(f"{'':<34} {'requests':>8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for phase in phases:
        r = phase.result
        print(r.row())
        if r.errors:
            print(f"{'':<34} statuses: {dict(sorted(r.statuses.items()))}")
    for label in ("submission", "progress"):
        ratio = sums["ratios"][label]
        throughput = ratio["throughput"] if ratio["throughput"] is not None else float("nan")
        p50 = ratio["p50"] if ratio["p50"] is not None else float("nan")
        print(f"ratio {label:<11} gateway / bare: throughput {throughput:.2f}, p50 latency {p50:.2f}x")
    half_p99 = sums["half_load_p99_ms"]
    print(
        f"half-load p99: submission {_ms(half_p99['submission'])} ms, progress {_ms(half_p99['progress'])} ms"
    )
    for t in check_targets(sums):
        verdict = {True: "met", False: "NOT met", None: "no figure"}[t["met"]]
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        print(f"target {t['target']:<36} {value:>8} ({t['op']} {t['bound']:g}): {verdict}")


def run_one(args: argparse.Namespace, people: int) -> dict[str, Any]:
    households = max(1, -(-people // 3))
    with tempfile.TemporaryDirectory(prefix="govhub-bench-") as tmp:
        hub = Hub(Path(tmp), args.database, households, postgres_url=args.postgres_url)
        print(
            f"bench: starting the hub in {hub.var} on {args.database} (seeding about {people:,} people)...",
            flush=True,
        )
        seeding = time.monotonic()
        hub.start()
        seeded_in = time.monotonic() - seeding
        bare_port = free_port()
        bare = start(
            [sys.executable, "-m", "tests.perf.baseline", "--port", str(bare_port),
             "--identity", hub.target("identity"), "--database", hub.urls["bare"]],
            hub.env(), Path(tmp) / "bare.log", None,
        )  # fmt: skip
        try:
            bare_url = f"http://127.0.0.1:{bare_port}"
            asyncio.run(wait_http(f"{bare_url}/json"))
            pids = hub.pids()
            idle = {name: round(rss_mb(pid), 1) for name, pid in pids.items()}
            phases, created, sample = asyncio.run(measure(args, hub, bare_url))
            loaded = {name: round(rss_mb(pid), 1) for name, pid in pids.items()}
            soaked = asyncio.run(soak(hub, args.soak, created, sample)) if args.soak else []
        finally:
            stop(bare)
            hub.stop()
    sums = summary(phases)
    print_run(args, people, phases, sums)
    print(
        "memory (RSS MB) idle → after the run: "
        + ", ".join(f"{name} {idle[name]:.0f} → {loaded.get(name, 0):.0f}" for name in idle)
    )
    if soaked:
        first, last = soaked[0], soaked[-1]
        print(
            f"memory (RSS MB) over {args.soak:,} more requests: "
            + ", ".join(f"{name} {first[name]:.0f} → {last[name]:.0f}" for name in idle)
        )
    return {
        "people": people,
        "households": households,
        "start_seconds": round(seeded_in, 1),
        "phases": [p.to_json() for p in phases],
        "memory_rss_mb": {"idle": idle, "after": loaded, "soak": soaked},
        **sums,
        "_phases": phases,
    }


SCALE_PHASES = (
    ("progress", "gateway"),
    ("residence VerifyHukou", "department"),
    ("residence GetPerson", "department"),
)


def scale_comparison(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Half-load p50/p99 of the lookups at the largest register against the smallest."""
    small, large = runs[0], runs[-1]
    out: dict[str, Any] = {"from_people": small["people"], "to_people": large["people"], "phases": {}}
    for group, side in SCALE_PHASES:
        a = _find(small["_phases"], group, side, "half")
        b = _find(large["_phases"], group, side, "half")
        out["phases"][group] = {
            q: {
                "small_ms": _nan_none(a.percentile(p)),
                "large_ms": _nan_none(b.percentile(p)),
                "ratio": _nan_none(b.percentile(p) / a.percentile(p))
                if a.latencies and b.latencies
                else None,
            }
            for q, p in (("p50", 0.5), ("p99", 0.99))
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent submissions")
    parser.add_argument("--lookup-concurrency", type=int, default=16, help="concurrent lookups")
    parser.add_argument(
        "--people", default="12000", help="seeded people (about 3 a household); a comma list runs each"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("GOVHUB_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a server and a user that may create databases (postgresql+asyncpg://...)",
    )
    parser.add_argument("--max-submissions", type=int, default=1500, help="bound on submissions a phase")
    parser.add_argument("--max-lookups", type=int, default=50_000, help="bound on lookups a phase")
    parser.add_argument(
        "--soak", type=int, default=0, help="after the phases, this many requests more, watching memory"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where report.json and latency.png go")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n.replace("_", "")) for n in args.people.split(",")]
    except ValueError:
        parser.error("--people is a number of people or a comma-separated list of them")
    if any(n < 100 for n in sizes):
        parser.error("--people must be at least 100")
    runs = [run_one(args, people) for people in sizes]
    report_sections: dict[str, Any] = {"runs": [{k: v for k, v in r.items() if k != "_phases"} for r in runs]}
    if len(runs) > 1:
        scale = scale_comparison(runs)
        report_sections["scale"] = scale
        sizes_text = f"{scale['to_people']:,} people / {scale['from_people']:,}"
        print(f"\nflat with scale — half-load latency at {sizes_text}:")
        for group, figures in scale["phases"].items():
            print(
                f"  {group:<24} p50 {_ms(figures['p50']['small_ms'])} → {_ms(figures['p50']['large_ms'])} ms "
                f"({figures['p50']['ratio'] or float('nan'):.2f}x), p99 {_ms(figures['p99']['small_ms'])} → "
                f"{_ms(figures['p99']['large_ms'])} ms ({figures['p99']['ratio'] or float('nan'):.2f}x)"
            )
    meta = {
        "database": args.database,
        "people": ",".join(str(n) for n in sizes),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "lookup_concurrency": args.lookup_concurrency,
        "cpus": os.cpu_count(),
        "today": TODAY,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # The picture shows the last (largest) run; report.json holds every run.
    report = build_report(meta, runs[-1]["_phases"], **report_sections)
    json_path, png_path = write_report(report, args.out)
    print(f"\nreport: {json_path}\npicture: {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
