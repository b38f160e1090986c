"""The permits department's domain events: a published contract (docs/domain.md §4).

The gateway follows them on ``WatchEvents`` (``gateway/departments/permits.py``): their `type` names and
payloads do not change. An application's events are named by the permit and the state it reached
(``WorkPermitUnderReview``, ``ResidencePermitCancelled``, ...). No personal data: the aggregate's id (the
outbox's ``aggregate_id``, not part of the payload), the kind of change and plain facts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from services.common.events import DomainEvent, jsonable
from services.permits.domain.employers import EmployerStatus
from services.permits.domain.scoring import Category


@dataclass(frozen=True, slots=True)
class PermitsEvent(DomainEvent):
    """Base of the department's events. The field named by `aggregate` is the outbox's aggregate id and
    stays out of the payload; a field in `optional` is left out of the payload while it is None."""

    aggregate: ClassVar[str] = "application_id"
    optional: ClassVar[frozenset[str]] = frozenset()

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate))

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == self.aggregate or (value is None and f.name in self.optional):
                continue
            out[f.name] = jsonable(value)
        return out


# -- employers -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmployerRegistered(PermitsEvent):
    type: ClassVar[str] = "EmployerRegistered"
    aggregate: ClassVar[str] = "employer_id"
    employer_id: str
    status: EmployerStatus


@dataclass(frozen=True, slots=True)
class EmployerStatusChanged(PermitsEvent):
    type: ClassVar[str] = "EmployerStatusChanged"
    aggregate: ClassVar[str] = "employer_id"
    employer_id: str
    status: EmployerStatus


# -- transitions both permits share (one subclass per permit names the event) ----------------------------


@dataclass(frozen=True, slots=True)
class AwaitingMaterials(PermitsEvent):
    application_id: str
    missing: str  # the missing material codes, comma-separated


@dataclass(frozen=True, slots=True)
class Rejected(PermitsEvent):
    application_id: str
    reason_codes: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cancelled(PermitsEvent):
    """`cause` (residence permits: WITHDRAWN, REPLACED, WORK_PERMIT_REJECTED, WORK_PERMIT_CANCELLED) and,
    for an issued permit, its last valid day."""

    optional: ClassVar[frozenset[str]] = frozenset({"cause", "valid_until"})
    application_id: str
    cause: str | None = None
    valid_until: dt.date | None = None


# -- work permit -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkPermitSubmitted(PermitsEvent):
    type: ClassVar[str] = "WorkPermitSubmitted"
    application_id: str
    category: Category
    employer_id: str


@dataclass(frozen=True, slots=True)
class WorkPermitAwaitingMaterials(AwaitingMaterials):
    type: ClassVar[str] = "WorkPermitAwaitingMaterials"


@dataclass(frozen=True, slots=True)
class WorkPermitUnderReview(PermitsEvent):
    """The file was accepted: the decision is due on `decision_due` (working days). `calendar_provisional`
    (True or absent) when that day is in a year without a published holiday notice."""

    type: ClassVar[str] = "WorkPermitUnderReview"
    optional: ClassVar[frozenset[str]] = frozenset({"decision_due", "calendar_provisional"})
    application_id: str
    decision_due: dt.date | None = None
    calendar_provisional: bool | None = None


@dataclass(frozen=True, slots=True)
class WorkPermitReviewExtended(PermitsEvent):
    type: ClassVar[str] = "WorkPermitReviewExtended"
    optional: ClassVar[frozenset[str]] = frozenset({"calendar_provisional"})
    application_id: str
    decision_due: dt.date
    calendar_provisional: bool | None = None


@dataclass(frozen=True, slots=True)
class WorkPermitApproved(PermitsEvent):
    type: ClassVar[str] = "WorkPermitApproved"
    application_id: str
    category: Category


@dataclass(frozen=True, slots=True)
class WorkPermitRejected(Rejected):
    type: ClassVar[str] = "WorkPermitRejected"


@dataclass(frozen=True, slots=True)
class WorkPermitIssued(PermitsEvent):
    type: ClassVar[str] = "WorkPermitIssued"
    application_id: str
    valid_until: dt.date
    valid_from: dt.date
    permit_number: str


@dataclass(frozen=True, slots=True)
class WorkPermitCancelled(Cancelled):
    type: ClassVar[str] = "WorkPermitCancelled"


# -- residence permit ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResidencePermitSubmitted(PermitsEvent):
    type: ClassVar[str] = "ResidencePermitSubmitted"
    application_id: str
    work_permit_id: str
    awaiting_work_permit: bool
    job_change: bool
    replaces_id: str | None


@dataclass(frozen=True, slots=True)
class ResidencePermitAwaitingMaterials(AwaitingMaterials):
    type: ClassVar[str] = "ResidencePermitAwaitingMaterials"


@dataclass(frozen=True, slots=True)
class ResidencePermitUnderReview(PermitsEvent):
    """The file was accepted (or its work permit approved): the decision is due on `decision_due`
    (calendar days), aimed at `decision_target` (working days). Both absent while the work permit it was
    lodged with is in review; `calendar_provisional` as for the work permit, for the target."""

    type: ClassVar[str] = "ResidencePermitUnderReview"
    optional: ClassVar[frozenset[str]] = frozenset(
        {"decision_due", "decision_target", "calendar_provisional"}
    )
    application_id: str
    decision_due: dt.date | None = None
    decision_target: dt.date | None = None
    calendar_provisional: bool | None = None


@dataclass(frozen=True, slots=True)
class ResidencePermitApproved(PermitsEvent):
    type: ClassVar[str] = "ResidencePermitApproved"
    application_id: str
    valid_until: dt.date
    valid_from: dt.date
    fee_yuan: int  # published as a string (the contract), beside fee_fen
    fee_fen: int

    def payload(self) -> dict[str, Any]:
        out = PermitsEvent.payload(self)
        out["fee_yuan"] = str(self.fee_yuan)
        return out


@dataclass(frozen=True, slots=True)
class ResidencePermitRejected(Rejected):
    type: ClassVar[str] = "ResidencePermitRejected"


@dataclass(frozen=True, slots=True)
class ResidencePermitIssued(PermitsEvent):
    type: ClassVar[str] = "ResidencePermitIssued"
    optional: ClassVar[frozenset[str]] = frozenset({"valid_from", "valid_until"})
    application_id: str
    permit_number: str
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None


@dataclass(frozen=True, slots=True)
class ResidencePermitCancelled(Cancelled):
    type: ClassVar[str] = "ResidencePermitCancelled"


@dataclass(frozen=True, slots=True)
class ResidencePermitExtended(PermitsEvent):
    type: ClassVar[str] = "ResidencePermitExtended"
    application_id: str
    valid_until: dt.date
