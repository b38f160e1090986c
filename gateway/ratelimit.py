"""The guard of lookups by case number and query code (``CodeGuard``), shared by every gateway replica
through the database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.cache import CaseViews
from gateway.store import CodeFailures, LookupBucket
from gateway.typedefs import page_secret_key
from services.common.clock import Clock

log = structlog.get_logger("govhub.gateway")


def retry_after(wait: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))


# -- the query-code guard, shared by every replica ---------------------------------------------------------

MAX_WRONG_CODES = 5  # wrong query codes for one case number before it is locked
LOCKOUT = dt.timedelta(minutes=15)
_PRUNE_AFTER = dt.timedelta(hours=1)
# A replica takes the tokens of up to LEASE seconds of an address's rate (at most a quarter of its burst)
# from the shared bucket at once and spends them in memory for at most that long (unspent ones are lost):
# one database write per lease instead of one per lookup. Below 2 lookups a second (the default rate is
# 1) a lease is one token, spent at once: exactly the shared bucket. Above it a burst may exceed the
# bucket's by a lease or two (at most half the burst): the next lease is taken while half of the current
# one is left, and replaces it.
LEASE = 1.0
_LEASES_KEPT = 10_000  # addresses with a lease in memory before the expired ones are dropped
_FAILURES = select(CodeFailures.failures, CodeFailures.locked_until).where(
    CodeFailures.case_no == bindparam("case_no")
)


PAGE_CLIENT_HEADER = "X-Govhub-Page-Client"
PAGE_SECRET_HEADER = "X-Govhub-Page-Secret"  # noqa: S105 (a header name, not a secret)


def client_address(request: web.Request) -> str:
    """The address a per-address limit counts: the peer's, or, for the gateway's own pages calling the API
    over the loopback, the browser's address they forward — believed only beside this process's secret."""
    forwarded = request.headers.get(PAGE_CLIENT_HEADER)
    secret = request.headers.get(PAGE_SECRET_HEADER, "")
    if forwarded and secret and hmac.compare_digest(secret.encode(), request.app[page_secret_key].encode()):
        return forwarded[:64]
    return request.remote or "unknown"


class Locked(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__("locked")
        self.wait = wait


class CodeGuard:
    """Guards lookups by case number and query code, in the gateway's database so that every replica
    shares it (PostgreSQL in production; a table rather than Redis: the gateway already has the database,
    every lookup reads the case from it anyway, and one more moving part would be one more thing to run
    and secure):

    * ``admit(address)``: a token bucket per client address (`rate` a second, `burst` saved up), the row
      locked while it is updated; answers 0 or the seconds to wait;
    * ``check(case_no)``: raises ``Locked`` while the number is locked, whatever code is given;
      answers whether wrong codes are on record for it (read from `reads`, the read-only engine);
    * ``failed(case_no)`` / ``succeeded(case_no)``: after MAX_WRONG_CODES wrong codes in a row the
      number is locked for LOCKOUT; a right code clears the count. A wrong code counted here has this
      replica's public case views (`views`) forget the number, so that its next lookup is checked
      against the lock in the database.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        rate: float,
        burst: int,
        reads: AsyncEngine,
        views: CaseViews,
    ) -> None:
        self.sessions = sessions
        self.reads = reads
        self.views = views
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._calls = 0
        # key -> (tokens left, monotonic expiry, tokens taken): this replica's lease of an address's tokens
        self._leases: dict[str, tuple[int, float, int]] = {}
        self._taking: dict[str, asyncio.Lock] = {}
        self._renewing: dict[str, asyncio.Task[None]] = {}

    async def admit(self, address: str) -> float:
        key = f"addr:{address}"[:80]
        if self._spend(key):
            return 0.0
        # one lease taken at a time per address: lookups arriving meanwhile spend it
        async with self._lock(key):
            if self._spend(key):
                return 0.0
            taken, wait = await self._take(key, self._lease_size())
            if taken > 1:
                self._lease(key, taken - 1, taken)
            return wait

    def _lease_size(self) -> int:
        return max(1, min(int(self.rate * LEASE), self.burst // 4))

    def _lease(self, key: str, left: int, taken: int) -> None:
        now = time.monotonic()
        if key not in self._leases and len(self._leases) >= _LEASES_KEPT:
            self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
        self._leases[key] = (left, now + LEASE, taken)

    @contextlib.asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock = self._taking.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked():
                self._taking.pop(key, None)

    def _spend(self, key: str) -> bool:
        """Spend a token of this replica's lease for `key`, if it holds one; past half of the lease (in
        tokens or in time) the next one is taken in the background, so lookups need not wait for it."""
        left, until, taken = self._leases.get(key, (0, 0.0, 0))
        now = time.monotonic()
        if left < 1 or until <= now:
            return False
        self._leases[key] = (left - 1, until, taken)
        if (2 * (left - 1) < taken or 2 * (until - now) < LEASE) and key not in self._renewing:
            task = asyncio.create_task(self._renew(key))
            self._renewing[key] = task
            task.add_done_callback(lambda _task: self._renewing.pop(key, None))
        return True

    async def _renew(self, key: str) -> None:
        """A new lease for `key`; it replaces what is left of the current one (never added to it)."""
        try:
            async with self._lock(key):
                taken, _ = await self._take(key, self._lease_size())
                if taken >= 1:
                    self._lease(key, taken, taken)
        except Exception as exc:  # the database busy: lookups take a lease themselves when this one ends
            log.warning("lookup lease not renewed", error=type(exc).__name__)

    async def _take(self, key: str, lease: int) -> tuple[int, float]:
        """Take up to `lease` tokens (at least one) from the shared bucket: (tokens taken, seconds to
        wait when there was not one)."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                _insert(session)(LookupBucket)
                .values(key=key, tokens=float(self.burst), updated_at=now)
                .on_conflict_do_nothing()
            )
            bucket = await session.scalar(
                select(LookupBucket).where(LookupBucket.key == key).with_for_update()
            )
            assert bucket is not None
            elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
            tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            taken, wait = min(lease, int(tokens)), 0.0
            if taken >= 1:
                tokens -= taken
            else:
                wait = (1 - tokens) / self.rate
            bucket.tokens, bucket.updated_at = tokens, now
            self._calls += 1
            if self._calls % 1000 == 0:
                await session.execute(
                    delete(LookupBucket).where(LookupBucket.updated_at < now - _PRUNE_AFTER)
                )
        return taken, wait

    async def check(self, case_no: str) -> bool:
        """Raises ``Locked`` while `case_no` is locked; answers whether wrong codes are on record."""
        async with self.reads.connect() as conn:
            row = (await conn.execute(_FAILURES, {"case_no": case_no})).first()
        if row is None:
            return False
        locked_until = row[1]
        if locked_until is not None:
            left = (locked_until - self.clock.now()).total_seconds()
            if left > 0:
                raise Locked(left)
        return True

    async def failed(self, case_no: str) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                _insert(session)(CodeFailures)
                .values(case_no=case_no, failures=0, locked_until=None, updated_at=now)
                .on_conflict_do_nothing()
            )
            row = await session.scalar(
                select(CodeFailures).where(CodeFailures.case_no == case_no).with_for_update()
            )
            assert row is not None
            if row.locked_until is not None and row.locked_until <= now:
                row.failures, row.locked_until = 0, None  # the lock has run out: count afresh
            row.failures += 1
            row.updated_at = now
            if row.failures >= MAX_WRONG_CODES:
                row.locked_until = now + LOCKOUT
        self.views.forget_number(case_no)

    async def succeeded(self, case_no: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(CodeFailures).where(CodeFailures.case_no == case_no))


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
