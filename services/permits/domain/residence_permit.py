"""The work-type residence permit (工作类居留许可, docs/domain.md §4): it rests on the same person's work
permit, follows that permit's decisions, and may be extended or replaced on a job change."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from services.common.dates import add_years
from services.common.errors import FailedPrecondition, InvalidArgument, ValidationCollector
from services.common.events import Changed, DomainEvent
from services.permits.domain import events as ev
from services.permits.domain.lifecycle import FINAL, Application, PermitState, Supplied
from services.permits.domain.materials import Stage
from services.permits.domain.policy import PermitsPolicy
from services.permits.domain.scoring import Applicant
from services.permits.domain.validity import (
    Validity,
    ValidityLimits,
    residence_fee,
    validate_permit_number,
)
from services.permits.domain.work_permit import WorkPermitApplication
from services.permits.domain.workdays import ONE_DAY

_S = PermitState


def residence_validity(
    valid_from: dt.date,
    requested_until: dt.date | None,
    work_permit: WorkPermitApplication,
    limits: ValidityLimits,
) -> Validity:
    """From `valid_from` to the earliest of the request, the maximum years, the work permit's validity
    (its contract end while it is only approved) and the contract end; at least the minimum days."""
    caps = [
        add_years(valid_from, limits.residence_max_years) - ONE_DAY,
        work_permit.request.contract.end_date,
    ]
    if work_permit.validity is not None:
        caps.append(work_permit.validity.valid_until)
    if requested_until is not None:
        caps.append(requested_until)
    validity = Validity(valid_from, min(caps))
    if validity.days < limits.residence_min_days:
        raise FailedPrecondition(
            "VALIDITY_TOO_SHORT", f"a residence permit is valid for at least {limits.residence_min_days} days"
        )
    return validity


WORK_PERMIT_DECIDED = frozenset({_S.APPROVED, _S.ISSUED})
WORK_PERMIT_PENDING = frozenset({_S.SUBMITTED, _S.AWAITING_MATERIALS, _S.UNDER_REVIEW})


def _require_work_permit(
    applicant: Applicant, work_permit: WorkPermitApplication | None, *, pending_ok: bool = False
) -> WorkPermitApplication:
    """The work permit a residence permit rests on: approved or issued (or, with `pending_ok`, still in
    review: the one-window case lodges both together). ``WORK_PERMIT_NOT_YET_APPROVED`` for one still in
    review when a decision needs it, ``WORK_PERMIT_REQUIRED`` for none, another person's, or one rejected
    or cancelled."""
    allowed = WORK_PERMIT_DECIDED | (WORK_PERMIT_PENDING if pending_ok else frozenset())
    if work_permit is not None and work_permit.applicant.same_person(applicant):
        if work_permit.state in allowed:
            return work_permit
        if work_permit.state in WORK_PERMIT_PENDING:
            raise FailedPrecondition(
                "WORK_PERMIT_NOT_YET_APPROVED",
                "the residence permit is decided once the work permit it rests on is approved",
            )
    raise FailedPrecondition(
        "WORK_PERMIT_REQUIRED", "a work-type residence permit needs an approved or issued work permit"
    )


@dataclass(frozen=True, kw_only=True)
class ResidencePermitApplication(Application):
    AWAITING_MATERIALS_EVENT: ClassVar[type[ev.AwaitingMaterials]] = ev.ResidencePermitAwaitingMaterials
    REJECTED_EVENT: ClassVar[type[ev.Rejected]] = ev.ResidencePermitRejected
    CANCELLED_EVENT: ClassVar[type[ev.Cancelled]] = ev.ResidencePermitCancelled

    work_permit_id: str
    entry_date: dt.date | None  # None for a job change inside China
    requested_valid_until: dt.date | None = None
    decision_due: dt.date | None = None  # statutory: calendar days
    decision_target: dt.date | None = None  # practice: working days
    fee_yuan: int | None = None
    # Lodged while the work permit was in review: no decision clock until the work permit is approved.
    awaiting_work_permit: bool = False
    # A job change inside China: the issued residence permit (application id) this one replaces.
    replaces_id: str | None = None

    def supply_materials(self, items: Iterable[str], today: dt.date, policy: PermitsPolicy) -> Supplied[Self]:
        """As for the work permit, with the residence checklist (health certificate only for ages 18–70)."""
        return self._supply(Stage.RESIDENCE_PERMIT, items, today, policy)

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> Changed[Self]:
        if self.awaiting_work_permit:  # the clock starts when the work permit is approved
            return Changed(self, (ev.ResidencePermitUnderReview(self.id),))
        d = policy.deadlines
        due = today + dt.timedelta(days=d.residence_decision_calendar_days)
        target = policy.calendar.add_working_days(today, d.residence_target_working_days)
        provisional = True if policy.calendar.is_provisional(target) else None
        event = ev.ResidencePermitUnderReview(self.id, due, target, provisional)
        return Changed(dataclasses.replace(self, decision_due=due, decision_target=target), (event,))

    def work_permit_approved(self, today: dt.date, policy: PermitsPolicy) -> Changed[Self] | None:
        """The work permit it was lodged with is approved: the application may now be decided, and a file
        already complete starts its decision clock today (ResidencePermitUnderReview again, with the
        deadlines). None when it was not waiting."""
        if not self.awaiting_work_permit or self.state in FINAL:
            return None
        app = dataclasses.replace(self, awaiting_work_permit=False)
        if self.state is _S.UNDER_REVIEW:
            return app._accepted(today, policy)
        return Changed(app)

    def follow_work_permit_end(self, today: dt.date, cause: str) -> Changed[Self] | None:
        """The work permit it rests on was rejected or cancelled: an open application is cancelled, an
        issued permit is cancelled (注销) and verifies invalid from now on. None when already final."""
        if self.state in FINAL:
            return None
        last = None
        if self.state is _S.ISSUED and self.validity is not None:
            last = max(self.validity.valid_from, min(self.validity.valid_until, today - ONE_DAY))
        return self.cancel(today, cause=cause, valid_until=last)

    def request_materials(self, items: Iterable[str], today: dt.date) -> Changed[Self]:
        changed = super().request_materials(items, today)
        app = dataclasses.replace(changed.state, decision_due=None, decision_target=None)
        return Changed(app, changed.events)

    def approve(
        self, work_permit: WorkPermitApplication | None, today: dt.date, policy: PermitsPolicy
    ) -> Changed[Self]:
        """UNDER_REVIEW → APPROVED, fixing validity (from today) and fee. The work permit is checked again:
        one still in review refuses with ``WORK_PERMIT_NOT_YET_APPROVED``."""
        if self.state is not _S.UNDER_REVIEW:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to APPROVED")
        work_permit = _require_work_permit(self.applicant, work_permit)
        validity = residence_validity(today, self.requested_valid_until, work_permit, policy.validity)
        fee = residence_fee(validity, policy.residence_fee_tiers)
        self._check_move(_S.APPROVED)
        event = ev.ResidencePermitApproved(self.id, validity.valid_until, validity.valid_from, fee, fee * 100)
        app = dataclasses.replace(self, state=_S.APPROVED, validity=validity, fee_yuan=fee)
        return Changed(app, (event,))

    def issue(self, number: str, today: dt.date) -> Changed[Self]:
        validate_permit_number(number)
        self._check_move(_S.ISSUED)
        v = self.validity
        event = ev.ResidencePermitIssued(
            self.id, number, v.valid_from if v else None, v.valid_until if v else None
        )
        return Changed(dataclasses.replace(self, state=_S.ISSUED, permit_number=number), (event,))

    def replaced(self, today: dt.date) -> Changed[Self] | None:
        """A job change's new permit was issued: this issued permit is cancelled (its holder has one new
        permit, not two). None when it is no longer issued."""
        if self.state is not _S.ISSUED:
            return None
        assert self.validity is not None
        last = max(self.validity.valid_from, min(self.validity.valid_until, today - ONE_DAY))
        return self.cancel(today, cause="REPLACED", valid_until=last)

    def extend(
        self,
        requested_until: dt.date | None,
        work_permit: WorkPermitApplication | None,
        today: dt.date,
        policy: PermitsPolicy,
    ) -> Changed[Self]:
        """Extend an issued permit (Art. 32): asked at least the minimum days before expiry; the new end is
        capped like a new permit counted from the current start (so never beyond 5 years, the work permit or
        the contract). The new validity is the application's."""
        if self.state is not _S.ISSUED or self.validity is None:
            raise FailedPrecondition("PERMIT_NOT_ISSUED", "only an issued residence permit can be extended")
        if today > self.validity.valid_until:
            raise FailedPrecondition("PERMIT_EXPIRED", "the residence permit has expired")
        days_left = (self.validity.valid_until - today).days
        if days_left < policy.deadlines.residence_extension_min_days_before_expiry:
            raise FailedPrecondition(
                "EXTENSION_TOO_LATE",
                f"extensions must be asked for at least "
                f"{policy.deadlines.residence_extension_min_days_before_expiry} days before expiry",
            )
        work_permit = _require_work_permit(self.applicant, work_permit)
        if requested_until is not None and requested_until <= self.validity.valid_until:
            raise InvalidArgument.one("requested_valid_until", "NOT_AFTER_CURRENT_EXPIRY")
        new = residence_validity(self.validity.valid_from, requested_until, work_permit, policy.validity)
        if new.valid_until <= self.validity.valid_until:
            raise FailedPrecondition("VALIDITY_TOO_SHORT", "the limits leave nothing to extend")
        event = ev.ResidencePermitExtended(self.id, new.valid_until)
        return Changed(dataclasses.replace(self, validity=new), (event,))


def submit_residence_permit(
    application_id: str,
    applicant: Applicant,
    work_permit: WorkPermitApplication | None,
    entry_date: dt.date | None,
    requested_valid_until: dt.date | None,
    today: dt.date,
    policy: PermitsPolicy,
    *,
    held_permit: ResidencePermitApplication | None = None,
    job_change: bool = False,
) -> Changed[ResidencePermitApplication]:
    """A new work-type residence permit application in SUBMITTED, its category the work permit's.

    It may be lodged together with the work permit (the one-window case): the same person (passport number
    and nationality) must hold a work permit that is pending, approved or issued; while it is pending the
    application is `awaiting_work_permit` and is decided after the work permit. The days after entry are
    counted to `today`, this application's date, whatever the work permit's review takes. A `job_change`
    inside China rests on the person's issued residence permit valid today (`held_permit`,
    ``RESIDENCE_PERMIT_NOT_HELD`` otherwise) instead of an entry date, and replaces it when issued."""
    errors = ValidationCollector()
    if entry_date is None and not job_change:
        errors.add("entry_date", "REQUIRED", "the date of entry into China")
    if entry_date is not None and entry_date > today:
        errors.add("entry_date", "IN_FUTURE")
    if requested_valid_until is not None and requested_valid_until < today:
        errors.add("requested_valid_until", "IN_PAST")
    errors.raise_if_any()
    work_permit = _require_work_permit(applicant, work_permit, pending_ok=True)
    if job_change:
        if (
            held_permit is None
            or not held_permit.applicant.same_person(applicant)
            or held_permit.state is not _S.ISSUED
            or held_permit.validity is None
            or not held_permit.validity.covers(today)
        ):
            raise FailedPrecondition(
                "RESIDENCE_PERMIT_NOT_HELD", "a job change rests on the person's valid residence permit"
            )
    else:
        assert entry_date is not None
        limit = policy.deadlines.residence_apply_within_days_of_entry
        if (today - entry_date).days > limit:
            raise FailedPrecondition("APPLICATION_TOO_LATE", f"apply within {limit} days of entry")
    app = ResidencePermitApplication(
        id=application_id,
        applicant=work_permit.applicant,
        category=work_permit.category,
        submitted_on=today,
        work_permit_id=work_permit.id,
        entry_date=entry_date,
        requested_valid_until=requested_valid_until,
        # The department holds the work permit itself: it never asks the applicant for a copy of it.
        supplied_materials=frozenset({"work_permit"}),
        awaiting_work_permit=work_permit.state in WORK_PERMIT_PENDING,
        replaces_id=held_permit.id if job_change and held_permit is not None else None,
    )

    event = ev.ResidencePermitSubmitted(
        application_id, work_permit.id, app.awaiting_work_permit, job_change, app.replaces_id
    )
    return Changed(app, (event,))


# ----------------------------------------------------------------------------------------------------------
# A work permit's decision reaches the residence permits resting on it
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkPermitDecided:
    """A decision on a work permit and what it did to the residence permits resting on it: the changed
    ones only. Events in publishing order: the residence permits' (oldest first), then the work permit's."""

    work_permit: WorkPermitApplication
    residence_permits: tuple[ResidencePermitApplication, ...]
    events: tuple[DomainEvent, ...]


def _decided(
    work_permit: Changed[WorkPermitApplication],
    followers: Iterable[Changed[ResidencePermitApplication] | None],
) -> WorkPermitDecided:
    changed = [c for c in followers if c is not None]
    events = tuple(e for c in changed for e in c.events) + work_permit.events
    return WorkPermitDecided(work_permit.state, tuple(c.state for c in changed), events)


def approve_work_permit(
    work_permit: WorkPermitApplication,
    resting: Sequence[ResidencePermitApplication],
    today: dt.date,
    policy: PermitsPolicy,
) -> WorkPermitDecided:
    """Approve the work permit; residence permits lodged with it start their decision clock."""
    approved = work_permit.approve(today)
    return _decided(approved, (rp.work_permit_approved(today, policy) for rp in resting))


def reject_work_permit(
    work_permit: WorkPermitApplication,
    resting: Sequence[ResidencePermitApplication],
    reasons: Iterable[str],
    today: dt.date,
    codes: Iterable[str] = (),
) -> WorkPermitDecided:
    """Reject the work permit; the open residence permits resting on it are cancelled."""
    rejected = work_permit.reject(reasons, today, codes)
    return _decided(
        rejected,
        (
            rp.follow_work_permit_end(today, "WORK_PERMIT_REJECTED")
            for rp in resting
            if rp.state is not _S.ISSUED
        ),
    )


def cancel_work_permit(
    work_permit: WorkPermitApplication, resting: Sequence[ResidencePermitApplication], today: dt.date
) -> WorkPermitDecided:
    """Cancel the work permit; every residence permit resting on it is cancelled, an issued one from
    today (it verifies invalid from then on)."""
    cancelled = work_permit.cancel(today)
    return _decided(cancelled, (rp.follow_work_permit_end(today, "WORK_PERMIT_CANCELLED") for rp in resting))
