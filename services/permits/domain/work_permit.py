"""The foreigner's work permit (外国人工作许可, docs/domain.md §4): submission, review, the notice and the
card."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from services.common.dates import age_on
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.events import Changed
from services.permits.domain import events as ev
from services.permits.domain.employers import Employer
from services.permits.domain.lifecycle import Application, PermitState, Supplied
from services.permits.domain.materials import (
    MaterialsCheck,
    Stage,
    check_materials,
    refuse_unknown_materials,
    require_complete,
)
from services.permits.domain.policy import PermitsPolicy
from services.permits.domain.scoring import (
    PointsBreakdown,
    WorkPermitRequest,
    classify,
    score_points,
    validate_work_permit_request,
)
from services.permits.domain.validity import validate_permit_number, work_permit_validity

_S = PermitState


def _provisional(policy: PermitsPolicy, day: dt.date) -> bool | None:
    """True when `day` is in a provisional calendar year (the event says so), else None (absent)."""
    return True if policy.calendar.is_provisional(day) else None


@dataclass(frozen=True, kw_only=True)
class WorkPermitApplication(Application):
    AWAITING_MATERIALS_EVENT: ClassVar[type[ev.AwaitingMaterials]] = ev.WorkPermitAwaitingMaterials
    REJECTED_EVENT: ClassVar[type[ev.Rejected]] = ev.WorkPermitRejected
    CANCELLED_EVENT: ClassVar[type[ev.Cancelled]] = ev.WorkPermitCancelled

    request: WorkPermitRequest
    points: PointsBreakdown
    category_grounds: tuple[str, ...] = ()
    extended: bool = False
    decision_due: dt.date | None = None

    def supply_materials(self, items: Iterable[str], today: dt.date, policy: PermitsPolicy) -> Supplied[Self]:
        """Add materials for the work permit notice. From SUBMITTED or AWAITING_MATERIALS the file moves to
        UNDER_REVIEW as soon as it is acceptable (complete, or category A with only deferrable items
        missing: 容缺受理), else to / stays in AWAITING_MATERIALS. The check lists every missing item."""
        return self._supply(Stage.WORK_PERMIT_NOTICE, items, today, policy)

    def _decision_due(self, accepted_on: dt.date, extended: bool, policy: PermitsPolicy) -> dt.date:
        d = policy.deadlines
        days = (
            d.work_permit_working_days
            if self.request.stay_over_90_days
            else d.work_permit_short_stay_working_days
        )
        if extended:
            days += d.work_permit_extension_working_days
        return policy.calendar.add_working_days(accepted_on, days)

    def _accepted(self, today: dt.date, policy: PermitsPolicy) -> Changed[Self]:
        due = self._decision_due(today, self.extended, policy)
        event = ev.WorkPermitUnderReview(self.id, due, _provisional(policy, due))
        return Changed(dataclasses.replace(self, decision_due=due), (event,))

    def request_materials(self, items: Iterable[str], today: dt.date) -> Changed[Self]:
        changed = super().request_materials(items, today)
        return Changed(dataclasses.replace(changed.state, decision_due=None), changed.events)

    def extend_review(self, today: dt.date, policy: PermitsPolicy) -> Changed[Self]:
        """Extend the decision deadline once by the extension working days ("special cases"), stays > 90
        days only; the new deadline is the application's `decision_due`."""
        if self.state is not _S.UNDER_REVIEW or self.materials_complete_on is None:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"cannot extend the review in state {self.state.value}"
            )
        if not self.request.stay_over_90_days:
            raise FailedPrecondition("EXTENSION_NOT_ALLOWED", "no extension for stays of 90 days or less")
        if self.extended:
            raise FailedPrecondition("ALREADY_EXTENDED", "the review was already extended")
        due = self._decision_due(self.materials_complete_on, True, policy)
        event = ev.WorkPermitReviewExtended(self.id, due, _provisional(policy, due))
        return Changed(dataclasses.replace(self, extended=True, decision_due=due), (event,))

    def approve(self, today: dt.date) -> Changed[Self]:
        """UNDER_REVIEW → APPROVED (the work permit notice). The file is acceptable in UNDER_REVIEW by
        construction; deferred (容缺) items may still be missing and are needed before issue."""
        self._check_move(_S.APPROVED)
        event = ev.WorkPermitApproved(self.id, self.category)
        return Changed(dataclasses.replace(self, state=_S.APPROVED), (event,))

    def issue(self, number: str, today: dt.date, policy: PermitsPolicy) -> Changed[Self]:
        """APPROVED → ISSUED: the work permit card after entry. Needs every notice item (including any
        deferred under 容缺受理) and every after-entry item; `number` is the person's lifelong permit number.
        Validity runs from the later of today and the contract start to the earlier of the contract end and
        the maximum years."""
        if self.state is not _S.APPROVED:
            raise FailedPrecondition("ILLEGAL_TRANSITION", f"cannot go from {self.state.value} to ISSUED")
        validate_permit_number(number)
        require_complete(self.issue_check(today, policy))
        validity = work_permit_validity(today, self.request.contract, policy.validity)
        self._check_move(_S.ISSUED)
        event = ev.WorkPermitIssued(self.id, validity.valid_until, validity.valid_from, number)
        app = dataclasses.replace(self, state=_S.ISSUED, permit_number=number, validity=validity)
        return Changed(app, (event,))

    def supply_after_entry_materials(
        self, items: Iterable[str], today: dt.date, policy: PermitsPolicy
    ) -> Supplied[Self]:
        """Add the after-entry items (visa page and entry stamp, …); the check lists what is still missing
        for issue."""
        if self.state is not _S.APPROVED:
            raise FailedPrecondition(
                "ILLEGAL_TRANSITION", f"after-entry materials need an approved notice, not {self.state.value}"
            )
        given = frozenset(items)
        refuse_unknown_materials(given, policy)
        app = dataclasses.replace(self, supplied_materials=self.supplied_materials | given)
        return Supplied(app, app.issue_check(today, policy))

    def issue_check(self, today: dt.date, policy: PermitsPolicy) -> MaterialsCheck:
        """Everything still missing before the card can be issued: the notice items (including any deferred
        under 容缺受理) and the after-entry items, each code once."""
        age = self._age(today)
        notice = check_materials(Stage.WORK_PERMIT_NOTICE, self.supplied_materials, age, None, policy)
        after = check_materials(Stage.WORK_PERMIT, self.supplied_materials, age, None, policy)
        seen = {item.code for item in notice.missing}
        missing = notice.missing + tuple(item for item in after.missing if item.code not in seen)
        return MaterialsCheck(Stage.WORK_PERMIT, missing, ())


def submit_work_permit(
    application_id: str,
    request: WorkPermitRequest,
    employer: Employer,
    today: dt.date,
    policy: PermitsPolicy,
    *,
    employer_id: str = "",
) -> Changed[WorkPermitApplication]:
    """A new application in SUBMITTED: the fields are validated (all problems at once), then the business
    rules (employer may sponsor, applicant at least 18), then points and category are fixed with the table
    in force today. The employer's registration counts as supplied (it is done once, online).
    `employer_id` is the register's id of the employer, published with the submission."""
    request = validate_work_permit_request(request, today)
    if request.employer_uscc != employer.uscc:
        raise InvalidArgument.one("employer_uscc", "EMPLOYER_MISMATCH", "not the sponsoring employer")
    employer.ensure_can_sponsor()
    age = age_on(request.applicant.birth_date, today)
    if age < policy.validity.min_age:
        raise FailedPrecondition(
            "APPLICANT_UNDER_AGE", f"the applicant must be at least {policy.validity.min_age}"
        )
    points = score_points(request, age, policy.points_table_on(today))
    average = policy.local_average_salary(request.work_region, today)
    decision = classify(request, points.total, age, average, policy.category_rules)
    app = WorkPermitApplication(
        id=application_id,
        applicant=request.applicant,
        category=decision.category,
        category_grounds=decision.grounds,
        submitted_on=today,
        request=request,
        points=points,
        supplied_materials=frozenset({"employer_registration"}),
    )
    return Changed(app, (ev.WorkPermitSubmitted(application_id, decision.category, employer_id),))
