"""Validity of a permit, the residence permit fee tiers, and permit numbers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from stdnum.iso7064 import mod_11_2

from services.common.dates import add_months, add_years
from services.common.errors import FailedPrecondition, InvalidArgument
from services.permits.domain.scoring import REGION, Contract
from services.permits.domain.workdays import ONE_DAY


@dataclass(frozen=True, slots=True)
class ValidityLimits:
    work_permit_max_years: int
    residence_min_days: int
    residence_max_years: int
    min_age: int  # applicant (§4.3: aged 18 or over)


@dataclass(frozen=True, slots=True)
class FeeTier:
    """``fee_yuan`` for a validity of at least ``min_months`` (the highest matching tier wins)."""

    min_months: int
    fee_yuan: int


@dataclass(frozen=True, slots=True)
class Validity:
    valid_from: dt.date
    valid_until: dt.date  # last valid day, inclusive

    @property
    def days(self) -> int:
        return (self.valid_until - self.valid_from).days + 1

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_until


def work_permit_validity(today: dt.date, contract: Contract, limits: ValidityLimits) -> Validity:
    start = max(today, contract.start_date)
    until = min(contract.end_date, add_years(start, limits.work_permit_max_years) - ONE_DAY)
    if until < start:
        raise FailedPrecondition("CONTRACT_ENDED", "the contract has ended")
    return Validity(start, until)


def residence_fee(validity: Validity, tiers: tuple[FeeTier, ...]) -> int:
    """The fee of the highest tier whose minimum whole months the validity reaches (a validity of exactly one
    year, e.g. 2017-04-01..2018-03-31, is "1 year" and pays the 1–3 year fee)."""
    end = validity.valid_until + ONE_DAY
    reached = [t for t in tiers if add_months(validity.valid_from, t.min_months) <= end]
    return max(reached, key=lambda t: t.min_months).fee_yuan


_PERMIT_NUMBER = re.compile(r"^\d{17}[\dX]$")


def permit_number(sequence: int, region: str) -> str:
    """The deterministic 18-character permit number for `sequence` in `region` (the 6-digit code of the
    issuing region, 11-digit zero-padded sequence, then an ISO 7064 MOD 11-2 check character as in a citizen
    ID number). The work permit number is kept per person for life, so the store asks for one only once."""
    if not REGION.match(region) or not 0 < sequence < 10**11:
        raise ValueError("region must be 6 digits and sequence 1..99999999999")
    body = f"{region}{sequence:011d}"
    return body + mod_11_2.calc_check_digit(body)


def permit_number_problem(number: str) -> str | None:
    if not _PERMIT_NUMBER.match(number):
        return "BAD_FORMAT"
    if not mod_11_2.is_valid(number):
        return "BAD_CHECK_CHARACTER"
    return None


def validate_permit_number(number: str) -> None:
    if problem := permit_number_problem(number):
        raise InvalidArgument.one("permit_number", problem)
