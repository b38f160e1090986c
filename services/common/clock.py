"""The one clock. `GOVHUB_TODAY` (an ISO date) pins "today" in every process so that the 2016
roll-out can be replayed; otherwise the clock is the system's, in China Standard Time."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

CST = dt.timezone(dt.timedelta(hours=8), "CST")
# Where a pinned day starts: the service halls open at 09:00. Time then runs on from there, so leases,
# retries and deadlines behave, whatever the real time of day (it never wraps back at midnight).
PINNED_START = dt.time(9, 0, tzinfo=CST)


@dataclass(frozen=True, slots=True)
class Clock:
    fixed_today: dt.date | None = None
    _origin: float = field(default_factory=time.monotonic, compare=False, repr=False)

    def now(self) -> dt.datetime:
        """Current instant (UTC-aware). With a pinned day: 09:00 CST that day plus the time elapsed
        since this clock was made."""
        if self.fixed_today is None:
            return dt.datetime.now(dt.UTC)
        start = dt.datetime.combine(self.fixed_today, PINNED_START)
        return (start + dt.timedelta(seconds=time.monotonic() - self._origin)).astimezone(dt.UTC)

    def today(self) -> dt.date:
        """Today's date in China Standard Time (the date the rules of docs/domain.md are written in)."""
        if self.fixed_today is not None:
            return self.fixed_today
        return dt.datetime.now(CST).date()
