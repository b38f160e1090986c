"""``make bench``: the gateway under load beside a bare baseline, measured in the same run.

Starts the whole hub as ``make run`` does (``python -m deploy.launcher``) on SQLite in a temporary var
dir, with the seeded population and GOVHUB_TODAY=2016-12-30 (every province accepted), then for a fixed
time at a fixed concurrency drives, over loopback only:

(a) submissions of ``id-card-renewal-cross-province`` (each by a different seeded non-Shanghai resident,
    with their own citizen token), and beside them a bare aiohttp handler doing the same one gRPC call to
    the same identity service and the same three write transactions (tests/perf/baseline.py);
(b) public progress lookups of the cases just opened, and beside them a bare aiohttp JSON handler.

Prints throughput, p50, p99 and errors of each, and the two ratios gateway / bare.
``python -m tests.perf.bench [--seconds 8] [--concurrency 8] [--lookup-concurrency 16]``"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.auth import mint

ROOT = Path(__file__).resolve().parents[2]
TODAY = "2016-12-30"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<34} {self.count:>8} {self.throughput:>10.1f} {self.percentile(0.5):>9.1f} "
            f"{self.percentile(0.99):>9.1f} {self.errors:>7}"
        )


async def drive(
    name: str,
    call: Callable[[aiohttp.ClientSession, int], Awaitable[int]],
    *,
    concurrency: int,
    seconds: float,
    limit: int,
    ok: frozenset[int],
) -> Result:
    """`concurrency` workers call `call(session, i)` with i = 0, 1, ... until `seconds` pass or `limit`
    calls have started."""
    result = Result(name)
    counter = iter(range(limit))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    status = await call(session, i)
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status in ok:
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - started
    return result


def seeded_people(residence_db: Path, count: int) -> list[tuple[str, str]]:
    """Registered adult Han residents whose hukou is outside Shanghai (id_number, name)."""
    with contextlib.closing(sqlite3.connect(residence_db)) as db:
        rows = db.execute(
            "SELECT p.id_number, p.name FROM people p JOIN households h ON h.id = p.household_id "
            "WHERE p.status = 'REGISTERED' AND h.region_code NOT LIKE '31%' AND p.ethnicity = '汉' "
            "AND p.birth_date < '1995-01-01' ORDER BY p.id_number LIMIT ?",
            (count,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


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


def start(
    command: list[str], env: dict[str, str], log: Path, ready_line: str | None
) -> subprocess.Popen[str]:
    out = log.open("w")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if ready_line else out,
        stderr=out,
        text=True,
        start_new_session=True,
    )
    if ready_line:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            out.write(line)
            out.flush()
            if line.startswith(ready_line):
                return process
        stop(process)
        raise SystemExit(f"bench: the hub did not start; see {log}")
    return process


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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


async def measure(args: argparse.Namespace, var: Path, gateway: str, bare: str) -> list[Result]:
    people = seeded_people(var / "residence.db", 2 * args.max_submissions)
    if len(people) < 2 * args.concurrency:
        raise SystemExit(f"bench: only {len(people)} eligible seeded people; raise --households")
    mine, theirs = people[0::2], people[1::2]
    secret = (var / "dev-jwt-secret").read_bytes().strip()
    headers = [
        {"Authorization": f"Bearer {mint(secret, role='citizen', sub=f'bench-{i}', person=p[0])}"}
        for i, p in enumerate(mine)
    ]
    created: list[tuple[str, str]] = []

    async def submit(session: aiohttp.ClientSession, i: int) -> int:
        async with session.post(
            f"{gateway}/api/v1/cases", json=application(mine[i]), headers=headers[i]
        ) as resp:
            body = await resp.json()
            if resp.status == 201:
                created.append((body["case_no"], body["query_code"]))
            return resp.status

    async def bare_submit(session: aiohttp.ClientSession, i: int) -> int:
        person = theirs[i]
        async with session.post(f"{bare}/submit", json={"id_number": person[0], "name": person[1]}) as resp:
            await resp.read()
            return resp.status

    async def lookup(session: aiohttp.ClientSession, i: int) -> int:
        case_no, code = created[i % len(created)]
        async with session.get(f"{gateway}/api/v1/progress/{case_no}", params={"code": code}) as resp:
            await resp.read()
            return resp.status

    async def bare_json(session: aiohttp.ClientSession, i: int) -> int:
        async with session.get(f"{bare}/json") as resp:
            await resp.read()
            return resp.status

    created_ok = frozenset({201})
    results = [
        await drive(
            "submission   gateway",
            submit,
            concurrency=args.concurrency,
            seconds=args.seconds,
            limit=len(mine),
            ok=created_ok,
        ),
        await drive(
            "submission   bare (1 gRPC + 3 writes)",
            bare_submit,
            concurrency=args.concurrency,
            seconds=args.seconds,
            limit=len(theirs),
            ok=created_ok,
        ),
    ]
    if not created:
        raise SystemExit(f"bench: no submission succeeded: {results[0].statuses}")
    results += [
        await drive(
            "progress     gateway",
            lookup,
            concurrency=args.lookup_concurrency,
            seconds=args.seconds,
            limit=args.max_lookups,
            ok=frozenset({200}),
        ),
        await drive(
            "progress     bare JSON handler",
            bare_json,
            concurrency=args.lookup_concurrency,
            seconds=args.seconds,
            limit=args.max_lookups,
            ok=frozenset({200}),
        ),
    ]
    return results


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\ngovhub bench — SQLite, loopback, {args.seconds:g} s a phase, concurrency {args.concurrency} "
        f"(submissions) / {args.lookup_concurrency} (lookups), GOVHUB_TODAY={TODAY}\n"
    )
    print(f"{'':<34} {'requests':>8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for r in results:
        print(r.row())
        if r.errors:
            print(f"{'':<34} statuses: {dict(sorted(r.statuses.items()))}")
    sub, bare_sub, prog, bare_json = results
    for label, gateway, bare in (("submission", sub, bare_sub), ("progress", prog, bare_json)):
        ratio = gateway.throughput / bare.throughput if bare.throughput else float("nan")
        p50 = gateway.percentile(0.5) / bare.percentile(0.5) if bare.latencies else float("nan")
        print(f"ratio {label:<11} gateway / bare: throughput {ratio:.2f}, p50 latency {p50:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent submissions")
    parser.add_argument("--lookup-concurrency", type=int, default=16, help="concurrent lookups")
    parser.add_argument("--households", type=int, default=4000, help="seeded households")
    parser.add_argument("--max-submissions", type=int, default=1500, help="bound on submissions a phase")
    parser.add_argument("--max-lookups", type=int, default=50_000, help="bound on lookups a phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govhub-bench-") as tmp:
        var = Path(tmp) / "var"
        var.mkdir()
        ports = {name: free_port() for name in ("identity", "residence", "permits", "gateway", "bare")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
        env.update(
            GOVHUB_VAR_DIR=str(var),
            GOVHUB_TODAY=TODAY,
            GOVHUB_LOG_FORMAT="json",
            GOVHUB_LOG_LEVEL="warning",
            GOVHUB_SEED_HOUSEHOLDS=str(args.households),
            GOVHUB_IDENTITY_LISTEN=f"127.0.0.1:{ports['identity']}",
            GOVHUB_RESIDENCE_LISTEN=f"127.0.0.1:{ports['residence']}",
            GOVHUB_PERMITS_LISTEN=f"127.0.0.1:{ports['permits']}",
            GOVHUB_GATEWAY_LISTEN=f"127.0.0.1:{ports['gateway']}",
            GOVHUB_GATEWAY_PROGRESS_RATE="1000000",
            GOVHUB_GATEWAY_PROGRESS_BURST="1000000",
        )
        print(f"bench: starting the hub in {var} (seeding {args.households} households)...", flush=True)
        hub = start([sys.executable, "-m", "deploy.launcher"], env, Path(tmp) / "hub.log", "READY ")
        bare = start(
            [
                sys.executable,
                "-m",
                "tests.perf.baseline",
                "--port",
                str(ports["bare"]),
                "--identity",
                f"127.0.0.1:{ports['identity']}",
                "--database",
                str(Path(tmp) / "bare.db"),
            ],
            env,
            Path(tmp) / "bare.log",
            None,
        )
        try:
            gateway_url, bare_url = (
                f"http://127.0.0.1:{ports['gateway']}",
                f"http://127.0.0.1:{ports['bare']}",
            )
            asyncio.run(wait_http(f"{bare_url}/json"))
            results = asyncio.run(measure(args, var, gateway_url, bare_url))
        finally:
            stop(bare)
            stop(hub)
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
