"""The work-type residence permit (docs/domain.md §4.3–4.4) and verify_permit."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument
from services.permits import domain as d

S = d.PermitState
D = dt.date
ENTRY = D(2017, 4, 25)
DAY = D(2017, 5, 2)  # residence application day


@pytest.fixture
def work_permit(make_work_permit) -> d.WorkPermitApplication:
    """Issued on 2017-04-10, valid 2017-05-01 .. 2019-04-30 (the contract)."""
    return make_work_permit(S.ISSUED)


@pytest.fixture
def make_residence(policy, work_permit, residence_items):
    def make(
        state: d.PermitState = S.SUBMITTED, requested_until: dt.date | None = None
    ) -> d.ResidencePermitApplication:
        app = d.submit_residence_permit(
            "rp-1", work_permit.applicant, work_permit, ENTRY, requested_until, DAY, policy
        ).state
        if state is S.SUBMITTED:
            return app
        if state is S.AWAITING_MATERIALS:
            return app.supply_materials(["photo"], DAY, policy).state
        app = app.supply_materials(residence_items, DAY, policy).state
        if state is S.UNDER_REVIEW:
            return app
        if state in (S.REJECTED, S.CANCELLED):
            if state is S.REJECTED:
                return app.reject(["synthetic"], DAY).state
            return app.cancel(DAY).state
        app = app.approve(work_permit, DAY, policy).state
        if state is S.ISSUED:
            app = app.issue(d.permit_number(2, "310000"), DAY).state
        return app

    return make


# ---- the work permit comes first ----


@pytest.mark.parametrize("wp_state", [S.REJECTED, S.CANCELLED])
def test_refused_without_a_pending_approved_or_issued_work_permit(policy, make_work_permit, wp_state) -> None:
    wp = make_work_permit(wp_state)
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_residence_permit("rp-1", wp.applicant, wp, ENTRY, None, DAY, policy)
    assert exc.value.reason == "WORK_PERMIT_REQUIRED"


@pytest.mark.parametrize("wp_state", [S.SUBMITTED, S.AWAITING_MATERIALS, S.UNDER_REVIEW])
def test_lodged_with_a_pending_work_permit_and_decided_after_it(
    policy, make_work_permit, residence_items, wp_state
) -> None:
    wp = make_work_permit(wp_state)
    submitted = d.submit_residence_permit("rp-1", wp.applicant, wp, ENTRY, None, DAY, policy)
    app = submitted.state
    assert app.awaiting_work_permit and submitted.events[0].payload()["awaiting_work_permit"] is True
    app = app.supply_materials(residence_items, DAY, policy).state
    assert app.state is S.UNDER_REVIEW and app.decision_due is None  # no clock while the work permit waits
    with pytest.raises(FailedPrecondition) as exc:
        app.approve(wp, DAY, policy)
    assert exc.value.reason == "WORK_PERMIT_NOT_YET_APPROVED"
    # Decided after the work permit, on day 43 after entry: the 30 days counted to the application date.
    later = ENTRY + dt.timedelta(days=43)
    approved_wp = make_work_permit(S.APPROVED)
    followed = app.work_permit_approved(later, policy)
    assert followed is not None
    app = followed.state
    assert app.decision_due == later + dt.timedelta(days=15) and not app.awaiting_work_permit
    app = app.approve(approved_wp, later, policy).state
    assert app.state is S.APPROVED and app.fee_yuan is not None


def test_refused_with_no_work_permit_at_all(policy, make_applicant) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_residence_permit("rp-1", make_applicant(), None, ENTRY, None, DAY, policy)
    assert exc.value.reason == "WORK_PERMIT_REQUIRED"


@pytest.mark.parametrize("other", [{"passport_number": "E7654321"}, {"nationality": "USA"}])
def test_refused_with_someone_elses_work_permit(policy, work_permit, make_applicant, other) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_residence_permit("rp-1", make_applicant(**other), work_permit, ENTRY, None, DAY, policy)
    assert exc.value.reason == "WORK_PERMIT_REQUIRED"


@pytest.mark.parametrize("wp_state", [S.APPROVED, S.ISSUED])
def test_accepted_with_an_approved_or_issued_work_permit(policy, make_work_permit, make_applicant, wp_state):
    wp = make_work_permit(wp_state)
    same_person = make_applicant(passport_number="e 1234567")  # written differently, same passport
    app = d.submit_residence_permit("rp-1", same_person, wp, ENTRY, None, DAY, policy).state
    assert app.state is S.SUBMITTED and app.category is wp.category and app.work_permit_id == wp.id


@pytest.mark.parametrize(("days_after_entry", "too_late"), [(0, False), (30, False), (31, True)])
def test_apply_within_30_days_of_entry(policy, work_permit, days_after_entry, too_late) -> None:
    today = ENTRY + dt.timedelta(days=days_after_entry)
    if not too_late:
        d.submit_residence_permit("rp-1", work_permit.applicant, work_permit, ENTRY, None, today, policy)
        return
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_residence_permit("rp-1", work_permit.applicant, work_permit, ENTRY, None, today, policy)
    assert exc.value.reason == "APPLICATION_TOO_LATE"


def test_bad_dates_are_field_violations(policy, work_permit) -> None:
    with pytest.raises(InvalidArgument) as exc:
        d.submit_residence_permit(
            "rp-1", work_permit.applicant, work_permit, DAY + dt.timedelta(days=1), D(2017, 1, 1), DAY, policy
        )
    assert {(v.field, v.reason) for v in exc.value.violations} == {
        ("entry_date", "IN_FUTURE"),
        ("requested_valid_until", "IN_PAST"),
    }


# ---- decision time: 15 calendar days, target 7 working days ----


def test_decision_due_and_target_across_a_holiday(policy, make_work_permit, residence_items) -> None:
    wp = make_work_permit(S.APPROVED, today=D(2017, 9, 1))
    app = d.submit_residence_permit(
        "rp-1", wp.applicant, wp, D(2017, 9, 20), None, D(2017, 9, 29), policy
    ).state
    app = app.supply_materials(residence_items, D(2017, 9, 29), policy).state
    assert app.decision_due == D(2017, 10, 14)  # 15 calendar days
    assert app.decision_target == D(2017, 10, 16)  # 调休 Sat 30 Sep, 国庆/中秋 1–8 Oct, then 9–13 and 16 Oct


def test_target_working_days_are_configurable(policy, make_residence) -> None:
    faster = dataclasses.replace(
        policy, deadlines=dataclasses.replace(policy.deadlines, residence_target_working_days=3)
    )
    app = make_residence(S.AWAITING_MATERIALS)
    app = app.supply_materials(
        [
            "passport_and_visa",
            "rp_application_form",
            "health_certificate",
            "employer_letter",
            "employer_licence_copy",
            "work_permit",
        ],
        DAY,
        faster,
    ).state
    assert app.decision_target == D(2017, 5, 5)


# ---- validity and fee ----


@pytest.mark.parametrize(
    ("requested", "wp_until", "contract_end", "expected_until"),
    [
        (None, D(2019, 4, 30), D(2019, 4, 30), D(2019, 4, 30)),  # the work permit
        (None, None, D(2024, 12, 31), D(2022, 5, 9)),  # work permit only approved: 5 years at most
        (None, None, D(2018, 6, 30), D(2018, 6, 30)),  # … and never beyond the contract
        (None, D(2018, 1, 31), D(2019, 4, 30), D(2018, 1, 31)),  # never beyond the work permit
        (D(2018, 5, 9), D(2019, 4, 30), D(2019, 4, 30), D(2018, 5, 9)),  # as requested
        (D(2017, 8, 7), D(2019, 4, 30), D(2019, 4, 30), D(2017, 8, 7)),  # exactly 90 days
        (D(2017, 8, 6), D(2019, 4, 30), D(2019, 4, 30), None),  # 89 days
        (None, D(2017, 7, 1), D(2019, 4, 30), None),  # the work permit ends too soon
    ],
)
def test_residence_validity(
    policy, make_work_permit, requested, wp_until, contract_end, expected_until
) -> None:
    wp = make_work_permit(S.APPROVED, contract=d.Contract(D(2017, 5, 1), contract_end))
    if wp_until is not None:
        wp = dataclasses.replace(wp, validity=d.Validity(D(2017, 5, 1), wp_until))
    if expected_until is None:
        with pytest.raises(FailedPrecondition) as exc:
            d.residence_validity(D(2017, 5, 10), requested, wp, policy.validity)
        assert exc.value.reason == "VALIDITY_TOO_SHORT"
        return
    validity = d.residence_validity(D(2017, 5, 10), requested, wp, policy.validity)
    assert validity == d.Validity(D(2017, 5, 10), expected_until)


@pytest.mark.parametrize(
    ("valid_until", "fee"),
    [
        (D(2017, 3, 31), 400),  # 90 days
        (D(2017, 12, 30), 400),  # one day short of a year
        (D(2017, 12, 31), 800),  # exactly 1 year
        (D(2019, 12, 30), 800),  # one day short of 3 years
        (D(2019, 12, 31), 1000),  # exactly 3 years
        (D(2021, 12, 31), 1000),  # 5 years
    ],
)
def test_residence_fee_tiers(policy, valid_until, fee) -> None:
    assert d.residence_fee(d.Validity(D(2017, 1, 1), valid_until), policy.residence_fee_tiers) == fee


def test_approval_fixes_validity_and_fee(policy, make_residence, work_permit) -> None:
    approved = make_residence(S.UNDER_REVIEW).approve(work_permit, DAY, policy)
    app = approved.state
    assert app.validity == d.Validity(DAY, D(2019, 4, 30))
    assert app.fee_yuan == 800
    assert approved.events[-1].type == "ResidencePermitApproved"
    assert approved.events[-1].payload() == {
        "valid_until": "2019-04-30",
        "valid_from": "2017-05-02",
        "fee_yuan": "800",
        "fee_fen": 80000,
    }


def test_approval_rechecks_the_work_permit(policy, make_residence, work_permit) -> None:
    app = make_residence(S.UNDER_REVIEW)
    work_permit = work_permit.cancel(DAY).state
    with pytest.raises(FailedPrecondition) as exc:
        app.approve(work_permit, DAY, policy)
    assert exc.value.reason == "WORK_PERMIT_REQUIRED"
    assert app.state is S.UNDER_REVIEW


# ---- states ----

ALLOWED = {
    "approve": {S.UNDER_REVIEW: S.APPROVED},
    "reject": {S.UNDER_REVIEW: S.REJECTED},
    "issue": {S.APPROVED: S.ISSUED},
    "cancel": {
        s: S.CANCELLED for s in (S.SUBMITTED, S.AWAITING_MATERIALS, S.UNDER_REVIEW, S.APPROVED, S.ISSUED)
    },
    "request_materials": {S.UNDER_REVIEW: S.AWAITING_MATERIALS},
}


@pytest.mark.parametrize("action", list(ALLOWED))
@pytest.mark.parametrize("state", list(S))
def test_every_action_from_every_state(policy, make_residence, work_permit, state, action) -> None:
    app = make_residence(state)
    assert app.state is state

    def run() -> d.ResidencePermitApplication:
        match action:
            case "approve":
                return app.approve(work_permit, DAY, policy).state
            case "reject":
                return app.reject(["synthetic"], DAY).state
            case "issue":
                return app.issue(d.permit_number(3, "310000"), DAY).state
            case "cancel":
                return app.cancel(DAY).state
            case "request_materials":
                return app.request_materials(["photo"], DAY).state
        raise AssertionError(action)

    if state in ALLOWED[action]:
        assert run().state is ALLOWED[action][state]
    else:
        with pytest.raises(FailedPrecondition) as exc:
            run()
        assert exc.value.reason == "ILLEGAL_TRANSITION"
        assert app.state is state


# ---- extension: asked at least 30 days before expiry ----


@pytest.fixture
def issued(make_residence) -> d.ResidencePermitApplication:
    app = make_residence(S.ISSUED, requested_until=D(2018, 5, 1))
    assert app.validity == d.Validity(DAY, D(2018, 5, 1))
    return app


@pytest.mark.parametrize(
    ("today", "reason"),
    [
        (D(2018, 4, 1), None),  # 30 days before expiry
        (D(2018, 4, 2), "EXTENSION_TOO_LATE"),  # 29 days
        (D(2018, 5, 1), "EXTENSION_TOO_LATE"),  # the last valid day
        (D(2018, 5, 2), "PERMIT_EXPIRED"),
    ],
)
def test_extension_window(policy, issued, work_permit, today, reason) -> None:
    if reason is None:
        extended = issued.extend(None, work_permit, today, policy)
        assert extended.state.validity == d.Validity(DAY, D(2019, 4, 30))  # capped by the work permit
        assert [e.type for e in extended.events] == ["ResidencePermitExtended"]
        return
    with pytest.raises(FailedPrecondition) as exc:
        issued.extend(None, work_permit, today, policy)
    assert exc.value.reason == reason
    assert issued.validity == d.Validity(DAY, D(2018, 5, 1))


def test_only_issued_permits_are_extended(policy, make_residence, work_permit) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        make_residence(S.APPROVED).extend(None, work_permit, DAY, policy)
    assert exc.value.reason == "PERMIT_NOT_ISSUED"


def test_extension_must_go_beyond_the_current_expiry(policy, issued, work_permit) -> None:
    with pytest.raises(InvalidArgument):
        issued.extend(D(2018, 4, 30), work_permit, D(2018, 1, 2), policy)


def test_extension_needs_the_work_permit(policy, issued, work_permit) -> None:
    work_permit = work_permit.cancel(D(2018, 1, 1)).state
    with pytest.raises(FailedPrecondition) as exc:
        issued.extend(None, work_permit, D(2018, 1, 2), policy)
    assert exc.value.reason == "WORK_PERMIT_REQUIRED"


# ---- verify_permit: valid now, category, validity, nothing personal ----


@pytest.mark.parametrize(
    ("today", "valid_now"),
    [(D(2017, 5, 1), False), (DAY, True), (D(2019, 4, 30), True), (D(2019, 5, 1), False)],
)
def test_verify_residence_permit(make_residence, today, valid_now) -> None:
    result = d.verify_permit(make_residence(S.ISSUED), today)
    assert result.valid_now is valid_now
    assert result.kind is d.PermitKind.RESIDENCE_PERMIT and result.category is d.Category.B
    assert result.validity == d.Validity(DAY, D(2019, 4, 30))


@pytest.mark.parametrize(
    ("state", "valid_now"), [(S.APPROVED, False), (S.ISSUED, True), (S.CANCELLED, False)]
)
def test_verify_work_permit(make_work_permit, state, valid_now) -> None:
    wp = make_work_permit(S.ISSUED if state is S.CANCELLED else state)
    if state is S.CANCELLED:
        wp = wp.cancel(D(2017, 6, 1)).state
    result = d.verify_permit(wp, D(2017, 6, 2))
    assert result.valid_now is valid_now and result.state is state and result.kind is d.PermitKind.WORK_PERMIT


def test_verification_holds_no_personal_data(make_work_permit) -> None:
    assert {f.name for f in dataclasses.fields(d.PermitVerification)} == {
        "kind",
        "valid_now",
        "state",
        "category",
        "validity",
    }
    assert "Testperson" not in repr(d.verify_permit(make_work_permit(S.ISSUED), D(2017, 6, 2)))


def test_the_department_never_asks_for_a_copy_of_its_own_work_permit(policy, work_permit) -> None:
    app = d.submit_residence_permit(
        "rp-1", work_permit.applicant, work_permit, ENTRY, None, DAY, policy
    ).state
    assert "work_permit" in app.supplied_materials
