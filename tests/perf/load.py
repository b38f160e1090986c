"""Load generation for ``make bench``: closed loop (a fixed number of workers, each sending its next
request when the last one answered) and open loop (requests sent at a fixed arrival rate, whatever the
answers, so that a slow server shows as latency instead of as fewer requests).

A call is ``async (i) -> status``: the i-th request of the phase, answering its status (an HTTP status,
or 0 for a gRPC call that answered OK); a status in `ok` counts as a success with its latency, any other
as an error (counted by status). Latency is measured from the moment the request was due to be sent, so
in the open loop a request that waited for a free client still pays for that wait."""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Call = Callable[[int], Awaitable[int]]
# What a call that raised counts as: a client-side timeout or a broken connection.
FAILED = -1


@dataclass
class Result:
    name: str
    mode: str = "closed"  # closed | open
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    offered_rate: float = 0.0  # requests/s asked for (open loop)
    concurrency: int = 0  # workers (closed loop) or the bound on requests in flight (open loop)

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """The p-quantile latency in milliseconds (nearest rank); NaN with no successful request."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<34} {self.count:>8} {self.throughput:>10.1f} {self.percentile(0.5):>9.1f} "
            f"{self.percentile(0.99):>9.1f} {self.errors:>7}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "requests": self.count,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(self.elapsed, 3),
            "throughput": round(self.throughput, 2),
            "offered_rate": round(self.offered_rate, 2),
            "concurrency": self.concurrency,
            "p50_ms": _rounded(self.percentile(0.5)),
            "p90_ms": _rounded(self.percentile(0.9)),
            "p99_ms": _rounded(self.percentile(0.99)),
            "max_ms": _rounded(max(self.latencies) * 1000 if self.latencies else math.nan),
        }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _record(result: Result, status: int, latency: float, ok: frozenset[int]) -> None:
    result.statuses[status] = result.statuses.get(status, 0) + 1
    if status in ok:
        result.latencies.append(latency)
    else:
        result.errors += 1


def _settle() -> None:
    """The generator's own garbage collector out of the phase: what was made before it (the client
    libraries, the hub's people and cases, earlier phases' results) is frozen, so that a full collection
    during the phase walks only what the phase made. Unfrozen, a full collection of this process took
    30-65 ms in the middle of an open-loop phase, every request due meanwhile went out late, and that
    showed as the server's latency."""
    gc.collect()
    gc.freeze()


async def _status(call: Call, i: int) -> int:
    try:
        return await call(i)
    except (TimeoutError, OSError, ConnectionError):
        return FAILED
    except Exception as exc:  # a client library's own error types (aiohttp, grpc)
        if type(exc).__module__.split(".")[0] in ("aiohttp", "grpc"):
            return FAILED
        raise


async def closed_loop(
    name: str, call: Call, *, concurrency: int, seconds: float, limit: int, ok: frozenset[int]
) -> Result:
    """`concurrency` workers call `call(i)` with i = 0, 1, ... until `seconds` pass or `limit` calls have
    started."""
    result = Result(name, "closed", concurrency=concurrency)
    _settle()
    counter = iter(range(limit))
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            status = await _status(call, i)
            _record(result, status, time.perf_counter() - t0, ok)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


async def open_loop(
    name: str,
    call: Call,
    *,
    rate: float,
    seconds: float,
    limit: int,
    ok: frozenset[int],
    max_in_flight: int = 64,
) -> Result:
    """Request i is due at `i / rate` seconds (a fixed arrival rate), for `seconds` or `limit` requests.
    `max_in_flight` clients take the requests in order and send each at its due time; a request due
    while every client is still waiting for an answer goes out late, and its latency counts from when
    it was due (what its user would have waited). The phase ends when the last request has answered."""
    result = Result(name, "open", offered_rate=rate, concurrency=max_in_flight)
    total = min(limit, max(1, int(rate * seconds)))
    _settle()
    counter = iter(range(total))
    started = time.perf_counter()

    async def client() -> None:
        for i in counter:
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await _status(call, i)
            _record(result, status, time.perf_counter() - due, ok)

    await asyncio.gather(*(client() for _ in range(max_in_flight)))
    result.elapsed = max(time.perf_counter() - started, total / rate)
    return result
