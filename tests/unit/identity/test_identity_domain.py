"""Identity rules (docs/domain.md §2) against the packaged policy."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date

import pytest

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from services.common.idnumber import build_id_number
from services.identity import domain as d
from services.identity.domain import (
    Action,
    ApplicationKind,
    ApplicationState,
    Card,
    CardStatus,
    FeeReduction,
    RenewalReason,
    ResidencePermit,
)
from services.identity.policy import default_policy

POLICY = default_policy()
BIRTH = date(1990, 6, 15)
ID_NUMBER = build_id_number("420102", BIRTH, 11)
PERMIT = ResidencePermit("SH-TEST-1", date(2018, 1, 1))


class _Refusal:
    """`with _Refusal("X"):` expects FailedPrecondition with reason X."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        assert isinstance(exc, FailedPrecondition), f"expected FailedPrecondition({self.reason}), got {exc!r}"
        assert exc.reason == self.reason
        assert exc.reason in d.REFUSAL_REASONS
        return True


# -- validity (§2.1): every row of the table, at its edges ------------------------------------------


@pytest.mark.parametrize(
    ("age", "years"),
    [(0, 5), (15, 5), (16, 10), (25, 10), (26, 20), (45, 20), (46, None), (90, None)],
)
def test_validity_table(age: int, years: int | None) -> None:
    assert d.validity_years(age, POLICY) == years


def test_validity_refuses_negative_age() -> None:
    with pytest.raises(InvalidArgument):
        d.validity_years(-1, POLICY)


def test_validity_runs_from_issue_date_to_same_day() -> None:
    # issued 2005-03-27 to a 30-year-old: 20 years, to 2025-03-27 (docs/domain.md §2.1 example)
    assert d.card_validity(date(1975, 1, 1), date(2005, 3, 1), date(2005, 3, 27), POLICY) == (
        date(2005, 3, 27),
        date(2025, 3, 27),
    )
    assert d.card_validity(date(1950, 1, 1), date(2005, 3, 1), date(2005, 3, 27), POLICY) == (
        date(2005, 3, 27),
        None,
    )


def test_validity_age_basis_is_configurable() -> None:
    # turns 16 between application and issue: 5 years on the application date, 10 on the issue date
    birth, applied, issued = date(2000, 7, 1), date(2016, 6, 20), date(2016, 7, 10)
    assert d.card_validity(birth, applied, issued, POLICY)[1] == date(2021, 7, 10)
    on_issue = replace(POLICY, validity=replace(POLICY.validity, age_basis=d.AgeBasis.ISSUE_DATE))
    assert d.card_validity(birth, applied, issued, on_issue)[1] == date(2026, 7, 10)


def test_validity_of_a_29_february_issue_and_birthday() -> None:
    # born 29 Feb 1980: in 2006 (not leap) the birthday counts as 1 March, so 25 on 28 Feb, 26 on 1 Mar
    born = date(1980, 2, 29)
    assert d.card_validity(born, date(2006, 2, 28), date(2006, 3, 10), POLICY)[1] == date(2016, 3, 10)
    assert d.card_validity(born, date(2006, 3, 1), date(2006, 3, 10), POLICY)[1] == date(2026, 3, 10)


@pytest.mark.parametrize(
    ("valid_until", "applied", "months", "allowed"),
    [
        (date(2016, 12, 31), date(2016, 9, 29), 3, False),
        (date(2016, 12, 31), date(2016, 9, 30), 3, True),  # 31 Sep does not exist: opens on 30 Sep
        (date(2016, 12, 31), date(2017, 3, 1), 3, True),  # after expiry
        (date(2016, 12, 31), date(2016, 7, 1), 6, True),
        (date(2016, 12, 31), date(2016, 6, 29), 6, False),
    ],
)
def test_early_renewal_window(valid_until: date, applied: date, months: int, allowed: bool) -> None:
    policy = replace(POLICY, validity=replace(POLICY.validity, early_renewal_months=months))
    if allowed:
        d.check_expiry_renewal(valid_until, applied, policy)
    else:
        with _Refusal(d.TOO_EARLY_FOR_RENEWAL):
            d.check_expiry_renewal(valid_until, applied, policy)


def test_long_term_card_is_not_renewed_for_expiry() -> None:
    with _Refusal(d.CARD_DOES_NOT_EXPIRE):
        d.check_expiry_renewal(None, date(2016, 1, 1), POLICY)


# -- fees (§2.4): every row and every reduction ------------------------------------------------------

FEE_ROWS = [
    ("FIRST_ISSUE", 2000),
    ("RENEWAL.EXPIRY", 2000),
    ("RENEWAL.NAME_CHANGE", 2000),
    ("RENEWAL.CORRECTION", 2000),
    ("RENEWAL.NEW_GENERATION", 2000),
    ("RENEWAL.SERIOUS_DAMAGE", 4000),
    ("REPLACEMENT", 4000),
]
REDUCED = {
    "FIRST_ISSUE",
    "RENEWAL.EXPIRY",
    "RENEWAL.NAME_CHANGE",
    "RENEWAL.CORRECTION",
    "RENEWAL.NEW_GENERATION",
}


def test_fee_rows_cover_every_case() -> None:
    assert {case for case, _ in FEE_ROWS} == set(d.ALL_FEE_CASES)


@pytest.mark.parametrize(("case", "base"), FEE_ROWS)
@pytest.mark.parametrize(
    ("reduction", "percent"),
    [
        (FeeReduction.NONE, 100),
        (FeeReduction.MINIMUM_LIVING_ALLOWANCE, 0),
        (FeeReduction.ENTITLED_GROUP, 0),
        (FeeReduction.HARDSHIP, 50),
    ],
)
def test_fee_table(case: str, base: int, reduction: FeeReduction, percent: int) -> None:
    if reduction is FeeReduction.NONE or case in REDUCED:
        assert d.fee_fen(case, reduction, POLICY) == base * percent // 100
    else:
        with _Refusal(d.FEE_REDUCTION_NOT_APPLICABLE):
            d.fee_fen(case, reduction, POLICY)


def test_temporary_card_fee_row() -> None:
    assert POLICY.fees.fen[d.TEMPORARY_CARD] == 1000


def test_fee_case_keys() -> None:
    assert d.fee_case(ApplicationKind.FIRST_ISSUE) == "FIRST_ISSUE"
    assert d.fee_case(ApplicationKind.RENEWAL, RenewalReason.SERIOUS_DAMAGE) == "RENEWAL.SERIOUS_DAMAGE"
    with _Refusal(d.RENEWAL_REASON_REQUIRED):
        d.fee_case(ApplicationKind.RENEWAL)
    with pytest.raises(InvalidArgument):
        d.fee_case(ApplicationKind.REPLACEMENT, RenewalReason.EXPIRY)


# -- deadlines (§2.5) and materials -----------------------------------------------------------------


def test_statutory_deadline() -> None:
    assert d.statutory_deadline(date(2016, 7, 1), POLICY) == date(2016, 8, 30)
    assert d.statutory_deadline(date(2016, 7, 1), POLICY, remote_area=True) == date(2016, 9, 29)


@pytest.mark.parametrize("case", d.ALL_FEE_CASES)
def test_materials_local_and_cross_province(case: str) -> None:
    local = d.required_materials(case, POLICY)
    assert {"APPLICATION_FORM", "HOUSEHOLD_REGISTER", "FINGERPRINTS"} <= set(local)
    if case == "FIRST_ISSUE":
        assert "GUARDIAN_PRESENT" in d.required_materials(case, POLICY, under_16=True)
        return
    cross = d.required_materials(case, POLICY, cross_province=True)
    assert {"CROSS_PROVINCE_FORM", "RESIDENCE_PERMIT", "FINGERPRINTS"} <= set(cross)
    assert ("OLD_CARD" in cross) == case.startswith("RENEWAL")


# -- cross-province acceptance (§2.7-2.8): every roll-out row ---------------------------------------

ROLLOUT_ROWS = [
    (date(2016, 7, 1), {"12", "36", "42"}),
    (date(2016, 9, 1), {"11", "13", "21", "22", "23", "32", "44", "46", "50", "61"}),
    (
        date(2016, 12, 26),
        {
            "14",
            "15",
            "33",
            "34",
            "35",
            "37",
            "41",
            "43",
            "45",
            "51",
            "52",
            "53",
            "54",
            "62",
            "63",
            "64",
            "65",
        },
    ),
]


def test_rollout_rows_cover_every_other_province() -> None:
    everyone = set().union(*(provinces for _, provinces in ROLLOUT_ROWS))
    assert everyone == POLICY.mainland_province_codes - {"31"}
    assert sum(len(p) for _, p in ROLLOUT_ROWS[:2]) == 13


@pytest.mark.parametrize(("effective", "provinces"), ROLLOUT_ROWS)
def test_rollout_table(effective: date, provinces: set[str]) -> None:
    day_before = date.fromordinal(effective.toordinal() - 1)
    for code in sorted(provinces):
        assert not d.province_accepted(code, day_before, POLICY), code
        assert d.province_accepted(code, effective, POLICY), code
        with _Refusal(d.PROVINCE_NOT_YET_ACCEPTED):
            d.assess_cross_province(ApplicationKind.RENEWAL, code, day_before, PERMIT, POLICY)
        decision = d.assess_cross_province(ApplicationKind.REPLACEMENT, code, effective, PERMIT, POLICY)
        assert decision.hukou_province_code == code
        assert decision.acceptance_province_code == "31"


def test_postal_delivery_and_minorities_from_2017_04_26() -> None:
    before, on = date(2017, 4, 25), date(2017, 4, 26)
    assert not d.assess_cross_province(ApplicationKind.RENEWAL, "42", before, PERMIT, POLICY).postal_delivery
    assert d.assess_cross_province(ApplicationKind.RENEWAL, "42", on, PERMIT, POLICY).postal_delivery
    with _Refusal(d.ETHNIC_MINORITY_NOT_YET_ACCEPTED):
        d.assess_cross_province(ApplicationKind.RENEWAL, "42", before, PERMIT, POLICY, ethnic_minority=True)
    d.assess_cross_province(ApplicationKind.RENEWAL, "42", on, PERMIT, POLICY, ethnic_minority=True)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"hukou_province_code": "31"}, d.NOT_CROSS_PROVINCE),
        ({"kind": ApplicationKind.FIRST_ISSUE}, d.FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE),
        ({"application_date": date(2016, 6, 30)}, d.PROVINCE_NOT_YET_ACCEPTED),
        ({"residence_permit": None}, d.RESIDENCE_PERMIT_REQUIRED),
        ({"residence_permit": ResidencePermit("SH-TEST-2", date(2016, 7, 31))}, d.RESIDENCE_PERMIT_EXPIRED),
        ({"identity_confirmed": False}, d.IDENTITY_NOT_CONFIRMED),
        ({"bad_credit_record": True}, d.BAD_CREDIT_RECORD),
    ],
)
def test_cross_province_refusals(kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {
        "kind": ApplicationKind.RENEWAL,
        "hukou_province_code": "42",
        "application_date": date(2016, 8, 1),
        "residence_permit": PERMIT,
        "policy": POLICY,
    }
    args.update(kwargs)
    with _Refusal(reason):
        d.assess_cross_province(**args)  # type: ignore[arg-type]


def test_permit_valid_on_its_last_day() -> None:
    permit = ResidencePermit("SH-TEST-3", date(2016, 8, 1))
    d.assess_cross_province(ApplicationKind.RENEWAL, "42", date(2016, 8, 1), permit, POLICY)


def test_kind_excluded_by_policy_has_its_own_reason() -> None:
    policy = replace(
        POLICY, cross_province=replace(POLICY.cross_province, kinds=frozenset({ApplicationKind.RENEWAL}))
    )
    with _Refusal(d.KIND_NOT_ACCEPTED_CROSS_PROVINCE):
        d.assess_cross_province(ApplicationKind.REPLACEMENT, "42", date(2016, 8, 1), PERMIT, policy)


@pytest.mark.parametrize("code", ["71", "81", "99", "3", ""])
def test_unknown_hukou_province_is_invalid_argument(code: str) -> None:
    with pytest.raises(InvalidArgument):
        d.assess_cross_province(ApplicationKind.RENEWAL, code, date(2017, 1, 1), PERMIT, POLICY)


# -- the state machine -------------------------------------------------------------------------------

LEGAL = [
    (ApplicationState.SUBMITTED, Action.ACCEPT, ApplicationState.ACCEPTED),
    (ApplicationState.SUBMITTED, Action.CANCEL, ApplicationState.CANCELLED),
    (ApplicationState.ACCEPTED, Action.APPROVE, ApplicationState.APPROVED),
    (ApplicationState.ACCEPTED, Action.REJECT, ApplicationState.REJECTED),
    (ApplicationState.ACCEPTED, Action.CANCEL, ApplicationState.CANCELLED),
    (ApplicationState.APPROVED, Action.MARK_PRODUCED, ApplicationState.CARD_PRODUCED),
    (ApplicationState.CARD_PRODUCED, Action.MARK_READY, ApplicationState.READY_FOR_PICKUP),
    (ApplicationState.READY_FOR_PICKUP, Action.ISSUE, ApplicationState.ISSUED),
]
ILLEGAL = [
    (s, a)
    for s, a in itertools.product(ApplicationState, Action)
    if (s, a) not in {(s2, a2) for s2, a2, _ in LEGAL}
]


@pytest.mark.parametrize(("state", "action", "after"), LEGAL)
def test_legal_transitions(state: ApplicationState, action: Action, after: ApplicationState) -> None:
    assert d.next_state(state, action) is after


def test_legal_list_is_the_whole_table() -> None:
    assert {(s, a): t for s, a, t in LEGAL} == dict(d.TRANSITIONS)


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_illegal_transitions(state: ApplicationState, action: Action) -> None:
    with _Refusal(d.ILLEGAL_TRANSITION):
        d.next_state(state, action)


def test_final_states_have_no_way_out() -> None:
    final = {ApplicationState.REJECTED, ApplicationState.ISSUED, ApplicationState.CANCELLED}
    assert final == d.FINAL_STATES
    assert not [key for key in d.TRANSITIONS if key[0] in final]


# -- applications ------------------------------------------------------------------------------------


def _apply(**overrides: object) -> d.CardApplication:
    args: dict[str, object] = {
        "id": "app-1",
        "id_number": ID_NUMBER,
        "name": "测试",
        "birth_date": BIRTH,
        "kind": ApplicationKind.RENEWAL,
        "renewal_reason": RenewalReason.EXPIRY,
        "hukou_province_code": "42",
        "hukou_region_code": "420102",
        "accepting_region_code": "310104",
        "application_date": date(2016, 8, 1),
        "fee_reduction": FeeReduction.NONE,
        "policy": POLICY,
        "residence_permit": PERMIT,
    }
    args.update(overrides)
    return d.new_application(**args)  # type: ignore[arg-type]


def test_cross_province_renewal_application() -> None:
    app = _apply()
    assert app.cross_province
    assert app.state is ApplicationState.SUBMITTED
    assert app.fee_fen == 2000
    assert app.statutory_deadline == date(2016, 9, 30)
    assert "CROSS_PROVINCE_FORM" in app.required_materials


def test_cross_province_gets_no_remote_extension() -> None:
    assert _apply(remote_area=True).statutory_deadline == date(2016, 9, 30)
    local = _apply(hukou_province_code="31", hukou_region_code="310104", remote_area=True)
    assert not local.cross_province
    assert local.statutory_deadline == date(2016, 10, 30)


def test_local_first_issue_under_16_with_allowance() -> None:
    app = _apply(
        kind=ApplicationKind.FIRST_ISSUE,
        renewal_reason=None,
        birth_date=date(2006, 1, 1),
        hukou_province_code="31",
        hukou_region_code="310104",
        fee_reduction=FeeReduction.MINIMUM_LIVING_ALLOWANCE,
        residence_permit=None,
    )
    assert app.fee_fen == 0
    assert "GUARDIAN_PRESENT" in app.required_materials


def test_cross_province_first_issue_refused() -> None:
    with _Refusal(d.FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE):
        _apply(kind=ApplicationKind.FIRST_ISSUE, renewal_reason=None)


def test_one_open_application_per_person() -> None:
    open_app = _apply()
    with pytest.raises(AlreadyExists):
        _apply(id="app-2", existing=[open_app])
    closed = open_app.cancel("changed mind", date(2016, 8, 2))
    assert _apply(id="app-2", existing=[closed]).id == "app-2"


def test_expiry_renewal_too_early() -> None:
    card = Card("C1", ID_NUMBER, date(2006, 12, 1), date(2016, 12, 1))
    with _Refusal(d.TOO_EARLY_FOR_RENEWAL):
        _apply(current_card=card, application_date=date(2016, 8, 31))
    assert _apply(current_card=card, application_date=date(2016, 9, 1)).state is ApplicationState.SUBMITTED


def test_renewal_issue_needs_old_card() -> None:
    app = _apply().accept(date(2016, 8, 1)).approve(date(2016, 8, 2))
    app = app.mark_produced("C2", date(2016, 8, 10)).mark_ready(date(2016, 8, 11))
    with _Refusal(d.OLD_CARD_NOT_SURRENDERED):
        app.issue(date(2016, 8, 12), old_card_surrendered=False)
    issued = app.issue(date(2016, 8, 12), old_card_surrendered=True)
    assert issued.state is ApplicationState.ISSUED
    assert [s for s, _ in issued.history] == [
        ApplicationState.SUBMITTED,
        ApplicationState.ACCEPTED,
        ApplicationState.APPROVED,
        ApplicationState.CARD_PRODUCED,
        ApplicationState.READY_FOR_PICKUP,
        ApplicationState.ISSUED,
    ]


def test_reject_needs_a_reason_and_cancel_after_approval_is_illegal() -> None:
    accepted = _apply().accept(date(2016, 8, 1))
    with pytest.raises(InvalidArgument):
        accepted.reject(" ", date(2016, 8, 2))
    assert accepted.reject("photo unusable", date(2016, 8, 2)).rejection_reason == "photo unusable"
    with _Refusal(d.ILLEGAL_TRANSITION):
        accepted.approve(date(2016, 8, 2)).cancel("too late", date(2016, 8, 3))


# -- card register, loss, lost-and-found: the issue's lifecycle ------------------------------------


def test_verify() -> None:
    card = Card("C1", ID_NUMBER, date(2006, 12, 1), date(2016, 12, 1))
    assert d.verify(card, date(2016, 12, 1)) == d.CardVerification(True, "VALID")
    assert d.verify(card, date(2016, 12, 2)) == d.CardVerification(False, "EXPIRED")
    assert d.verify(card, date(2006, 11, 30)) == d.CardVerification(False, "NOT_YET_VALID")
    assert d.verify(replace(card, valid_until=None), date(2090, 1, 1)).valid
    for status in (
        CardStatus.REPORTED_LOST,
        CardStatus.SUPERSEDED,
        CardStatus.INVALIDATED,
        CardStatus.EXPIRED,
    ):
        assert d.verify(replace(card, status=status), date(2010, 1, 1)) == d.CardVerification(
            False, status.value
        )
    assert d.mark_expired(card, date(2016, 12, 2)).status is CardStatus.EXPIRED
    assert d.mark_expired(card, date(2016, 12, 1)).status is CardStatus.VALID
    assert d.invalidate(card).status is CardStatus.INVALIDATED


def _through(app: d.CardApplication, card_number: str, on: date) -> d.CardApplication:
    return app.accept(on).approve(on).mark_produced(card_number, on).mark_ready(on)


def test_lifecycle_first_issue_loss_replacement_found_card_destroyed() -> None:
    birth = date(2000, 1, 10)
    id_number = build_id_number("310104", birth, 12)
    local = {"hukou_province_code": "31", "hukou_region_code": "310104", "accepting_region_code": "310104"}
    first = _apply(
        id="a1",
        id_number=id_number,
        birth_date=birth,
        kind=ApplicationKind.FIRST_ISSUE,
        renewal_reason=None,
        **local,
    )
    first = _through(first, "CARD-1", date(2016, 8, 5))
    first, card1, previous = d.issue_card(
        first, birth, date(2016, 8, 10), POLICY, previous_card=None, old_card_surrendered=False
    )
    assert previous is None
    assert (card1.valid_from, card1.valid_until) == (
        date(2016, 8, 10),
        date(2026, 8, 10),
    )  # aged 16: 10 years
    assert d.verify(card1, date(2016, 9, 1)).valid

    lost, report = d.report_lost(card1, "440106", "310104", date(2016, 9, 1))
    assert not report.inside_hukou_area
    assert d.verify(lost, date(2016, 9, 1)) == d.CardVerification(False, "REPORTED_LOST")
    with _Refusal(d.CARD_ALREADY_REPORTED_LOST):
        d.report_lost(lost, "310104", "310104", date(2016, 9, 2))

    replacement = _apply(
        id="a2",
        id_number=id_number,
        birth_date=birth,
        kind=ApplicationKind.REPLACEMENT,
        renewal_reason=None,
        application_date=date(2016, 9, 2),
        existing=[first],
        **local,
    )
    assert replacement.fee_fen == 4000
    replacement = _through(replacement, "CARD-2", date(2016, 9, 5))
    replacement, card2, old = d.issue_card(
        replacement, birth, date(2016, 9, 10), POLICY, previous_card=lost, old_card_surrendered=False
    )
    assert old is not None and old.status is CardStatus.REPORTED_LOST  # still refused by checkers
    assert card2.valid_until == date(2026, 9, 10)

    found = d.register_found_card(
        id="f1",
        card=old,
        owner_current_card=card2,
        station_region_code="310101",
        found_place="a bus",
        found_on=date(2016, 9, 20),
        registered_on=date(2016, 9, 21),
    )
    assert found.status is d.FoundCardStatus.DESTROYED
    assert not found.notify_owner
    with _Refusal(d.FOUND_CARD_NOT_CLAIMABLE):
        d.claim_found_card(found, id_number, identity_confirmed=True, photo_ref="p", on=date(2016, 9, 22))


def test_renewal_supersedes_the_old_card() -> None:
    old = Card("C1", ID_NUMBER, date(2006, 12, 1), date(2016, 12, 1))
    app = _through(_apply(current_card=old, application_date=date(2016, 10, 1)), "C2", date(2016, 10, 2))
    _, new, previous = d.issue_card(
        app, BIRTH, date(2016, 10, 20), POLICY, previous_card=old, old_card_surrendered=True
    )
    assert previous is not None and previous.status is CardStatus.SUPERSEDED
    assert new.valid_until == date(2036, 10, 20)  # aged 26 on the application date: 20 years


def test_found_card_waiting_for_owner_and_claim() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.REPORTED_LOST)
    found = d.register_found_card(
        id="f2",
        card=card,
        owner_current_card=card,
        station_region_code="310101",
        found_place="a park",
        found_on=date(2016, 9, 20),
        registered_on=date(2016, 9, 20),
    )
    assert found.status is d.FoundCardStatus.AWAITING_OWNER
    assert found.notify_owner
    other = build_id_number("310104", date(1991, 1, 1), 13)
    with _Refusal(d.IDENTITY_NOT_CONFIRMED):
        d.claim_found_card(found, other, identity_confirmed=True, photo_ref="p", on=date(2016, 9, 21))
    with _Refusal(d.IDENTITY_NOT_CONFIRMED):
        d.claim_found_card(found, ID_NUMBER, identity_confirmed=False, photo_ref="p", on=date(2016, 9, 21))
    with pytest.raises(InvalidArgument):
        d.claim_found_card(found, ID_NUMBER, identity_confirmed=True, photo_ref="", on=date(2016, 9, 21))
    returned = d.claim_found_card(
        found, ID_NUMBER, identity_confirmed=True, photo_ref="p", on=date(2016, 9, 21)
    )
    assert returned.status is d.FoundCardStatus.RETURNED
    assert returned.closed_on == date(2016, 9, 21)


def test_found_card_registered_before_found_is_refused() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1))
    with pytest.raises(InvalidArgument):
        d.register_found_card(
            id="f3",
            card=card,
            owner_current_card=None,
            station_region_code="310101",
            found_place="x",
            found_on=date(2016, 9, 21),
            registered_on=date(2016, 9, 20),
        )


def test_superseded_card_cannot_be_reported_lost() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.SUPERSEDED)
    with _Refusal(d.CARD_NOT_CURRENT):
        d.report_lost(card, "310104", "310104", date(2016, 1, 1))


# -- temporary card (§2.6): every row of the table --------------------------------------------------


def _temp(**overrides: object) -> d.TemporaryCard:
    args: dict[str, object] = {
        "id_number": ID_NUMBER,
        "applications": [_apply(hukou_province_code="31", hukou_region_code="310104")],
        "station_region_code": "310104",
        "hukou_region_code": "310104",
        "urgent_need": True,
        "applied_on": date(2016, 8, 1),
        "policy": POLICY,
    }
    args.update(overrides)
    return d.apply_for_temporary_card(**args)  # type: ignore[arg-type]


def test_temporary_card_eligibility_row() -> None:
    with _Refusal(d.NO_APPLICATION_IN_PROGRESS):
        _temp(applications=[])
    closed = _apply(hukou_province_code="31", hukou_region_code="310104").cancel("x", date(2016, 8, 1))
    with _Refusal(d.NO_APPLICATION_IN_PROGRESS):
        _temp(applications=[closed])
    with _Refusal(d.URGENT_NEED_NOT_STATED):
        _temp(urgent_need=False)


def test_temporary_card_where_row() -> None:
    with _Refusal(d.NOT_AT_HUKOU_STATION):
        _temp(station_region_code="310115")
    assert _temp().application_id == "app-1"


def test_temporary_card_validity_row() -> None:
    issued = _temp().issue(date(2016, 8, 3), POLICY)
    assert issued.valid_until == date(2016, 11, 3)
    assert _temp().issue(date(2016, 11, 30), POLICY).valid_until == date(2017, 2, 28)


def test_temporary_card_issued_within_row() -> None:
    assert _temp().issue_by == date(2016, 8, 4)


def test_temporary_card_fee_row_applies() -> None:
    assert _temp().fee_fen == 1000


# -- the accepting province, loss before replacement, hukou facts -------------------------------------


def test_local_application_outside_the_acceptance_province() -> None:
    app = _apply(hukou_province_code="11", hukou_region_code="110105", accepting_province_code="11")
    assert not app.cross_province
    assert "CROSS_PROVINCE_FORM" not in app.required_materials


def test_cross_province_only_in_the_acceptance_province() -> None:
    with _Refusal(d.CROSS_PROVINCE_NOT_OFFERED_HERE):
        _apply(hukou_province_code="12", hukou_region_code="120101", accepting_province_code="11")
    assert _apply(accepting_province_code="31").cross_province


@pytest.mark.parametrize("status", [CardStatus.VALID, CardStatus.EXPIRED])
def test_replacement_needs_a_loss_report(status: CardStatus) -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2020, 1, 1), status)
    with _Refusal(d.LOSS_NOT_REPORTED):
        _apply(kind=ApplicationKind.REPLACEMENT, renewal_reason=None, current_card=card)


def test_replacement_after_a_loss_report() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2020, 1, 1), CardStatus.REPORTED_LOST)
    app = _apply(kind=ApplicationKind.REPLACEMENT, renewal_reason=None, current_card=card)
    assert app.fee_fen == 4000


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (d.HukouRecord(found=False, name_matches=False), d.HUKOU_RECORD_NOT_FOUND),
        (d.HukouRecord(found=True, name_matches=False), d.HUKOU_NAME_MISMATCH),
        (d.HukouRecord(True, True, "MOVING_OUT", "42", "420102"), d.HUKOU_NOT_ACTIVE),
        (d.HukouRecord(True, True, "DEREGISTERED", "42", "420102"), d.HUKOU_NOT_ACTIVE),
    ],
)
def test_hukou_refusals(record: d.HukouRecord, reason: str) -> None:
    with _Refusal(reason):
        d.require_hukou(record)


def test_hukou_confirms_identity_without_being_active() -> None:
    record = d.HukouRecord(True, True, "MOVING_OUT", "42", "420102")
    assert d.require_hukou(record, active=False) is record
    assert record.confirms_identity
    assert not d.HukouRecord(True, False).confirms_identity


# -- the card's address record (§2.3: a hukou move does not need a new card) -----------------------------

ADDRESS = "上海市徐汇区漕溪北路1号"


def test_record_address_updates_the_card_in_place() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), application_id="A1")
    assert (card.address_region_code, card.address, card.address_recorded_on) == ("", "", None)
    moved = d.record_address(card, " 310104 ", f"  {ADDRESS} ", date(2016, 9, 15))
    assert (moved.address_region_code, moved.address, moved.address_recorded_on) == (
        "310104",
        ADDRESS,
        date(2016, 9, 15),
    )
    assert replace(moved, address_region_code="", address="", address_recorded_on=None) == card
    again = d.record_address(moved, "120101", "天津市和平区1号", date(2017, 1, 2))
    assert again.address_region_code == "120101" and again.address_recorded_on == date(2017, 1, 2)


def test_record_address_on_the_last_day_of_validity() -> None:
    card = Card("C1", ID_NUMBER, date(2006, 12, 1), date(2016, 12, 1))
    assert d.record_address(card, "310104", ADDRESS, date(2016, 12, 1)).address == ADDRESS


@pytest.mark.parametrize(
    "card",
    [
        None,
        Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.REPORTED_LOST),
        Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.SUPERSEDED),
        Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.INVALIDATED),
        Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1), CardStatus.EXPIRED),
        Card("C1", ID_NUMBER, date(2006, 12, 1), date(2016, 12, 1)),  # VALID in the register, past its end
    ],
)
def test_record_address_needs_a_valid_card(card: Card | None) -> None:
    with _Refusal("NO_CURRENT_CARD"):
        d.record_address(card, "310104", ADDRESS, date(2016, 12, 2))


@pytest.mark.parametrize(
    ("region_code", "address", "expected"),
    [
        ("", ADDRESS, {"region_code": "REQUIRED"}),
        ("31010", ADDRESS, {"region_code": "BAD_REGION_CODE"}),
        ("3101041", ADDRESS, {"region_code": "BAD_REGION_CODE"}),
        ("31010X", ADDRESS, {"region_code": "BAD_REGION_CODE"}),
        ("３１０１０４", ADDRESS, {"region_code": "BAD_REGION_CODE"}),  # full-width digits
        ("310104", "   ", {"address": "REQUIRED"}),
        ("310104", "路" * 201, {"address": "TOO_LONG"}),
        ("abc", "", {"region_code": "BAD_REGION_CODE", "address": "REQUIRED"}),
    ],
)
def test_record_address_checks_its_input_first(
    region_code: str, address: str, expected: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgument) as info:
        d.record_address(None, region_code, address, date(2016, 9, 15))  # before NO_CURRENT_CARD
    assert {v.field: v.reason for v in info.value.violations} == expected


def test_record_address_accepts_200_characters() -> None:
    card = Card("C1", ID_NUMBER, date(2010, 1, 1), date(2030, 1, 1))
    assert len(d.record_address(card, "310104", "路" * 200, date(2016, 9, 15)).address) == 200
