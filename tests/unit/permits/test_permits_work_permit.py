"""Employers (USCC), work permit validation, business rules, state machine, validity and permit numbers."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from stdnum.cn import uscc

from services.common.errors import FailedPrecondition, InvalidArgument
from services.permits import domain as d

S = d.PermitState
D = dt.date
TODAY = D(2017, 4, 10)
VALID_USCC = "91110000600037341L"


# ---- employers and the unified social credit code ----


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (VALID_USCC, None),
        ("9111 0000 6000 3734 1L", None),  # separators are dropped
        ("91110000600037341l", None),  # upper-cased
        ("91110000600037341M", "BAD_CHECK_CHARACTER"),
        ("91110000600037342L", "BAD_CHECK_CHARACTER"),
        ("A1110000600037341L", "BAD_FORMAT"),
        ("9111000060003734IL", "BAD_FORMAT"),  # I is not in the alphabet
        ("12345", "BAD_LENGTH"),
        ("", "REQUIRED"),
    ],
)
def test_uscc_problem(raw: str, problem: str | None) -> None:
    assert d.uscc_problem(raw) == problem


def test_register_employer_normalises_the_code() -> None:
    employer = d.register_employer("9111 0000 6000 3734 1L", " Synthetic Ltd ", "1 Example Road")
    assert employer.uscc == VALID_USCC and employer.name == "Synthetic Ltd"
    assert employer.status is d.EmployerStatus.ACTIVE


def test_register_employer_reports_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as exc:
        d.register_employer("91110000600037341M", " ", "")
    assert {(v.field, v.reason) for v in exc.value.violations} == {
        ("unified_social_credit_code", "BAD_CHECK_CHARACTER"),
        ("name", "REQUIRED"),
        ("address", "REQUIRED"),
    }


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (d.EmployerStatus.SERIOUS_BAD_RECORD, "EMPLOYER_NOT_ELIGIBLE"),
        (d.EmployerStatus.SUSPENDED, "EMPLOYER_NOT_ACTIVE"),
        (d.EmployerStatus.DEREGISTERED, "EMPLOYER_NOT_ACTIVE"),
    ],
)
def test_ineligible_employers_cannot_sponsor(policy, employer, make_request, status, reason) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_work_permit("wp-1", make_request(), employer.with_status(status), TODAY, policy)
    assert exc.value.reason == reason


def test_request_must_name_the_sponsoring_employer(policy, make_request) -> None:
    other_body = "91310115MA1FL0000"
    other = d.register_employer(other_body + uscc.calc_check_digit(other_body), "Other Ltd", "2 Example Road")
    with pytest.raises(InvalidArgument) as exc:
        d.submit_work_permit("wp-1", make_request(), other, TODAY, policy)
    assert exc.value.violations[0].field == "employer_uscc"


# ---- field validation: every problem at once ----


def test_every_bad_field_is_reported_at_once(policy, employer, make_request, make_applicant) -> None:
    bad = make_request(
        applicant=make_applicant(
            passport_number="??", nationality="XXX", surname="", given_names=" ", birth_date=D(2030, 1, 1)
        ),
        employer_uscc="91110000600037341M",
        position="",
        work_region="31",
        contract=d.Contract(D(2017, 5, 1), D(2017, 4, 30)),
        annual_salary=-1,
        experience_years=-1,
        hsk_level=7,
        months_per_year_in_china=13,
        provincial_bonus=-2,
    )
    with pytest.raises(InvalidArgument) as exc:
        d.submit_work_permit("wp-1", bad, employer, TODAY, policy)
    assert {(v.field, v.reason) for v in exc.value.violations} == {
        ("applicant.passport_number", "BAD_FORMAT"),
        ("applicant.nationality", "UNKNOWN_COUNTRY_CODE"),
        ("applicant.surname", "REQUIRED"),
        ("applicant.given_names", "REQUIRED"),
        ("applicant.birth_date", "IN_FUTURE"),
        ("employer_uscc", "BAD_CHECK_CHARACTER"),
        ("position", "REQUIRED"),
        ("work_region", "BAD_FORMAT"),
        ("contract.end_date", "END_BEFORE_START"),
        ("annual_salary", "NEGATIVE"),
        ("experience_years", "NEGATIVE"),
        ("chinese.hsk_level", "OUT_OF_RANGE"),
        ("months_per_year_in_china", "OUT_OF_RANGE"),
        ("provincial_bonus", "NEGATIVE"),
    }


@pytest.mark.parametrize(
    ("applicant_overrides", "field", "reason"),
    [
        ({"passport_number": ""}, "applicant.passport_number", "REQUIRED"),
        ({"passport_number": "ABCDEFG"}, "applicant.passport_number", "BAD_FORMAT"),
        ({"nationality": "gbr"}, "applicant.nationality", "UNKNOWN_COUNTRY_CODE"),
        ({"nationality": "CHN"}, "applicant.nationality", "NOT_A_FOREIGN_NATIONALITY"),
    ],
)
def test_applicant_fields(policy, employer, make_request, make_applicant, applicant_overrides, field, reason):
    with pytest.raises(InvalidArgument) as exc:
        d.submit_work_permit(
            "wp-1", make_request(applicant=make_applicant(**applicant_overrides)), employer, TODAY, policy
        )
    assert [(v.field, v.reason) for v in exc.value.violations] == [(field, reason)]


def test_one_day_contract_and_zero_salary_are_valid(policy, employer, make_request) -> None:
    req = make_request(contract=d.Contract(D(2017, 5, 1), D(2017, 5, 1)), annual_salary=0)
    assert d.submit_work_permit("wp-1", req, employer, TODAY, policy).state.state is S.SUBMITTED


def test_passport_number_is_normalised(make_work_permit, make_applicant) -> None:
    app = make_work_permit(applicant=make_applicant(passport_number="e12 34567"))
    assert app.applicant.passport_number == "E1234567"


# Age < 18 is a business rule (FAILED_PRECONDITION APPLICANT_UNDER_AGE), checked once the fields are valid.
@pytest.mark.parametrize(
    ("birth_date", "refused"), [(D(1999, 4, 10), False), (D(1999, 4, 11), True), (D(2005, 1, 1), True)]
)
def test_applicant_must_be_18(policy, employer, make_request, make_applicant, birth_date, refused) -> None:
    req = make_request(applicant=make_applicant(birth_date=birth_date))
    if not refused:
        assert d.submit_work_permit("wp-1", req, employer, TODAY, policy).state.state is S.SUBMITTED
        return
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_work_permit("wp-1", req, employer, TODAY, policy)
    assert exc.value.reason == "APPLICANT_UNDER_AGE"


def test_no_points_table_before_the_first_version(policy, employer, make_request) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        d.submit_work_permit("wp-1", make_request(), employer, D(2016, 9, 30), policy)
    assert exc.value.reason == "NO_POINTS_TABLE"


def test_submission_fixes_points_and_category(make_work_permit) -> None:
    app = make_work_permit()
    assert app.points.total == 15 + 10 + 8 + 7  # age 31, bachelor, 100k, 4 years
    assert app.category is d.Category.B and app.category_grounds == ("DEGREE_AND_EXPERIENCE",)
    assert app.supplied_materials == frozenset({"employer_registration"})
    assert [e.type for e in make_work_permit.events] == ["WorkPermitSubmitted"]


# ---- state machine: every action from every state ----

ACTIONS = ("supply_materials", "request_materials", "approve", "reject", "issue", "cancel", "extend_review")
ALLOWED = {
    # action: states it is allowed from → resulting state
    "supply_materials": {
        S.SUBMITTED: S.UNDER_REVIEW,
        S.AWAITING_MATERIALS: S.UNDER_REVIEW,
        S.UNDER_REVIEW: S.UNDER_REVIEW,
        S.APPROVED: S.APPROVED,
    },
    "request_materials": {S.UNDER_REVIEW: S.AWAITING_MATERIALS},
    "approve": {S.UNDER_REVIEW: S.APPROVED},
    "reject": {S.UNDER_REVIEW: S.REJECTED},
    "issue": {S.APPROVED: S.ISSUED},
    "cancel": {
        s: S.CANCELLED for s in (S.SUBMITTED, S.AWAITING_MATERIALS, S.UNDER_REVIEW, S.APPROVED, S.ISSUED)
    },
    "extend_review": {S.UNDER_REVIEW: S.UNDER_REVIEW},
}


def act(app: d.WorkPermitApplication, action: str, policy, notice_items) -> d.WorkPermitApplication:
    day = app.submitted_on
    match action:
        case "supply_materials":
            return app.supply_materials(notice_items, day, policy).state
        case "request_materials":
            return app.request_materials(["photo"], day).state
        case "approve":
            return app.approve(day).state
        case "reject":
            return app.reject(["synthetic reason"], day).state
        case "issue":
            if app.state is S.APPROVED:
                app = app.supply_after_entry_materials(["residence_permit"], day, policy).state
            return app.issue(d.permit_number(1, "310000"), day, policy).state
        case "cancel":
            return app.cancel(day).state
        case "extend_review":
            return app.extend_review(day, policy).state
    raise AssertionError(action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", list(S))
def test_every_action_from_every_state(make_work_permit, policy, notice_items, state, action) -> None:
    app = make_work_permit(state)
    assert app.state is state
    if state in ALLOWED[action]:
        assert act(app, action, policy, notice_items).state is ALLOWED[action][state]
    else:
        with pytest.raises(FailedPrecondition) as exc:
            act(app, action, policy, notice_items)
        assert exc.value.reason == "ILLEGAL_TRANSITION"
        assert app.state is state


def test_transition_table_matches_the_brief() -> None:
    assert d.TRANSITIONS[S.SUBMITTED] == {S.AWAITING_MATERIALS, S.UNDER_REVIEW, S.CANCELLED}
    assert d.TRANSITIONS[S.UNDER_REVIEW] == {S.AWAITING_MATERIALS, S.APPROVED, S.REJECTED, S.CANCELLED}
    assert d.TRANSITIONS[S.REJECTED] == d.TRANSITIONS[S.CANCELLED] == frozenset()


def test_rejection_needs_a_reason_and_keeps_them(make_work_permit) -> None:
    app = make_work_permit(S.UNDER_REVIEW)
    with pytest.raises(InvalidArgument) as exc:
        app.reject([" "], TODAY)
    assert exc.value.violations[0].field == "reasons"
    assert app.state is S.UNDER_REVIEW
    app = app.reject(["degree not authenticated", "salary below minimum wage"], TODAY).state
    assert app.rejection_reasons == ("degree not authenticated", "salary below minimum wage")


def test_the_happy_path_emits_events_in_order(make_work_permit) -> None:
    make_work_permit(S.ISSUED)
    events = make_work_permit.events
    assert [e.type for e in events] == [
        "WorkPermitSubmitted",
        "WorkPermitUnderReview",
        "WorkPermitApproved",
        "WorkPermitIssued",
    ]
    assert all(e.application_id == "wp-1" for e in events)
    for event in events:  # no personal data in the outbox
        assert "E1234567" not in repr(event) and "Testperson" not in repr(event)


def test_issue_needs_the_after_entry_materials(make_work_permit, policy) -> None:
    app = make_work_permit(S.APPROVED)
    with pytest.raises(FailedPrecondition) as exc:
        app.issue(d.permit_number(1, "310000"), TODAY, policy)
    assert exc.value.reason == "MATERIALS_INCOMPLETE"
    assert "z_or_r_visa_with_entry_stamp" in exc.value.message


def test_issue_refuses_a_malformed_number(make_work_permit, policy) -> None:
    app = make_work_permit(S.APPROVED)
    app = app.supply_after_entry_materials(["residence_permit"], TODAY, policy).state
    with pytest.raises(InvalidArgument):
        app.issue("310000000000000013", TODAY, policy)
    assert app.state is S.APPROVED


# ---- validity and permit numbers ----


@pytest.mark.parametrize(
    ("issued_on", "start", "end", "valid_from", "valid_until"),
    [
        (D(2017, 4, 20), D(2017, 5, 1), D(2019, 4, 30), D(2017, 5, 1), D(2019, 4, 30)),  # the contract
        (D(2017, 6, 1), D(2017, 5, 1), D(2019, 4, 30), D(2017, 6, 1), D(2019, 4, 30)),  # started already
        (D(2017, 4, 20), D(2017, 5, 1), D(2024, 4, 30), D(2017, 5, 1), D(2022, 4, 30)),  # 5 years at most
        (D(2017, 4, 20), D(2017, 5, 1), D(2022, 4, 30), D(2017, 5, 1), D(2022, 4, 30)),  # exactly 5 years
    ],
)
def test_work_permit_validity(policy, issued_on, start, end, valid_from, valid_until) -> None:
    validity = d.work_permit_validity(issued_on, d.Contract(start, end), policy.validity)
    assert validity == d.Validity(valid_from, valid_until)


def test_contract_ended_before_issue(policy) -> None:
    with pytest.raises(FailedPrecondition) as exc:
        d.work_permit_validity(D(2017, 5, 2), d.Contract(D(2016, 5, 1), D(2017, 5, 1)), policy.validity)
    assert exc.value.reason == "CONTRACT_ENDED"


def test_issued_permit_carries_number_and_validity(make_work_permit) -> None:
    app = make_work_permit(S.ISSUED)
    assert app.permit_number == "310000000000000012"
    assert app.validity == d.Validity(D(2017, 5, 1), D(2019, 4, 30))


@pytest.mark.parametrize(
    ("sequence", "region", "number"),
    [(1, "310000", "310000000000000012"), (99_999_999_999, "110000", None)],
)
def test_permit_number_format(sequence, region, number) -> None:
    got = d.permit_number(sequence, region)
    assert len(got) == 18 and got.startswith(region) and d.permit_number_problem(got) is None
    if number:
        assert got == number
    assert d.permit_number(sequence, region) == got  # deterministic


@pytest.mark.parametrize(
    ("number", "problem"),
    [("310000000000000013", "BAD_CHECK_CHARACTER"), ("31000000000000001", "BAD_FORMAT"), ("", "BAD_FORMAT")],
)
def test_permit_number_problem(number, problem) -> None:
    assert d.permit_number_problem(number) == problem


@pytest.mark.parametrize(("sequence", "region"), [(0, "310000"), (10**11, "310000"), (1, "31")])
def test_permit_number_refuses_bad_input(sequence, region) -> None:
    with pytest.raises(ValueError):
        d.permit_number(sequence, region)


def test_work_permit_request_is_frozen(make_request) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_request().annual_salary = 1  # type: ignore[misc]
