"""The permits service layer over in-memory repositories (permits_fakes): what each use case loads, locks,
saves and publishes, in which order, and that a refusal leaves no trace. No database, no grpc."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from permits_fakes import FakeUnit

from services.common.clock import Clock
from services.common.errors import FailedPrecondition
from services.permits import domain as d
from services.permits.handlers import FOLLOWED_CANCELLATION, FOLLOWED_REJECTION, PermitsHandlers

RID = "00000000-0000-4000-8000-000000000001"
TODAY = dt.date(2017, 4, 10)  # a Monday
EMPLOYER_USCC = "91110000600037341L"  # python-stdnum's documented example
S = d.PermitState


class Alarm:
    """Stands in for the calendar alarm: remembers what it was told."""

    def __init__(self) -> None:
        self.provisional_calls: list[tuple[int, str]] = []

    def provisional(self, year: int | None, what: str) -> bool:
        assert year is not None
        self.provisional_calls.append((year, what))
        return True


def refs(*kinds: str) -> list[dict[str, Any]]:
    return [{"kind": k, "sha256": "0" * 64, "media_type": "application/pdf", "size_bytes": 1} for k in kinds]


@pytest.fixture
def alarm() -> Alarm:
    return Alarm()


@pytest.fixture
def handlers(policy: d.PermitsPolicy, alarm: Alarm) -> PermitsHandlers:
    return PermitsHandlers(policy, Clock(TODAY), alarm)  # type: ignore[arg-type]


@pytest.fixture
def unit() -> FakeUnit:
    return FakeUnit()


@dataclasses.dataclass
class Steps:
    """Use cases that bring the registers to a starting point."""

    unit: FakeUnit
    make_request: Any
    notice_items: tuple[str, ...]
    residence_items: tuple[str, ...]

    async def under_review(self, handlers: PermitsHandlers) -> str:
        """A registered employer and a work permit application with every notice item: UNDER_REVIEW."""
        await handlers.register_employer(
            self.unit, EMPLOYER_USCC, "Synthetic Widgets Ltd", "1 Example Rd", request_id=RID
        )
        record = await handlers.create_work_permit(
            self.unit, self.make_request(), 100_000_00, refs(*self.notice_items), request_id=RID
        )
        assert record.app.state is S.UNDER_REVIEW
        return record.app.id

    async def lodged_with(self, handlers: PermitsHandlers, work_permit_id: str) -> str:
        record = await handlers.create_residence_permit(
            self.unit,
            PERSON,
            work_permit_id,
            "",
            TODAY - dt.timedelta(days=5),
            None,
            refs(*self.residence_items),
            request_id=RID,
        )
        return record.app.id


PERSON = d.Applicant("E1234567", "GBR", "", "", dt.date(1990, 1, 1), d.Sex.FEMALE)


@pytest.fixture
def steps(unit, make_request, notice_items, residence_items) -> Steps:
    return Steps(unit, make_request, notice_items, residence_items)


def reset(unit: FakeUnit) -> None:
    unit.outbox.clear()
    unit.journal.locked.clear()
    unit.journal.saved.clear()


# ---- employers ----


async def test_registering_an_employer_publishes_it_under_its_register_id(handlers, unit) -> None:
    row = await handlers.register_employer(
        unit, EMPLOYER_USCC, " Synthetic Ltd ", "1 Example Rd", request_id=RID
    )
    assert row.name == "Synthetic Ltd" and row.status == "ACTIVE"
    assert unit.outbox == [("EmployerRegistered", row.id, {"status": "ACTIVE"})]


async def test_an_unchanged_employer_status_publishes_nothing(handlers, unit) -> None:
    row = await handlers.register_employer(
        unit, EMPLOYER_USCC, "Synthetic Ltd", "1 Example Rd", request_id=RID
    )
    reset(unit)
    await handlers.set_employer_status(unit, row.id, d.EmployerStatus.ACTIVE, "", request_id=RID)
    assert unit.outbox == []
    await handlers.set_employer_status(unit, row.id, d.EmployerStatus.SUSPENDED, " audit ", request_id=RID)
    assert row.status_reason == "audit"
    assert unit.outbox == [("EmployerStatusChanged", row.id, {"status": "SUSPENDED"})]
    assert unit.journal.locked == [("employer", row.id), ("employer", row.id)]


# ---- work permits ----


async def test_creating_publishes_the_submission_with_the_employer_then_the_deadline(
    notice_items, steps, handlers, unit
) -> None:
    wp_id = await steps.under_review(handlers)
    employer = await unit.employers.get_by_uscc(EMPLOYER_USCC)
    assert employer is not None
    submitted, review = unit.outbox[1:]
    assert submitted == ("WorkPermitSubmitted", wp_id, {"category": "B", "employer_id": employer.id})
    assert review == ("WorkPermitUnderReview", wp_id, {"decision_due": "2017-05-09"})
    row = unit.work_permits.rows[wp_id]
    assert row.state == "UNDER_REVIEW" and row.decision_due == dt.date(2017, 5, 9)
    assert [m["kind"] for m in row.materials] == list(notice_items)


async def test_an_unregistered_employer_is_refused_and_nothing_is_stored(
    make_request, handlers, unit
) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        await handlers.create_work_permit(unit, make_request(), 100_000_00, [], request_id=RID)
    assert exc.value.reason == "EMPLOYER_NOT_REGISTERED"
    assert unit.outbox == [] and unit.journal.saved == [] and unit.work_permits.rows == {}


async def test_approval_starts_the_clock_of_a_residence_permit_lodged_with_it(steps, handlers, unit) -> None:
    wp_id = await steps.under_review(handlers)
    rp_id = await steps.lodged_with(handlers, wp_id)
    assert unit.residence_permits.rows[rp_id].awaiting_work_permit
    reset(unit)
    record = await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    assert record.app.state is S.APPROVED
    assert unit.journal.locked == [("work_permit", wp_id), ("residence_permit", rp_id)]
    assert set(unit.journal.saved) == {("work_permit", wp_id), ("residence_permit", rp_id)}
    # The residence permit's events come first, as the outbox always had them.
    assert unit.outbox == [
        (
            "ResidencePermitUnderReview",
            rp_id,
            {"decision_due": "2017-04-25", "decision_target": "2017-04-19"},
        ),
        ("WorkPermitApproved", wp_id, {"category": "B"}),
    ]
    rp = unit.residence_permits.rows[rp_id]
    assert not rp.awaiting_work_permit and rp.decision_due == dt.date(2017, 4, 25)


async def test_a_refused_approval_locks_no_residence_permit_and_leaves_no_trace(
    steps, handlers, unit
) -> None:
    wp_id = await steps.under_review(handlers)
    await steps.lodged_with(handlers, wp_id)
    await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    reset(unit)
    with pytest.raises(FailedPrecondition) as exc:
        await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    assert exc.value.reason == "ILLEGAL_TRANSITION"
    assert unit.journal.locked == [("work_permit", wp_id)]
    assert unit.journal.saved == [] and unit.outbox == []


async def test_rejection_cancels_the_open_residence_permit_with_the_registers_reason(
    steps, handlers, unit
) -> None:
    wp_id = await steps.under_review(handlers)
    rp_id = await steps.lodged_with(handlers, wp_id)
    reset(unit)
    await handlers.reject_work_permit(unit, wp_id, ["salary below minimum"], ["OTHER"], request_id=RID)
    assert unit.outbox == [
        ("ResidencePermitCancelled", rp_id, {"cause": "WORK_PERMIT_REJECTED"}),
        ("WorkPermitRejected", wp_id, {"reason_codes": ["OTHER"], "reasons": ["salary below minimum"]}),
    ]
    assert unit.residence_permits.rows[rp_id].cancellation_reason == FOLLOWED_REJECTION
    assert unit.residence_permits.rows[rp_id].open_key is None


async def test_cancelling_an_issued_work_permit_ends_its_issued_residence_permit(
    steps, handlers, unit
) -> None:
    wp_id = await steps.under_review(handlers)
    rp_id = await steps.lodged_with(handlers, wp_id)
    await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    await handlers.supply_work_permit_materials(
        unit, wp_id, refs("z_or_r_visa_with_entry_stamp"), request_id=RID
    )
    issued = await handlers.issue_work_permit(unit, wp_id, request_id=RID)
    assert issued.app.permit_number is not None
    await handlers.approve_residence_permit(unit, rp_id, request_id=RID)
    rp = await handlers.issue_residence_permit(unit, rp_id, request_id=RID)
    assert rp.app.state is S.ISSUED
    reset(unit)
    await handlers.cancel_work_permit(unit, wp_id, " left the company ", request_id=RID)
    assert unit.outbox == [
        ("ResidencePermitCancelled", rp_id, {"cause": "WORK_PERMIT_CANCELLED", "valid_until": str(TODAY)}),
        ("WorkPermitCancelled", wp_id, {}),
    ]
    assert unit.work_permits.rows[wp_id].cancellation_reason == "left the company"
    assert unit.residence_permits.rows[rp_id].cancellation_reason == FOLLOWED_CANCELLATION
    assert unit.residence_permits.rows[rp_id].state == "CANCELLED"


async def test_issue_takes_the_persons_lifelong_number_once(steps, handlers, unit) -> None:
    wp_id = await steps.under_review(handlers)
    await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    await handlers.supply_work_permit_materials(
        unit, wp_id, refs("z_or_r_visa_with_entry_stamp"), request_id=RID
    )
    reset(unit)
    record = await handlers.issue_work_permit(unit, wp_id, request_id=RID)
    number = record.app.permit_number
    assert number == await unit.permit_numbers.lifelong_work_permit_number("GBR", "E1234567", "310115", None)
    assert unit.outbox == [
        (
            "WorkPermitIssued",
            wp_id,
            {"valid_until": "2019-04-30", "valid_from": "2017-05-01", "permit_number": number},
        )
    ]
    verification = await handlers.verify_permit(unit, number)
    assert verification.kind is d.PermitKind.WORK_PERMIT and verification.state is S.ISSUED


async def test_issue_before_approval_allocates_no_number(steps, handlers, unit) -> None:
    wp_id = await steps.under_review(handlers)
    with pytest.raises(FailedPrecondition) as exc:
        await handlers.issue_work_permit(unit, wp_id, request_id=RID)
    assert exc.value.reason == "ILLEGAL_TRANSITION"
    assert unit.permit_numbers.kinds == {}


async def test_a_deadline_in_a_provisional_year_is_flagged_and_raises_the_alarm(
    steps, policy, alarm, unit
) -> None:
    provisional = d.HolidayCalendar(
        years=frozenset({2017}),
        holidays=frozenset(),
        adjusted_working_days=frozenset(),
        provisional_years=frozenset({2017}),
    )
    handlers = PermitsHandlers(
        dataclasses.replace(policy, calendar=provisional),
        Clock(TODAY),
        alarm,  # type: ignore[arg-type]
    )
    wp_id = await steps.under_review(handlers)
    assert unit.outbox[-1] == (
        "WorkPermitUnderReview",
        wp_id,
        {"decision_due": "2017-05-08", "calendar_provisional": True},
    )
    assert alarm.provisional_calls == [(2017, "work permit decision due")]


# ---- residence permits ----


async def test_a_job_change_replaces_the_held_permit_first(residence_items, steps, handlers, unit) -> None:
    wp_id = await steps.under_review(handlers)
    rp_id = await steps.lodged_with(handlers, wp_id)
    await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    await handlers.approve_residence_permit(unit, rp_id, request_id=RID)
    held = await handlers.issue_residence_permit(unit, rp_id, request_id=RID)
    assert held.app.permit_number is not None
    new = await handlers.create_residence_permit(
        unit, PERSON, wp_id, held.app.permit_number, None, None, refs(*residence_items), request_id=RID
    )
    await handlers.approve_residence_permit(unit, new.app.id, request_id=RID)
    reset(unit)
    issued = await handlers.issue_residence_permit(unit, new.app.id, request_id=RID)
    number = issued.app.permit_number
    assert [t for t, _, _ in unit.outbox] == ["ResidencePermitCancelled", "ResidencePermitIssued"]
    assert unit.outbox[0] == (
        "ResidencePermitCancelled",
        rp_id,
        {"cause": "REPLACED", "valid_until": str(TODAY)},
    )
    assert (
        unit.residence_permits.rows[rp_id].cancellation_reason
        == f"由新居留许可 {number} 取代（变更工作单位）"
    )


async def test_an_approval_before_review_reads_no_work_permit(steps, handlers, unit) -> None:
    wp_id = await steps.under_review(handlers)
    record = await handlers.create_residence_permit(
        unit, PERSON, wp_id, "", TODAY - dt.timedelta(days=5), None, [], request_id=RID
    )
    reset(unit)
    with pytest.raises(FailedPrecondition) as exc:
        await handlers.approve_residence_permit(unit, record.app.id, request_id=RID)
    assert exc.value.reason == "ILLEGAL_TRANSITION"
    assert unit.journal.saved == [] and unit.outbox == []


async def test_requesting_materials_again_clears_the_deadlines(
    residence_items, steps, handlers, unit
) -> None:
    wp_id = await steps.under_review(handlers)
    await handlers.approve_work_permit(unit, wp_id, request_id=RID)
    rp_id = await steps.lodged_with(handlers, wp_id)
    assert unit.residence_permits.rows[rp_id].decision_due is not None
    reset(unit)
    await handlers.request_residence_permit_materials(unit, rp_id, frozenset({"photo"}), request_id=RID)
    row = unit.residence_permits.rows[rp_id]
    assert row.decision_due is None and row.decision_target is None and "photo" not in row.supplied_materials
    assert [m["kind"] for m in row.materials] == [k for k in residence_items if k != "photo"]
    assert unit.outbox == [("ResidencePermitAwaitingMaterials", rp_id, {"missing": "photo"})]
