"""The one clock. `GOVHUB_TODAY` (an ISO date) pins "today" in every process so that the 2016
roll-out can be replayed; otherwise the clock is the system's, in China Standard Time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CST = dt.timezone(dt.timedelta(hours=8), "CST")


@dataclass(frozen=True, slots=True)
class Clock:
    fixed_today: dt.date | None = None

    def now(self) -> dt.datetime:
        """Current instant (UTC-aware). With a fixed day, the wall-clock time of day is kept."""
        real = dt.datetime.now(dt.UTC)
        if self.fixed_today is None:
            return real
        local = real.astimezone(CST)
        return dt.datetime.combine(self.fixed_today, local.timetz()).astimezone(dt.UTC)

    def today(self) -> dt.date:
        """Today's date in China Standard Time (the date the rules of DOMAIN.md are written in)."""
        if self.fixed_today is not None:
            return self.fixed_today
        return dt.datetime.now(CST).date()
