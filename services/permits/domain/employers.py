"""Employers (docs/domain.md §4.3): the unified social credit code and whether an employer may sponsor."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import uscc as stdnum_uscc

from services.common.errors import FailedPrecondition, ValidationCollector


class EmployerStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    SERIOUS_BAD_RECORD = "SERIOUS_BAD_RECORD"  # 严重违法失信记录 (§4.3)
    DEREGISTERED = "DEREGISTERED"


def uscc_problem(raw: str) -> str | None:
    """``None`` if `raw` is a unified social credit code (GB 32100-2015) with the right check character."""
    if not raw or not raw.strip():
        return "REQUIRED"
    try:
        stdnum_uscc.validate(raw)
    except stdnum_exceptions.InvalidLength:
        return "BAD_LENGTH"
    except stdnum_exceptions.InvalidChecksum:
        return "BAD_CHECK_CHARACTER"
    except stdnum_exceptions.ValidationError:
        return "BAD_FORMAT"
    return None


@dataclass(frozen=True, slots=True)
class Employer:
    uscc: str
    name: str
    address: str
    status: EmployerStatus = EmployerStatus.ACTIVE

    def with_status(self, status: EmployerStatus) -> Employer:
        return Employer(self.uscc, self.name, self.address, status)

    def ensure_can_sponsor(self) -> None:
        if self.status is EmployerStatus.SERIOUS_BAD_RECORD:
            raise FailedPrecondition(
                "EMPLOYER_NOT_ELIGIBLE", "the employer has a serious record of illegal or dishonest conduct"
            )
        if self.status is not EmployerStatus.ACTIVE:
            raise FailedPrecondition("EMPLOYER_NOT_ACTIVE", f"the employer is {self.status.value.lower()}")


def register_employer(
    uscc: str, name: str, address: str, status: EmployerStatus = EmployerStatus.ACTIVE
) -> Employer:
    """A validated employer; every bad field is reported at once."""
    errors = ValidationCollector()
    problem = uscc_problem(uscc)
    if problem:
        errors.add("unified_social_credit_code", problem, "not a valid unified social credit code")
    if not name.strip():
        errors.add("name", "REQUIRED")
    if not address.strip():
        errors.add("address", "REQUIRED")
    errors.raise_if_any()
    return Employer(stdnum_uscc.compact(uscc), name.strip(), address.strip(), status)


def compact_uscc(raw: str) -> str:
    """`raw` without the separators a code may be written with (spaces, dashes); not validated."""
    return str(stdnum_uscc.compact(raw))
