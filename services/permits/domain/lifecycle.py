"""The application state machine both permits share (docs/domain.md §4.4): states, the allowed moves,
materials, rejection and cancellation.

Applications are frozen. An operation checks the move and returns the new application with the events it
caused (``Changed``, or ``Supplied`` when a materials check comes with it); it changes nothing in place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Generic, Self, TypeVar

from services.common.dates import age_on
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.events import Changed, DomainEvent
from services.permits.domain import events as ev
from services.permits.domain.materials import MaterialsCheck, Stage, check_materials, refuse_unknown_materials
from services.permits.domain.policy import OTHER_REJECTION, PermitsPolicy
from services.permits.domain.scoring import Applicant, Category
from services.permits.domain.validity import Validity


class PermitState(enum.StrEnum):
    SUBMITTED = "SUBMITTED"
    AWAITING_MATERIALS = "AWAITING_MATERIALS"
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ISSUED = "ISSUED"
    CANCELLED = "CANCELLED"


_S = PermitState
# Allowed moves for both kinds of permit. An issued permit may still be cancelled (注销); REJECTED and
# CANCELLED are final.
TRANSITIONS: Mapping[PermitState, frozenset[PermitState]] = MappingProxyType(
    {
        _S.SUBMITTED: frozenset({_S.AWAITING_MATERIALS, _S.UNDER_REVIEW, _S.CANCELLED}),
        _S.AWAITING_MATERIALS: frozenset({_S.UNDER_REVIEW, _S.CANCELLED}),
        _S.UNDER_REVIEW: frozenset({_S.AWAITING_MATERIALS, _S.APPROVED, _S.REJECTED, _S.CANCELLED}),
        _S.APPROVED: frozenset({_S.ISSUED, _S.CANCELLED}),
        _S.ISSUED: frozenset({_S.CANCELLED}),
        _S.REJECTED: frozenset(),
        _S.CANCELLED: frozenset(),
    }
)
FINAL = frozenset({_S.REJECTED, _S.CANCELLED})

A = TypeVar("A", bound="Application")


@dataclass(frozen=True, slots=True)
class Supplied(Generic[A]):
    """Materials were added: the new application, the check with every item still missing, the events."""

    state: A
    check: MaterialsCheck
    events: tuple[DomainEvent, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Application:
    """Shared lifecycle of both permits; each subclass names its events (the `*_EVENT` class variables)."""

    AWAITING_MATERIALS_EVENT: ClassVar[type[ev.AwaitingMaterials]]
    REJECTED_EVENT: ClassVar[type[ev.Rejected]]
    CANCELLED_EVENT: ClassVar[type[ev.Cancelled]]

    id: str
    applicant: Applicant
    category: Category
    submitted_on: dt.date
    state: PermitState = PermitState.SUBMITTED
    supplied_materials: frozenset[str] = frozenset()
    materials_complete_on: dt.date | None = None  # when the file was accepted; the decision clock starts
    rejection_reasons: tuple[str, ...] = ()
    rejection_codes: tuple[str, ...] = ()
    permit_number: str | None = None
    validity: Validity | None = None

    def _check_move(self, target: PermitState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to {target.value}"
            )

    def _age(self, today: dt.date) -> int:
        return age_on(self.applicant.birth_date, today)

    def _supply(
        self, stage: Stage, items: Iterable[str], today: dt.date, policy: PermitsPolicy
    ) -> Supplied[Self]:
        given = frozenset(items)
        refuse_unknown_materials(given, policy)
        if self.state not in (_S.SUBMITTED, _S.AWAITING_MATERIALS, _S.UNDER_REVIEW, _S.APPROVED):
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"materials cannot be supplied in state {self.state.value}"
            )
        app = dataclasses.replace(self, supplied_materials=self.supplied_materials | given)
        check = check_materials(stage, app.supplied_materials, self._age(today), self.category, policy)
        if self.state in (_S.SUBMITTED, _S.AWAITING_MATERIALS):
            if check.acceptable:
                self._check_move(_S.UNDER_REVIEW)
                accepted = dataclasses.replace(app, state=_S.UNDER_REVIEW, materials_complete_on=today)
                changed = accepted._accepted(today, policy)
                return Supplied(changed.state, check, changed.events)
            if self.state is _S.SUBMITTED:
                self._check_move(_S.AWAITING_MATERIALS)
                event = self.AWAITING_MATERIALS_EVENT(self.id, ",".join(check.missing_codes))
                return Supplied(dataclasses.replace(app, state=_S.AWAITING_MATERIALS), check, (event,))
        return Supplied(app, check)

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> Changed[Self]:
        """The file was accepted (now UNDER_REVIEW): set the decision deadlines; the UnderReview event."""
        raise NotImplementedError

    def request_materials(self, items: Iterable[str], today: dt.date) -> Changed[Self]:
        """The reviewer asks for (more) materials: UNDER_REVIEW → AWAITING_MATERIALS. The listed items are
        taken as not supplied; the decision clock restarts when the file is complete again."""
        if self.state is not _S.UNDER_REVIEW:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION",
                f"materials can be asked for only under review, not in {self.state.value}",
            )
        asked = frozenset(items)
        self._check_move(_S.AWAITING_MATERIALS)
        app = dataclasses.replace(
            self,
            state=_S.AWAITING_MATERIALS,
            supplied_materials=self.supplied_materials - asked,
            materials_complete_on=None,
        )
        return Changed(app, (self.AWAITING_MATERIALS_EVENT(self.id, ",".join(sorted(asked))),))

    def reject(self, reasons: Iterable[str], today: dt.date, codes: Iterable[str] = ()) -> Changed[Self]:
        """UNDER_REVIEW → REJECTED with the reasons (words the applicant reads) and the machine code of each
        (``check_rejection_codes``; all OTHER when none are given, else one per reason: COUNT_MISMATCH)."""
        given = tuple(r.strip() for r in reasons if r.strip())
        if not given:
            raise InvalidArgument.one("reasons", "REQUIRED", "a rejection needs at least one reason")
        checked = tuple(codes) or tuple(OTHER_REJECTION for _ in given)
        if len(checked) != len(given):
            raise InvalidArgument.one(
                "reason_codes", "COUNT_MISMATCH", "one code per reason, in the same order"
            )
        self._check_move(_S.REJECTED)
        app = dataclasses.replace(self, state=_S.REJECTED, rejection_reasons=given, rejection_codes=checked)
        return Changed(app, (self.REJECTED_EVENT(self.id, checked, given),))

    def cancel(
        self, today: dt.date, *, cause: str | None = None, valid_until: dt.date | None = None
    ) -> Changed[Self]:
        """→ CANCELLED from any state but a final one (an issued permit is cancelled: 注销)."""
        self._check_move(_S.CANCELLED)
        event = self.CANCELLED_EVENT(self.id, cause, valid_until)
        return Changed(dataclasses.replace(self, state=_S.CANCELLED), (event,))
