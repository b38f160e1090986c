"""The department's policy as frozen data (built from ``policy.toml`` by ``services.permits.policy``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from services.common.errors import FailedPrecondition, ValidationCollector
from services.permits.domain.materials import MaterialItem, Stage
from services.permits.domain.scoring import CategoryRules, LocalAverageSalary, PointsTable
from services.permits.domain.validity import FeeTier, ValidityLimits
from services.permits.domain.workdays import HolidayCalendar

OTHER_REJECTION = "OTHER"


@dataclass(frozen=True, slots=True)
class Deadlines:
    work_permit_working_days: int  # stay > 90 days
    work_permit_extension_working_days: int
    work_permit_short_stay_working_days: int  # stay ≤ 90 days
    residence_apply_within_days_of_entry: int
    residence_decision_calendar_days: int
    residence_target_working_days: int
    residence_extension_min_days_before_expiry: int


@dataclass(frozen=True, slots=True)
class PermitsPolicy:
    points_tables: tuple[PointsTable, ...]  # sorted by effective_from
    category_rules: CategoryRules
    local_average_salaries: tuple[LocalAverageSalary, ...]
    deadlines: Deadlines
    validity: ValidityLimits
    residence_fee_tiers: tuple[FeeTier, ...]
    materials: Mapping[Stage, tuple[MaterialItem, ...]]
    calendar: HolidayCalendar
    # The rejection reasons the department answers with: machine code -> the words an applicant reads
    # (always holds OTHER, for a reason given only in words).
    rejection_codes: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({OTHER_REJECTION: "其他原因"})
    )

    def points_table_on(self, day: dt.date) -> PointsTable:
        tables = [t for t in self.points_tables if t.effective_from <= day]
        if not tables:
            raise FailedPrecondition("NO_POINTS_TABLE", f"no points table is in force on {day.isoformat()}")
        return max(tables, key=lambda t: t.effective_from)

    def local_average_salary(self, region: str, day: dt.date) -> int:
        """The most specific entry for `region` (county, then prefecture, then province) in force on `day`."""
        for code in (region, region[:4] + "00", region[:2] + "0000"):
            entries = [e for e in self.local_average_salaries if e.region == code and e.effective_from <= day]
            if entries:
                return max(entries, key=lambda e: e.effective_from).annual_yuan
        raise FailedPrecondition(
            "LOCAL_AVERAGE_SALARY_UNKNOWN",
            f"no local average salary for region {region} on {day.isoformat()}",
        )

    def all_material_codes(self) -> frozenset[str]:
        codes: set[str] = set()
        for items in self.materials.values():
            for item in items:
                codes.add(item.code)
                codes.update(item.alternatives)
        return frozenset(codes)


def check_rejection_codes(codes: Iterable[str], policy: PermitsPolicy) -> tuple[str, ...]:
    """Rejection codes as given (upper-cased), each one of the policy's published codes; InvalidArgument
    ``reason_codes[i]`` UNKNOWN_REASON_CODE otherwise."""
    given = tuple(c.strip().upper() for c in codes)
    errors = ValidationCollector()
    for i, code in enumerate(given):
        if code not in policy.rejection_codes:
            errors.add(f"reason_codes[{i}]", "UNKNOWN_REASON_CODE", "not one of the department's codes")
    errors.raise_if_any()
    return given
