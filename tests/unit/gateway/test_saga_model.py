"""The saga's pure model: no database, no departments, no event loop."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.saga.model import (
    CASE_FINAL,
    RANK,
    TRANSITIONS,
    CaseFlags,
    CaseState,
    EventEffect,
    Failure,
    InvalidTransition,
    StepState,
    Undo,
    aggregate_state,
    begin_compensation,
    check,
    in_force,
    on_event,
    on_failure,
    on_outcome,
    ready_steps,
    retry_delay,
    undone_with_case,
    withdrawal_blockers,
)

S = StepState


@dataclass
class Step:
    step_key: str
    state: str = S.PENDING
    department_state: str = ""
    position: int = 0
    depends_on: list[str] = field(default_factory=list)
    starts_when: str = "approved"


def test_states_are_the_strings_stored_and_shown() -> None:
    assert S.PENDING == "PENDING" and CaseState.READY_FOR_PICKUP == "READY_FOR_PICKUP"
    assert f"{S.DONE}" == "DONE"


def test_every_state_has_its_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("old", list(RANK))
def test_a_live_step_never_moves_backwards(old: StepState) -> None:
    for new in RANK:
        if RANK[new] < RANK[old] and not (old == S.RUNNING and new == S.PENDING):
            with pytest.raises(InvalidTransition):
                check(old, new)


def test_final_states_are_final() -> None:
    for final in (S.REFUSED, S.COMPENSATED, S.CANCELLED, S.SKIPPED):
        assert TRANSITIONS[final] == frozenset()
        with pytest.raises(InvalidTransition):
            check(final, S.PENDING)


def test_an_answer_does_not_undo_what_an_event_already_told() -> None:
    # The department approved (event) while the create call's answer was on its way (ACCEPTED).
    assert on_outcome(S.APPROVED, S.ACCEPTED, case_failed=False, compensable=True) == S.APPROVED
    assert on_outcome(S.RUNNING, S.ACCEPTED, case_failed=False, compensable=True) == S.ACCEPTED
    assert on_outcome(S.RUNNING, S.DONE, case_failed=False, compensable=False) == S.DONE


def test_an_answer_that_comes_after_the_case_failed_is_undone_if_it_can_be() -> None:
    assert on_outcome(S.RUNNING, S.ACCEPTED, case_failed=True, compensable=True) == S.COMPENSATING
    assert on_outcome(S.RUNNING, S.DONE, case_failed=True, compensable=False) == S.DONE


def test_only_transport_failures_are_retried_and_only_up_to_the_limit() -> None:
    assert on_failure(S.RUNNING, Failure.TRANSPORT, 1, 3).state == S.PENDING
    assert on_failure(S.RUNNING, Failure.TRANSPORT, 1, 3).retry
    spent = on_failure(S.RUNNING, Failure.TRANSPORT, 3, 3)
    assert (spent.state, spent.reason, spent.retry) == (S.NEEDS_ATTENTION, "DEPARTMENT_UNAVAILABLE", False)
    bug = on_failure(S.RUNNING, Failure.PROGRAMMING, 1, 8)
    assert (bug.state, bug.reason, bug.retry) == (S.NEEDS_ATTENTION, "INTERNAL_ERROR", False)
    operator = on_failure(S.RUNNING, Failure.OPERATOR, 1, 8)
    assert (operator.state, operator.reason) == (S.NEEDS_ATTENTION, "OPERATOR_FAULT")
    assert on_failure(S.COMPENSATING, Failure.TRANSPORT, 1, 3).state == S.COMPENSATING


def test_retry_delay_grows_to_its_ceiling_and_spreads_by_jitter() -> None:
    assert retry_delay(1, 0.5, 30, 1.0) == 0.5
    assert retry_delay(1, 0.5, 30, 0.0) == 0.25
    assert retry_delay(4, 0.5, 30, 1.0) == 4.0
    assert retry_delay(20, 0.5, 30, 1.0) == 30
    with pytest.raises(ValueError):
        retry_delay(0, 0.5, 30, 1.0)


def test_events_move_forward_change_substates_and_ignore_repeats_and_late_ones() -> None:
    moved = on_event(S.ACCEPTED, "UNDER_REVIEW", S.APPROVED, "APPROVED")
    assert (moved.effect, moved.state) == (EventEffect.MOVE, S.APPROVED)
    assert on_event(S.APPROVED, "APPROVED", S.APPROVED, "APPROVED").effect == EventEffect.IGNORE
    assert on_event(S.READY, "ISSUED", S.APPROVED, "APPROVED").effect == EventEffect.IGNORE
    sub = on_event(S.ACCEPTED, "UNDER_REVIEW", S.ACCEPTED, "AWAITING_MATERIALS")
    assert (sub.effect, sub.department_state) == (EventEffect.SUBSTATE, "AWAITING_MATERIALS")
    assert on_event(S.ACCEPTED, "", S.REFUSED, "REJECTED").effect == EventEffect.REFUSE
    assert on_event(S.ACCEPTED, "", S.CANCELLED, "CANCELLED").effect == EventEffect.CANCELLED
    assert on_event(S.COMPENSATING, "", S.CANCELLED, "CANCELLED").effect == EventEffect.COMPENSATED
    assert on_event(S.COMPENSATED, "", S.APPROVED, "APPROVED").effect == EventEffect.IGNORE
    # a cancellation of a card already handed over is not followed
    assert on_event(S.DONE, "ISSUED", S.CANCELLED, "CANCELLED").effect == EventEffect.IGNORE


def test_a_decision_reaches_a_step_whose_answer_was_lost() -> None:
    assert on_event(S.PENDING, "", S.APPROVED, "APPROVED").state == S.APPROVED
    assert on_event(S.NEEDS_ATTENTION, "", S.APPROVED, "APPROVED").state == S.APPROVED


def test_compensation_cancels_the_unstarted_and_undoes_what_a_department_holds() -> None:
    steps = [
        Step("a", S.DONE),
        Step("b", S.APPROVED),
        Step("c", S.PENDING),
        Step("d", S.RUNNING),
        Step("e", S.DONE),
        Step("f", S.SKIPPED),
    ]
    undoable = Undo(compensable=True)
    undo = {"a": undoable, "b": undoable, "d": undoable, "e": Undo(compensable=False)}
    changes = begin_compensation(steps, undo)
    assert changes == {"a": S.COMPENSATING, "b": S.COMPENSATING, "c": S.CANCELLED}


# What the foreign employee's case declares: two permit applications that exist only for the case, and an
# accommodation registration that stands on its own (where the person stays).
PERMIT = Undo(compensable=True)
STAYS = Undo(compensable=False, with_case=False)
FOREIGNER = {"work_permit": PERMIT, "residence_permit": PERMIT, "accommodation": STAYS}


def _foreigner(wp: StepState, rp: StepState, accommodation: StepState) -> list[Step]:
    return [
        Step("work_permit", wp, position=0),
        Step("residence_permit", rp, position=1, depends_on=["work_permit"]),
        Step("accommodation", accommodation, position=2),
    ]


def test_a_record_that_stands_on_its_own_is_not_undone_when_a_department_cancels_its_decision() -> None:
    # permits cancels the issued work permit: the residence permit resting on it is undone, the
    # accommodation registration is not
    steps = _foreigner(S.CANCELLED, S.READY, S.DONE)
    assert begin_compensation(steps, FOREIGNER) == {"residence_permit": S.COMPENSATING}
    assert not undone_with_case(S.DONE, STAYS, steps)
    assert undone_with_case(S.READY, PERMIT, steps)
    # an undoable record declared as standing on its own is kept all the same
    assert begin_compensation(steps, {**FOREIGNER, "accommodation": Undo(True, with_case=False)}) == {
        "residence_permit": S.COMPENSATING
    }
    # the default is today's: a step that exists for the case is undone with it
    assert Undo(compensable=True).with_case
    assert begin_compensation([Step("x", S.DONE)], {"x": Undo(compensable=True)}) == {"x": S.COMPENSATING}


def test_an_answer_after_the_case_failed_is_undone_only_if_it_exists_for_the_case() -> None:
    # the work permit refused while the registration's call was in flight: the registration stays
    assert (
        on_outcome(S.RUNNING, S.DONE, case_failed=True, compensable=undone_with_case(S.DONE, STAYS)) == S.DONE
    )
    assert (
        on_outcome(S.RUNNING, S.ACCEPTED, case_failed=True, compensable=undone_with_case(S.ACCEPTED, PERMIT))
        == S.COMPENSATING
    )


def test_the_failed_case_says_which_steps_stay_in_force_and_claims_nothing_undone() -> None:
    flags = CaseFlags(rejected=True)
    after = _foreigner(S.CANCELLED, S.COMPENSATED, S.DONE)
    assert aggregate_state(flags, after) == CaseState.REJECTED  # never COMPLETED, never WITHDRAWN
    assert [s.step_key for s in after if in_force(flags, StepState(s.state))] == ["accommodation"]
    # a step being undone, undone, or cancelled is not in force; nor is anything of a live case
    for state in (S.COMPENSATING, S.COMPENSATED, S.CANCELLED, S.REFUSED, S.NEEDS_ATTENTION):
        assert not in_force(flags, state)
    assert not in_force(CaseFlags(), S.DONE)
    assert in_force(CaseFlags(withdrawn=True), S.DONE)


def test_a_record_that_stands_on_its_own_does_not_stop_a_withdrawal() -> None:
    # the registration recorded, the work permit under review: the case is withdrawn, the registration stays
    steps = _foreigner(S.ACCEPTED, S.ACCEPTED, S.DONE)
    assert withdrawal_blockers(steps, FOREIGNER) == []
    changes = begin_compensation(steps, FOREIGNER)
    assert changes == {"work_permit": S.COMPENSATING, "residence_permit": S.COMPENSATING}
    # also while it is being recorded (its answer will stand)
    assert withdrawal_blockers(_foreigner(S.ACCEPTED, S.PENDING, S.RUNNING), FOREIGNER) == []
    # a record that cannot be undone and exists for the case still stops it
    [blocker] = withdrawal_blockers([Step("name", S.DONE)], {"name": Undo(compensable=False)})
    assert blocker.reason == "NOT_UNDOABLE"


def test_readiness_waits_for_dependencies_and_undo_runs_in_reverse() -> None:
    steps = [
        Step("wp", S.ACCEPTED, position=0),
        Step("rp", S.PENDING, position=1, depends_on=["wp"]),
        Step("temp", S.PENDING, position=2, depends_on=["wp"], starts_when="accepted"),
        Step("acc", S.PENDING, position=3),
    ]
    assert ready_steps(steps) == {"temp", "acc"}
    steps[0].state = S.APPROVED
    assert ready_steps(steps) == {"rp", "temp", "acc"}
    undo = [Step("x", S.COMPENSATING, position=0), Step("y", S.COMPENSATING, position=1)]
    assert ready_steps(undo) == {"y"}
    undo[1].state = S.COMPENSATED
    assert ready_steps(undo) == {"x"}


def test_the_case_status_is_derived_from_its_steps() -> None:
    none = CaseFlags()
    assert aggregate_state(none, [Step("a"), Step("b")]) == CaseState.RECEIVED
    assert aggregate_state(none, [Step("a", S.ACCEPTED), Step("b")]) == CaseState.IN_REVIEW
    waiting = Step("a", S.ACCEPTED, "AWAITING_MATERIALS")
    assert aggregate_state(none, [waiting]) == CaseState.AWAITING_APPLICANT
    assert aggregate_state(none, [Step("a", S.APPROVED), Step("b", S.SKIPPED)]) == CaseState.APPROVED
    assert aggregate_state(none, [Step("a", S.READY), Step("b", S.DONE)]) == CaseState.READY_FOR_PICKUP
    assert aggregate_state(none, [Step("a", S.DONE), Step("b", S.SKIPPED)]) == CaseState.COMPLETED
    assert (
        aggregate_state(none, [Step("a", S.NEEDS_ATTENTION), Step("b", S.DONE)]) == CaseState.NEEDS_ATTENTION
    )
    assert aggregate_state(none, [Step("a", S.REFUSED), Step("b", S.NEEDS_ATTENTION)]) == CaseState.REJECTED
    assert aggregate_state(CaseFlags(withdrawn=True), [Step("a", S.COMPENSATED)]) == CaseState.WITHDRAWN
    assert aggregate_state(CaseFlags(rejected=True), [Step("a", S.COMPENSATED)]) == CaseState.REJECTED


def test_a_rejection_carries_identitys_or_permits_reasons_and_codes() -> None:
    from gateway.saga.model import rejection_of

    identity = rejection_of({"rejection_reason": " 照片不符合要求 ", "rejection_code": "PHOTO_NOT_COMPLIANT"})
    assert identity.as_dict() == {"reasons": ["照片不符合要求"], "codes": ["PHOTO_NOT_COMPLIANT"]}
    permits = rejection_of({"reasons": ["学历不符", " "], "reason_codes": ["DEGREE_NOT_RECOGNISED"]})
    assert permits.as_dict() == {"reasons": ["学历不符"], "codes": ["DEGREE_NOT_RECOGNISED"]}
    assert rejection_of({"reasons": 3}).as_dict() == {"reasons": [], "codes": []}


def test_a_card_application_can_be_undone_only_until_it_is_decided() -> None:
    from gateway.saga.model import Undo, can_undo

    card = Undo(compensable=True, until=S.ACCEPTED)
    assert can_undo(S.ACCEPTED, card)
    assert not can_undo(S.APPROVED, card) and not can_undo(S.READY, card) and not can_undo(S.DONE, card)
    assert can_undo(S.DONE, Undo(compensable=True))
    assert not can_undo(S.ACCEPTED, Undo(compensable=False))


def test_withdrawal_is_refused_naming_each_step_that_cannot_be_undone() -> None:
    from gateway.saga.model import Undo, withdrawal_blockers

    undo = {"name": Undo(compensable=False), "card": Undo(compensable=True, until=S.ACCEPTED)}
    # before anything is recorded: nothing stops it
    assert withdrawal_blockers([Step("name"), Step("card")], undo) == []
    # the card application alone, still accepted: it can be cancelled
    assert withdrawal_blockers([Step("card", S.ACCEPTED)], undo) == []
    # the name change recorded, the card renewal not yet sent: withdrawn whole or not at all
    [blocker] = withdrawal_blockers([Step("name", S.DONE, "RECORDED"), Step("card", S.PENDING)], undo)
    assert (blocker.step_key, blocker.reason, blocker.department_state) == (
        "name",
        "NOT_UNDOABLE",
        "RECORDED",
    )
    # the card approved: the department can no longer cancel it
    [blocker] = withdrawal_blockers([Step("card", S.APPROVED, "APPROVED")], undo)
    assert (blocker.step_key, blocker.reason) == ("card", "ALREADY_DECIDED")
    # a step being recorded that could not be undone when it answers
    [blocker] = withdrawal_blockers([Step("name", S.RUNNING)], undo)
    assert blocker.reason == "IN_PROGRESS"
    # ended steps hold nothing
    assert withdrawal_blockers([Step("card", S.REFUSED), Step("name", S.SKIPPED)], undo) == []


def test_a_later_step_that_used_a_record_ends_its_undo() -> None:
    from gateway.saga.model import Undo, undo_ended, withdrawal_blockers

    out = Undo(compensable=True, ended_by=frozenset({"in"}))
    undo = {"out": out, "in": Undo(compensable=False)}
    # the move-out recorded, the move-in not yet: it can be undone
    assert not undo_ended(out, [Step("out", S.DONE), Step("in", S.PENDING)])
    assert withdrawal_blockers([Step("out", S.DONE), Step("in", S.PENDING)], undo) == []
    # the move-in being recorded, or recorded: the certificate is used, the move-out stands
    assert undo_ended(out, [Step("out", S.DONE), Step("in", S.RUNNING)])
    blockers = withdrawal_blockers([Step("out", S.DONE), Step("in", S.DONE)], undo)
    assert [(b.step_key, b.reason) for b in blockers] == [
        ("out", "USED_BY_LATER_STEP"),
        ("in", "NOT_UNDOABLE"),
    ]
    # a move-in refused used nothing
    assert not undo_ended(out, [Step("out", S.DONE), Step("in", S.REFUSED)])


def test_a_withdrawal_is_withdrawn_only_once_every_department_has_undone_its_step() -> None:
    flags = CaseFlags(withdrawn=True)
    undoing = [Step("a", S.CANCELLED), Step("b", S.COMPENSATING), Step("c", S.COMPENSATED)]
    assert aggregate_state(flags, undoing) == CaseState.WITHDRAWING
    assert CaseState.WITHDRAWING not in CASE_FINAL
    # a record kept in force (a stay) is no part of what is withdrawn: it does not hold the case open
    kept = [Step("a", S.CANCELLED), Step("b", S.COMPENSATED), Step("stay", S.DONE)]
    assert aggregate_state(flags, kept) == CaseState.WITHDRAWN


def test_a_withdrawal_whose_undo_was_refused_needs_attention_not_withdrawn() -> None:
    flags = CaseFlags(withdrawn=True)
    assert aggregate_state(flags, [Step("a", S.NEEDS_ATTENTION), Step("b", S.COMPENSATED)]) == (
        CaseState.NEEDS_ATTENTION
    )
