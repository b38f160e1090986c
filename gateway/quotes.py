"""Fees and statutory time limits as the departments quote them (one source for each rule): a matter
names what it quotes (``[[fees]]`` and ``[[time_limits]]`` with a ``quote``), the window asks the
department that owns the rule (identity ``QuoteCardApplication``, permits ``QuotePermits``) for the day
asked about, and keeps the answer briefly per matter and date. Only the residence register, which quotes
nothing, has its time limits written in the matter file.

The same quote gives the rules a submission is checked against before anything is sent (the days
from entry within which a residence permit is applied for)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.clients import CallContext, Department, DepartmentError, Refused
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2
from services.common.protoconv import date_to_proto

log = structlog.get_logger("gateway.quotes")

CACHE_SECONDS = 300.0  # how long a quote is reused for the same matter and date
QUOTE_TIMEOUT = 5.0  # seconds for one quote call

# What a quote may be read for, by department.
IDENTITY_USES = ("fee_fen", "temporary_card_fee_fen", "statutory_days")
PERMITS_USES = (
    "residence_permit_fee_tiers",
    "work_permit_working_days",
    "work_permit_short_stay_working_days",
    "residence_permit_decision_days",
    "residence_permit_apply_within_days_of_entry",
)
WORKING_DAYS_USES = ("work_permit_working_days", "work_permit_short_stay_working_days")


@dataclass(frozen=True, slots=True)
class QuoteRef:
    """One figure a department quotes: identity's for an application `kind` (and `renewal_reason`), or
    permits' rules; `use` names the figure."""

    department: str
    use: str
    kind: str = ""
    renewal_reason: str = ""

    def problem(self) -> str | None:
        if self.department == "identity":
            if self.use not in IDENTITY_USES:
                return f"identity quotes one of {', '.join(IDENTITY_USES)}"
            if not _enum_or_zero(identity_pb2.CardApplicationKind, f"CARD_APPLICATION_KIND_{self.kind}"):
                return "identity quotes need kind RENEWAL, REPLACEMENT or FIRST_ISSUE"
            if (self.kind == "RENEWAL") != bool(self.renewal_reason) or (
                self.renewal_reason
                and not _enum_or_zero(identity_pb2.RenewalReason, f"RENEWAL_REASON_{self.renewal_reason}")
            ):
                return "a renewal quote needs its renewal_reason (and only a renewal)"
            return None
        if self.department == "permits":
            return None if self.use in PERMITS_USES else f"permits quotes one of {', '.join(PERMITS_USES)}"
        return f"department {self.department!r} quotes nothing"


@dataclass(frozen=True, slots=True)
class FeeSpec:
    item: str
    item_zh: str
    quote: QuoteRef
    only_when: str | None = None  # the bool field that asks for it (a temporary card)


@dataclass(frozen=True, slots=True)
class TimeLimitSpec:
    item: str
    item_zh: str
    quote: QuoteRef | None = None  # asked of the department ...
    days: int | None = None  # ... or, for the residence register (which quotes nothing), written here


@dataclass(frozen=True)
class MatterQuote:
    """What the window shows of a matter's fees and time limits on `on`, as the departments quoted."""

    on: dt.date
    fees: list[dict[str, Any]] = field(default_factory=list)
    time_limits: list[dict[str, Any]] = field(default_factory=list)
    apply_within_days_of_entry: int | None = None

    def public(self) -> dict[str, Any]:
        return {"quoted_on": self.on.isoformat(), "fees": self.fees, "time_limits": self.time_limits}


class QuoteUnavailable(Exception):
    """A department could not quote now; the window says so rather than show a figure of its own."""

    def __init__(self, department: str, message: str) -> None:
        super().__init__(message)
        self.department = department
        self.message = message


def _enum_or_zero(enum: Any, name: str) -> int:
    try:
        return int(enum.Value(name))
    except ValueError:
        return 0


class Quotes:
    """Asks the departments and keeps each matter's quote for CACHE_SECONDS per date."""

    def __init__(
        self,
        departments: Callable[[], Mapping[str, Department]],
        *,
        ttl: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._departments = departments
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[str, dt.date], tuple[float, MatterQuote]] = {}
        self._locks: dict[tuple[str, dt.date], asyncio.Lock] = {}

    async def for_matter(self, matter: Any, on: dt.date, *, needs_entry_rule: bool = False) -> MatterQuote:
        key = (matter.id, on)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > self._monotonic():
                return cached[1]
            quote = await self._ask(matter, on, needs_entry_rule)
            if len(self._cache) > 1000:  # a date per matter per day is all that is ever asked for
                self._cache.clear()
            self._cache[key] = (self._monotonic() + self._ttl, quote)
            self._locks.pop(key, None)
            return quote

    async def _ask(self, matter: Any, on: dt.date, needs_entry_rule: bool) -> MatterQuote:
        refs: list[QuoteRef] = [f.quote for f in matter.fees]
        refs += [t.quote for t in matter.time_limits if t.quote is not None]
        if needs_entry_rule:
            refs.append(QuoteRef("permits", "residence_permit_apply_within_days_of_entry"))
        answers: dict[tuple[str, str, str], Any] = {}
        for ref in refs:
            request_key = (ref.department, ref.kind, ref.renewal_reason)
            if request_key not in answers:
                answers[request_key] = await self._call(ref, on)
        fees: list[dict[str, Any]] = []
        for fee in matter.fees:
            answer = answers[(fee.quote.department, fee.quote.kind, fee.quote.renewal_reason)]
            extra = {"only_when": fee.only_when} if fee.only_when else {}
            if fee.quote.use == "residence_permit_fee_tiers":
                for tier in answer.residence_permit_fee_tiers:
                    fees.append(
                        {
                            "item": f"{fee.item} (valid {tier.min_months} months or more)",
                            "item_zh": f"{fee.item_zh}（有效期{tier.min_months}个月以上）",
                            "amount_fen": int(tier.fee_fen),
                            **extra,
                        }
                    )
            else:
                amount = int(getattr(answer, fee.quote.use))
                fees.append({"item": fee.item, "item_zh": fee.item_zh, "amount_fen": amount, **extra})
        limits: list[dict[str, Any]] = []
        for limit in matter.time_limits:
            provisional = False
            if limit.quote is None:
                days, working = int(limit.days or 0), False
            else:
                answer = answers[(limit.quote.department, limit.quote.kind, limit.quote.renewal_reason)]
                days, working = int(getattr(answer, limit.quote.use)), limit.quote.use in WORKING_DAYS_USES
                # counted on a provisional calendar: the year's holiday notice is not published yet
                provisional = working and bool(getattr(answer, "calendar_provisional", False))
            entry = {"item": limit.item, "item_zh": limit.item_zh, "days": days, "working_days": working}
            limits.append({**entry, "provisional": True} if provisional else entry)
        within = None
        permits_answer = answers.get(("permits", "", ""))
        if permits_answer is not None:
            within = int(permits_answer.residence_permit_apply_within_days_of_entry) or None
        return MatterQuote(on=on, fees=fees, time_limits=limits, apply_within_days_of_entry=within)

    async def _call(self, ref: QuoteRef, on: dt.date) -> Any:
        department = self._departments().get(ref.department)
        if department is None:
            raise QuoteUnavailable(ref.department, f"the {ref.department} department is not configured")
        ctx = CallContext(request_id=str(uuid.uuid4()), case_no="", timeout=QUOTE_TIMEOUT)
        try:
            if ref.department == "identity":
                request = identity_pb2.QuoteCardApplicationRequest(
                    kind=f"CARD_APPLICATION_KIND_{ref.kind}",
                    renewal_reason=(f"RENEWAL_REASON_{ref.renewal_reason}" if ref.renewal_reason else None),
                    on=date_to_proto(on),
                )
                return await department.call("QuoteCardApplication", request, ctx)
            return await department.call(
                "QuotePermits", permits_pb2.QuotePermitsRequest(on=date_to_proto(on)), ctx
            )
        except Refused as exc:
            # e.g. CALENDAR_NOT_COVERED: an operator must extend the calendar; not the citizen's fault
            log.error("quote refused", department=ref.department, reason=exc.reason, error=exc.message)
            raise QuoteUnavailable(ref.department, exc.message) from None
        except DepartmentError as exc:
            log.warning("quote not answered", department=ref.department, error=exc.message)
            raise QuoteUnavailable(
                ref.department, f"the {ref.department} department did not answer"
            ) from None


def parse_quote(raw: Any) -> QuoteRef:
    if not isinstance(raw, dict):
        raise ValueError("quote must be a table: { department = ..., use = ... }")
    unknown = set(raw) - {"department", "use", "kind", "renewal_reason"}
    if unknown:
        raise ValueError(f"quote: unknown keys {', '.join(sorted(unknown))}")
    ref = QuoteRef(
        department=str(raw["department"]),
        use=str(raw["use"]),
        kind=str(raw.get("kind", "")),
        renewal_reason=str(raw.get("renewal_reason", "")),
    )
    problem = ref.problem()
    if problem:
        raise ValueError(f"quote: {problem}")
    return ref


async def public_matter(quotes: Quotes | None, matter: Any, on: dt.date) -> dict[str, Any]:
    """A matter as the public sees it, with its fees and time limits as quoted on `on`; when a department
    cannot quote now, no figures (``fees``/``time_limits`` null, ``quote_unavailable`` naming it)."""
    if quotes is None:
        return dict(matter.public(None))
    try:
        return dict(matter.public(await quotes.for_matter(matter, on)))
    except QuoteUnavailable as exc:
        return {**matter.public(None), "quote_unavailable": exc.department}
