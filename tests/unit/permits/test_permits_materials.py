"""Materials checklists of docs/domain.md §4.3 with a completeness check that lists every missing item
at once."""

from __future__ import annotations

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument
from services.permits import domain as d

NOTICE = d.Stage.WORK_PERMIT_NOTICE
DEFERRABLE = ("work_experience_proof", "degree_certificate", "no_criminal_record", "health_certificate")


def test_nothing_supplied_lists_every_notice_item_in_order(policy) -> None:
    check = d.check_materials(NOTICE, [], 30, d.Category.B, policy)
    assert check.missing_codes == (
        "wp_application_form",
        "work_experience_proof",
        "degree_certificate",
        "no_criminal_record",
        "health_certificate",
        "contract",
        "passport",
        "photo",
        "employer_registration",
    )
    assert not check.complete and not check.acceptable


def test_everything_supplied_is_complete(policy, notice_items) -> None:
    check = d.check_materials(NOTICE, [*notice_items, "employer_registration"], 30, d.Category.C, policy)
    assert check.complete and check.acceptable and check.missing == ()


@pytest.mark.parametrize("category", [d.Category.B, d.Category.C])
def test_only_category_a_may_defer(policy, notice_items, category) -> None:
    supplied = [i for i in notice_items if i not in DEFERRABLE] + ["employer_registration"]
    check = d.check_materials(NOTICE, supplied, 30, category, policy)
    assert check.missing_codes == DEFERRABLE
    assert check.deferred == () and not check.acceptable


def test_category_a_is_accepted_with_deferrable_items_missing(policy, notice_items) -> None:
    supplied = [i for i in notice_items if i not in DEFERRABLE] + ["employer_registration"]
    check = d.check_materials(NOTICE, supplied, 30, d.Category.A, policy)
    assert check.acceptable and not check.complete
    assert tuple(i.code for i in check.deferred) == DEFERRABLE


def test_category_a_still_needs_the_core_items(policy) -> None:
    check = d.check_materials(NOTICE, ["employer_registration", "photo"], 30, d.Category.A, policy)
    assert not check.acceptable
    assert {"passport", "contract", "wp_application_form"} <= set(check.missing_codes)


@pytest.mark.parametrize("proof", ["z_or_r_visa_with_entry_stamp", "residence_permit"])
def test_after_entry_visa_item_has_an_alternative(policy, proof) -> None:
    check = d.check_materials(
        d.Stage.WORK_PERMIT, [proof, "contract", "health_certificate"], 30, None, policy
    )
    assert check.complete


def test_after_entry_lists_all_missing(policy) -> None:
    check = d.check_materials(d.Stage.WORK_PERMIT, [], 30, None, policy)
    assert check.missing_codes == ("z_or_r_visa_with_entry_stamp", "contract", "health_certificate")


@pytest.mark.parametrize(("age", "needed"), [(17, False), (18, True), (45, True), (70, True), (71, False)])
def test_residence_health_certificate_only_between_18_and_70(policy, residence_items, age, needed) -> None:
    supplied = [i for i in residence_items if i != "health_certificate"]
    check = d.check_materials(d.Stage.RESIDENCE_PERMIT, supplied, age, None, policy)
    assert check.missing_codes == (("health_certificate",) if needed else ())


# ---- on the application ----


def test_supplying_in_parts_reports_what_is_still_missing(make_work_permit, policy, notice_items) -> None:
    app = make_work_permit()
    supplied = app.supply_materials(["passport", "photo"], app.submitted_on, policy)
    app, check = supplied.state, supplied.check
    assert app.state is d.PermitState.AWAITING_MATERIALS
    assert "passport" not in check.missing_codes and len(check.missing_codes) == 6
    assert supplied.events[-1].payload()["missing"] == ",".join(check.missing_codes)
    supplied = app.supply_materials(notice_items, app.submitted_on, policy)
    app, check = supplied.state, supplied.check
    assert check.complete and app.state is d.PermitState.UNDER_REVIEW


def test_unknown_material_codes_are_refused(make_work_permit, policy) -> None:
    app = make_work_permit()
    with pytest.raises(InvalidArgument) as exc:
        app.supply_materials(["passport", "selfie"], app.submitted_on, policy)
    assert exc.value.violations[0].field == "materials"
    assert app.supplied_materials == frozenset({"employer_registration"})


def test_category_a_file_is_accepted_early_but_not_issued_incomplete(make_work_permit, policy, notice_items):
    app = make_work_permit(special_criteria=frozenset({d.SpecialCriterion.TALENT_PROGRAMME}))
    assert app.category is d.Category.A
    core = [i for i in notice_items if i not in DEFERRABLE]
    supplied = app.supply_materials(core, app.submitted_on, policy)
    app, check = supplied.state, supplied.check
    assert app.state is d.PermitState.UNDER_REVIEW and check.acceptable and not check.complete
    assert app.decision_due is not None
    app = app.approve(app.submitted_on).state
    after_entry = app.supply_after_entry_materials(["residence_permit"], app.submitted_on, policy)
    app, remaining = after_entry.state, after_entry.check
    assert remaining.missing_codes == DEFERRABLE
    with pytest.raises(FailedPrecondition) as exc:
        app.issue(d.permit_number(7, "310000"), app.submitted_on, policy)
    assert exc.value.reason == "MATERIALS_INCOMPLETE"
    assert all(code in exc.value.message for code in DEFERRABLE)
    app = app.supply_materials(DEFERRABLE, app.submitted_on, policy).state
    app = app.issue(d.permit_number(7, "310000"), app.submitted_on, policy).state
    assert app.state is d.PermitState.ISSUED
