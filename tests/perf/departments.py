"""The department calls under bench, straight over gRPC (no gateway): identity's CreateCardApplication
(the bare chain of a submission: it asks residence's VerifyHukou), and residence's VerifyHukou and
GetPerson. Each call answers 0 when the service answered OK, else the gRPC status code's number.

``python -m tests.perf.departments [--profile identity|residence] [--seconds 8]`` starts a hub, drives
each call alone, and with ``--profile`` records the named process with py-spy meanwhile (a flame graph
and a raw collapsed-stack file under var/bench/profile/); what it found is in docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from govhub.identity.v1 import identity_pb2, identity_pb2_grpc
from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from tests.perf.hub import ROOT, Hub, cpu_seconds, seeded_people, thread_cpu
from tests.perf.load import Result, closed_loop

OK = frozenset({0})


def _code(exc: grpc.aio.AioRpcError) -> int:
    return int(exc.code().value[0])


def renewal(person: tuple[str, str]) -> identity_pb2.CreateCardApplicationRequest:
    return identity_pb2.CreateCardApplicationRequest(
        request_id=str(uuid.uuid4()),
        id_number=person[0],
        name=person[1],
        kind=identity_pb2.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=identity_pb2.RENEWAL_REASON_SERIOUS_DAMAGE,
        accepting_region_code="310104",
        residence_permit=identity_pb2.ResidencePermit(
            number="SH3101042016000123", valid_until={"year": 2017, "month": 12, "day": 31}
        ),
    )


def create_card_application(
    channel: grpc.aio.Channel, people: list[tuple[str, str]]
) -> Callable[[int], Awaitable[int]]:
    stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]

    async def call(i: int) -> int:
        try:
            await stub.CreateCardApplication(renewal(people[i]), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return _code(exc)
        return 0

    return call


def verify_hukou(channel: grpc.aio.Channel, people: list[tuple[str, str]]) -> Callable[[int], Awaitable[int]]:
    stub = residence_pb2_grpc.ResidenceServiceStub(channel)  # type: ignore[no-untyped-call]

    async def call(i: int) -> int:
        person = people[i % len(people)]
        try:
            reply = await stub.VerifyHukou(
                residence_pb2.VerifyHukouRequest(id_number=person[0], name=person[1]), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            return _code(exc)
        return 0 if reply.found and reply.name_matches else 5  # NOT_FOUND: the bench's people are known

    return call


def get_person(channel: grpc.aio.Channel, people: list[tuple[str, str]]) -> Callable[[int], Awaitable[int]]:
    stub = residence_pb2_grpc.ResidenceServiceStub(channel)  # type: ignore[no-untyped-call]

    async def call(i: int) -> int:
        person = people[i % len(people)]
        try:
            await stub.GetPerson(residence_pb2.GetPersonRequest(id_number=person[0]), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return _code(exc)
        return 0

    return call


async def residence_reads(
    hub: Hub, people: list[tuple[str, str]], *, seconds: float, concurrency: int, prefix: str = ""
) -> list[Result]:
    """VerifyHukou and GetPerson alone, closed loop."""
    async with grpc.aio.insecure_channel(hub.target("residence")) as channel:
        return [
            await closed_loop(
                f"{prefix}VerifyHukou",
                verify_hukou(channel, people),
                concurrency=concurrency,
                seconds=seconds,
                limit=10**9,
                ok=OK,
            ),
            await closed_loop(
                f"{prefix}GetPerson",
                get_person(channel, people),
                concurrency=concurrency,
                seconds=seconds,
                limit=10**9,
                ok=OK,
            ),
        ]


async def identity_creates(
    hub: Hub, people: list[tuple[str, str]], *, seconds: float, concurrency: int
) -> Result:
    async with grpc.aio.insecure_channel(hub.target("identity")) as channel:
        return await closed_loop(
            "CreateCardApplication",
            create_card_application(channel, people),
            concurrency=concurrency,
            seconds=seconds,
            limit=len(people),
            ok=OK,
        )


def _py_spy(pid: int, seconds: float, out: Path, fmt: str) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"),
            *("--format", fmt, "--output", str(out), "--nonblocking", "--gil"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def profiled(
    hub: Hub, profile: str | None, label: str, seconds: float, work: Awaitable[list[Result]]
) -> list[Result]:
    spies: list[subprocess.Popen[bytes]] = []
    if profile:
        out = ROOT / "var" / "bench" / "profile"
        out.mkdir(parents=True, exist_ok=True)
        pid = hub.pids()[profile]
        spies = [
            _py_spy(pid, seconds, out / f"{profile}-{label}.svg", "flamegraph"),
            _py_spy(pid, seconds, out / f"{profile}-{label}.txt", "raw"),
        ]
    pids = hub.pids()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    threads_before = {name: thread_cpu(pid) for name, pid in pids.items()}
    try:
        results = await work
    finally:
        for spy in spies:
            await asyncio.to_thread(spy.wait)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    done = sum(len(r.latencies) for r in results)
    print(
        f"{label}: CPU ms per request: "
        + ", ".join(f"{name} {1000 * s / max(1, done):.2f}" for name, s in used.items() if s > 0.01),
        flush=True,
    )
    if profile:
        for name, pid in pids.items():
            after = thread_cpu(pid)
            busy = {t: after[t] - threads_before[name].get(t, 0.0) for t in after}
            top = sorted(busy.items(), key=lambda kv: -kv[1])[:6]
            print(f"  {name} threads: " + ", ".join(f"{t} {s:.2f}s" for t, s in top if s > 0.01))
    return results


WARM_UP = 20  # calls of each kind before any phase (and people kept for them), not counted


async def warm_up(hub: Hub, people: list[tuple[str, str]]) -> None:
    """A few calls of each kind first, so that no phase pays for a process's first-call work (lazily
    loaded tables, compiled statements, connections opened)."""
    async with (
        grpc.aio.insecure_channel(hub.target("residence")) as residence,
        grpc.aio.insecure_channel(hub.target("identity")) as identity,
    ):
        calls = (
            verify_hukou(residence, people),
            get_person(residence, people),
            create_card_application(identity, people),
        )
        for call in calls:
            for i in range(len(people)):
                await call(i)


async def run(args: argparse.Namespace, hub: Hub) -> list[Result]:
    people = await seeded_people(hub.database_url("residence"), args.people_sample + WARM_UP)
    who, seconds, concurrency = args.profile, args.seconds, args.concurrency
    results: list[Result] = []
    await warm_up(hub, people[-WARM_UP:])
    people = people[:-WARM_UP]
    async with grpc.aio.insecure_channel(hub.target("residence")) as channel:
        for label, make in (("VerifyHukou", verify_hukou), ("GetPerson", get_person)):
            phase = closed_loop(
                label, make(channel, people), concurrency=concurrency, seconds=seconds, limit=10**9, ok=OK
            )
            results += await profiled(hub, who if who == "residence" else None, label, seconds, _one(phase))
    async with grpc.aio.insecure_channel(hub.target("identity")) as channel:
        phase = closed_loop(
            "CreateCardApplication",
            create_card_application(channel, people),
            concurrency=concurrency,
            seconds=seconds,
            limit=len(people),
            ok=OK,
        )
        results += await profiled(hub, who, "CreateCardApplication", seconds, _one(phase))
    return results


async def _one(phase: Awaitable[Result]) -> list[Result]:
    return [await phase]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.perf.departments", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--households", type=int, default=4000)
    parser.add_argument("--people-sample", type=int, default=3000)
    parser.add_argument("--profile", choices=("identity", "residence"))
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govhub-bench-") as tmp:
        hub = Hub(Path(tmp), args.database, args.households)
        print(f"departments: starting the hub in {hub.var}...", flush=True)
        hub.start()
        try:
            results = asyncio.run(run(args, hub))
        finally:
            hub.stop()
    print(f"\n{'':<34} {'requests':>8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for r in results:
        print(r.row())
        if r.errors:
            print(f"{'':<34} statuses: {dict(sorted(r.statuses.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
