"""Flat with scale: residence's lookups at a small and at a large register.

``python -m tests.perf.scale [--people 10000,1000000] [--seconds 8] [--database sqlite|postgresql]``
seeds a residence register of each size (``services.residence.seed``: timed; a register that already
holds that many people is reused, so a second run does not seed again), starts the residence service
alone on it, and drives GetPerson and VerifyHukou straight over gRPC: at saturation (closed loop), then
at half of that rate (open loop, the latency a user of a busy hub sees). People are sampled all over the
register, so a large one is read all over, not at its start. It prints the query plan of each lookup
(SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``) and for each call a line

    scale GetPerson 10k p50 X p99 Y / 1M p50 X p99 Y ratio R (p99 ratio R)

of the half-load latencies (ms) and their ratio, largest register against smallest; the target is
R ≤ 1.5. SQLite registers are kept under var/bench/scale/ (``--var``); PostgreSQL ones are databases
``govhub_scale_<people>`` on the server of ``--postgres-url``, kept as well (``--drop`` removes them)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.db import dispose_engine, make_engine
from services.residence.store import HouseholdRow, PersonRow
from tests.perf.departments import OK, get_person, verify_hukou
from tests.perf.hub import DEFAULT_POSTGRES, ROOT, TODAY, _admin, free_port, rss_mb, seeded_people, stop
from tests.perf.load import Result, closed_loop, open_loop

SAMPLE = 3000
CALLS = (("GetPerson", get_person), ("VerifyHukou", verify_hukou))


def _size(people: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if people >= scale and people % (scale // 10) == 0:
            return f"{people / scale:g}{unit}"
    return str(people)


@dataclass
class Register:
    people: int
    url: str
    var: Path
    seeded_seconds: float = 0.0  # wall time of this run's seeding (0: reused)
    seeded_cpu: float = 0.0  # CPU seconds the seed process used


def _env(register: Register, port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    env.update(
        GOVHUB_VAR_DIR=str(register.var),
        GOVHUB_TODAY=TODAY,
        GOVHUB_LOG_FORMAT="json",
        GOVHUB_LOG_LEVEL="warning",
        GOVHUB_RESIDENCE_DATABASE_URL=register.url,
    )
    if port is not None:
        env["GOVHUB_RESIDENCE_LISTEN"] = f"127.0.0.1:{port}"
        env["GOVHUB_RESIDENCE_METRICS_LISTEN"] = "off"  # several at once, beside other hubs
    return env


async def _count(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(PersonRow)) or 0
    except Exception:  # no schema yet
        return 0
    finally:
        await dispose_engine(engine)


def prepare(args: argparse.Namespace, people: int) -> Register:
    """The register of `people`, seeded now unless it already holds them."""
    if args.database == "postgresql":
        name = f"govhub_scale_{people}"
        base = args.postgres_url.rsplit("/", 1)[0]
        if args.drop:
            asyncio.run(_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with contextlib.suppress(DBAPIError):  # kept from an earlier run: reused
            asyncio.run(_admin(args.postgres_url, f'CREATE DATABASE "{name}"'))
        url = f"{base}/{name}"
        var = args.var / f"pg-{people}"
    else:
        var = args.var / str(people)
        if args.drop and var.exists():
            for f in var.glob("residence.db*"):
                f.unlink()
        url = f"sqlite+aiosqlite:///{var / 'residence.db'}"
    var.mkdir(parents=True, exist_ok=True)
    register = Register(people, url, var)
    have = asyncio.run(_count(url))
    if have >= people * 0.95:  # "about" N people: households of three on average
        print(f"scale: {_size(people)} register reused ({have:,} people in {url})", flush=True)
        return register
    print(f"scale: seeding {people:,} people into {url}...", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "services.residence.seed", "--people", str(people)],
        cwd=ROOT,
        env=_env(register),
        check=True,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    register.seeded_seconds = time.monotonic() - started
    register.seeded_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"scale: seeded {people:,} people in {register.seeded_seconds:,.0f} s "
        f"({register.seeded_cpu:,.0f} s of CPU)",
        flush=True,
    )
    return register


def _lookups(number: str, household_id: str) -> dict[str, Any]:
    """The statements behind GetPerson and VerifyHukou, as the residence store issues them."""
    return {
        "VerifyHukou": select(PersonRow.name, PersonRow.status, HouseholdRow.region_code)
        .join_from(PersonRow, HouseholdRow, PersonRow.household_id == HouseholdRow.id)
        .where(PersonRow.id_number == number),
        "GetPerson: the person": select(PersonRow).where(PersonRow.id_number == number),
        "GetPerson: the household": select(HouseholdRow).where(HouseholdRow.id == household_id),
        "GetPerson: the members": select(PersonRow)
        .where(PersonRow.household_id == household_id, PersonRow.member_order.is_not(None))
        .order_by(PersonRow.member_order),
    }


async def explain(url: str, number: str) -> list[str]:
    """The query plan of each lookup; a line naming a full scan would mean the plan does not scale."""
    engine = make_engine(url, pool_size=1)
    lines = []
    try:
        async with engine.connect() as conn:
            household_id = await conn.scalar(
                select(PersonRow.household_id).where(PersonRow.id_number == number)
            )
            sqlite = conn.dialect.name == "sqlite"
            for label, stmt in _lookups(number, household_id or "").items():
                sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
                rows = (await conn.execute(text(prefix + sql))).all()
                plan = [str(r[-1]) for r in rows] if sqlite else [str(r[0]).strip() for r in rows]
                lines.append(f"  {label}: " + " | ".join(plan))
    finally:
        await dispose_engine(engine)
    return lines


def start_residence(register: Register) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    log = (register.var / "residence.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.residence"],
        cwd=ROOT,
        env=_env(register, port),
        stdout=log,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    return process, port


async def wait_ready(
    target: str, person: tuple[str, str], process: subprocess.Popen[str], timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = residence_pb2_grpc.ResidenceServiceStub(channel)  # type: ignore[no-untyped-call]
        while True:
            try:
                await stub.VerifyHukou(
                    residence_pb2.VerifyHukouRequest(id_number=person[0], name=person[1]), timeout=5
                )
                return
            except grpc.aio.AioRpcError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"scale: residence did not answer on {target}; see its log") from None
                await asyncio.sleep(0.5)


def _merge(name: str, parts: list[Result]) -> Result:
    merged = Result(name, parts[0].mode, offered_rate=parts[0].offered_rate)
    for part in parts:
        merged.latencies += part.latencies
        merged.errors += part.errors
        merged.elapsed += part.elapsed
        for status, count in part.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + count
    return merged


async def measure(
    targets: dict[int, str], samples: dict[int, list[tuple[str, str]]], args: argparse.Namespace
) -> dict[str, dict[int, tuple[Result, Result]]]:
    """Each call on every register: at saturation, then at half of the lowest saturation rate (the same
    offered load on each). The registers take turns in `args.rounds` short slices of each phase, so that
    a machine whose load drifts (this one is shared) weighs on every size alike."""
    out: dict[str, dict[int, tuple[Result, Result]]] = {}
    channels = {n: grpc.aio.insecure_channel(t) for n, t in targets.items()}
    slice_ = args.seconds / args.rounds
    try:
        for name, make in CALLS:
            calls = {n: make(channels[n], samples[n]) for n in targets}
            for call in calls.values():
                for i in range(50):  # warm: connections opened, statements compiled, pages cached
                    await call(i)
            full: dict[int, list[Result]] = {n: [] for n in targets}
            half: dict[int, list[Result]] = {n: [] for n in targets}
            for _ in range(args.rounds):
                for n, call in calls.items():
                    full[n].append(
                        await closed_loop(
                            name, call, concurrency=args.concurrency, seconds=slice_, limit=10**9, ok=OK
                        )
                    )
            saturated = {n: _merge(f"{name} {_size(n)}", parts) for n, parts in full.items()}
            rate = max(1.0, min(r.throughput for r in saturated.values()) / 2)
            for _ in range(args.rounds):
                for n, call in calls.items():
                    half[n].append(await open_loop(name, call, rate=rate, seconds=slice_, limit=10**9, ok=OK))
            out[name] = {n: (saturated[n], _merge(f"{name} {_size(n)} half load", half[n])) for n in targets}
    finally:
        for channel in channels.values():
            await channel.close(None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--people", default="10000,1000000", help="register sizes, smallest first")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase on each register")
    parser.add_argument(
        "--rounds", type=int, default=4, help="slices a phase is cut in, registers alternating"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GOVHUB_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--var", type=Path, default=ROOT / "var" / "bench" / "scale")
    parser.add_argument("--drop", action="store_true", help="seed every register afresh")
    args = parser.parse_args(argv)
    sizes = sorted(int(n.replace("_", "")) for n in args.people.split(","))
    if args.database == "postgresql":
        make_url(args.postgres_url)  # fail early on a malformed URL
    registers = {n: prepare(args, n) for n in sizes}
    samples = {n: asyncio.run(seeded_people(r.url, SAMPLE)) for n, r in registers.items()}
    for n, register in registers.items():
        if len(samples[n]) < 100:
            raise SystemExit(f"scale: only {len(samples[n])} people to sample in the {n:,} register")
        print(f"query plans, {_size(n)} register ({args.database}):")
        for line in asyncio.run(explain(register.url, samples[n][len(samples[n]) // 2][0])):
            print(line)
    processes = {}
    try:
        targets = {}
        for n, register in registers.items():
            processes[n], port = start_residence(register)
            targets[n] = f"127.0.0.1:{port}"
        for n, target in targets.items():
            asyncio.run(wait_ready(target, samples[n][0], processes[n]))
        idle = {n: rss_mb(p.pid) for n, p in processes.items()}
        runs = asyncio.run(measure(targets, samples, args))
        after = {n: rss_mb(p.pid) for n, p in processes.items()}
    finally:
        for process in processes.values():
            stop(process)
    print(f"\n{'':<34} {'requests':>8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for by_size in runs.values():
        for full, half_load in by_size.values():
            print(full.row())
            print(half_load.row())
    print(
        "residence RSS (MB) idle → after: "
        + ", ".join(f"{_size(n)} {idle[n]:.0f} → {after[n]:.0f}" for n in sizes)
    )
    small, large = sizes[0], sizes[-1]
    print()
    for name, by_size in runs.items():
        a, b = by_size[small][1], by_size[large][1]
        p50a, p99a, p50b, p99b = a.percentile(0.5), a.percentile(0.99), b.percentile(0.5), b.percentile(0.99)
        print(
            f"scale {name} {_size(small)} p50 {p50a:.1f} p99 {p99a:.1f} / {_size(large)} p50 {p50b:.1f} "
            f"p99 {p99b:.1f} ratio {p50b / p50a:.2f} (p99 ratio {p99b / p99a:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
