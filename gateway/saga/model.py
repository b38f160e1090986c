"""The saga's pure core: what a step and a case may be, and how each answer moves them. No I/O, no SQL,
no protos: the runner (``gateway.saga.runner``) loads rows, asks these functions, and writes the answer.

A step moves forward only: PENDING -> RUNNING -> ACCEPTED -> APPROVED -> READY -> DONE (a department may
answer with any of the later ones at once). From any live state it may end REFUSED (the department said
no), NEEDS_ATTENTION (staff must look), or — when the case fails — be undone (COMPENSATING -> COMPENSATED)
or dropped before it started (CANCELLED). An answer that would move a step backwards is ignored.

Not every step is undone when its case fails: a record that stands on its own (where a foreigner stays)
keeps its state when another department refuses or cancels its own decision, or the applicant withdraws;
the case then shows it as still in force (``Undo.with_case``, ``in_force``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class StepState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    ACCEPTED = "ACCEPTED"
    APPROVED = "APPROVED"
    READY = "READY"
    DONE = "DONE"
    REFUSED = "REFUSED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"  # an optional step the applicant did not ask for


class CaseState(StrEnum):
    RECEIVED = "RECEIVED"
    IN_REVIEW = "IN_REVIEW"
    AWAITING_APPLICANT = "AWAITING_APPLICANT"  # a department asks for missing material
    APPROVED = "APPROVED"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    WITHDRAWING = "WITHDRAWING"  # withdrawn by the applicant; departments are still undoing their steps
    WITHDRAWN = "WITHDRAWN"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


S = StepState

# The forward order of a live step.
RANK: Mapping[StepState, int] = {
    S.PENDING: 0,
    S.RUNNING: 1,
    S.ACCEPTED: 2,
    S.APPROVED: 3,
    S.READY: 4,
    S.DONE: 5,
}
SATISFIED = frozenset({S.APPROVED, S.READY, S.DONE, S.SKIPPED})  # a dependent step may start
STARTED = frozenset({S.ACCEPTED, S.APPROVED, S.READY, S.DONE, S.SKIPPED})  # ... if it only needs it held
HELD_BY_DEPARTMENT = frozenset({S.ACCEPTED, S.APPROVED, S.READY, S.DONE})  # undone by compensation
FINAL = frozenset({S.DONE, S.REFUSED, S.COMPENSATED, S.CANCELLED, S.SKIPPED})
CASE_FINAL = frozenset({CaseState.COMPLETED, CaseState.REJECTED, CaseState.WITHDRAWN})

_LIVE = (S.PENDING, S.RUNNING, S.ACCEPTED, S.APPROVED, S.READY)
_ENDINGS = frozenset({S.REFUSED, S.NEEDS_ATTENTION, S.COMPENSATING, S.CANCELLED})

# Every move a step may make. Anything else is a programming error (``InvalidTransition``).
TRANSITIONS: Mapping[StepState, frozenset[StepState]] = {
    # (a PENDING step may move on by its department's event when the answer to its call was lost)
    S.PENDING: frozenset({S.RUNNING, *(s for s in RANK if RANK[s] > 1), *_ENDINGS}),
    S.RUNNING: frozenset({S.PENDING, *(s for s in RANK if RANK[s] > 1), *_ENDINGS}),
    **{
        live: frozenset({*(s for s in RANK if RANK[s] > RANK[live]), *_ENDINGS})
        for live in (S.ACCEPTED, S.APPROVED, S.READY)
    },
    S.DONE: frozenset({S.COMPENSATING}),
    # staff retry, the case fails, or the department's own event says what became of it
    S.NEEDS_ATTENTION: frozenset(
        {S.PENDING, S.COMPENSATING, S.CANCELLED, S.REFUSED, *(s for s in RANK if RANK[s] > 1)}
    ),
    S.COMPENSATING: frozenset({S.COMPENSATED, S.NEEDS_ATTENTION}),
    S.REFUSED: frozenset(),
    S.COMPENSATED: frozenset(),
    S.CANCELLED: frozenset(),
    S.SKIPPED: frozenset(),
}


class InvalidTransition(ValueError):
    pass


def check(old: StepState, new: StepState) -> StepState:
    """`new`, if a step may move there from `old` (staying put is always allowed)."""
    if old != new and new not in TRANSITIONS[old]:
        raise InvalidTransition(f"{old} -> {new}")
    return new


class StepLike(Protocol):
    """What the model reads of a step (the runner's rows satisfy it)."""

    @property
    def step_key(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def department_state(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def depends_on(self) -> Sequence[str]: ...
    @property
    def starts_when(self) -> str: ...


# -- answers from a department ------------------------------------------------------------------------


def on_outcome(current: StepState, answered: StepState, *, case_failed: bool, compensable: bool) -> StepState:
    """The department accepted the step's call and answered `answered` (ACCEPTED .. DONE). If the case
    failed while the call was in flight, an undoable step is undone; an event may already have moved the
    step further than the answer says, and then it stays where it is."""
    if current in FINAL or current in (S.COMPENSATING, S.NEEDS_ATTENTION):
        return current  # settled meanwhile (e.g. the case failed and this step was already ended)
    if case_failed:
        return check(current, S.COMPENSATING) if compensable else check(current, answered)
    if RANK[answered] < RANK.get(current, 0):
        return current
    return check(current, answered)


class Failure(StrEnum):
    """Why a call did not get a business answer."""

    TRANSPORT = "TRANSPORT"  # UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED: worth retrying
    PROGRAMMING = "PROGRAMMING"  # a builder raised, or the department answered INTERNAL/UNKNOWN
    OPERATOR = "OPERATOR"  # PERMISSION_DENIED / UNAUTHENTICATED: a configuration fault


@dataclass(frozen=True)
class AfterFailure:
    state: StepState
    reason: str  # "" while it will be retried
    retry: bool


FAILURE_REASONS = {
    Failure.TRANSPORT: "DEPARTMENT_UNAVAILABLE",
    Failure.PROGRAMMING: "INTERNAL_ERROR",
    Failure.OPERATOR: "OPERATOR_FAULT",
}


def on_failure(current: StepState, failure: Failure, attempts: int, max_attempts: int) -> AfterFailure:
    """After a failed call (`attempts` counts it): only transport failures are retried, and only until
    `max_attempts`; anything else needs staff at once. A compensation keeps its state while it retries."""
    if failure is Failure.TRANSPORT and attempts < max_attempts:
        retry_state = S.COMPENSATING if current == S.COMPENSATING else S.PENDING
        return AfterFailure(check(current, retry_state), "", True)
    return AfterFailure(check(current, S.NEEDS_ATTENTION), FAILURE_REASONS[failure], False)


def retry_delay(attempts: int, base: float, ceiling: float, jitter: float) -> float:
    """Seconds before the next attempt: exponential from `base`, at most `ceiling`, scaled by `jitter`
    (0..1, the caller's random draw) into its upper half so that retries of many steps spread out."""
    if attempts < 1:
        raise ValueError("attempts counts the failed call, so it is at least 1")
    delay = min(ceiling, base * 2.0 ** (attempts - 1))
    return float(delay) * (0.5 + max(0.0, min(1.0, jitter)) / 2)


class EventEffect(StrEnum):
    IGNORE = "IGNORE"  # a repeat, or late: the step is already further on
    SUBSTATE = "SUBSTATE"  # same step state, new department sub-status (e.g. awaiting materials)
    MOVE = "MOVE"  # forward
    REFUSE = "REFUSE"  # the department rejected it: the case fails
    CANCELLED = "CANCELLED"  # the department cancelled it on its own: the case fails
    COMPENSATED = "COMPENSATED"  # the undo we asked for happened


@dataclass(frozen=True)
class EventOutcome:
    effect: EventEffect
    state: StepState
    department_state: str


def on_event(current: StepState, department_state: str, to: StepState, to_department: str) -> EventOutcome:
    """A department event says the step's record is now `to` (`to_department` in its own words)."""
    keep = EventOutcome(EventEffect.IGNORE, current, department_state)
    if current in (S.COMPENSATED, S.CANCELLED, S.REFUSED, S.SKIPPED):
        return keep
    if current == S.COMPENSATING:
        if to == S.CANCELLED:
            return EventOutcome(EventEffect.COMPENSATED, check(current, S.COMPENSATED), to_department)
        return keep
    if to not in TRANSITIONS[current] and to != current and current != S.NEEDS_ATTENTION:
        return keep  # e.g. a cancellation of a record already handed over: not ours to follow
    if to == S.REFUSED:
        return EventOutcome(EventEffect.REFUSE, check(current, S.REFUSED), to_department)
    if to == S.CANCELLED:
        return EventOutcome(EventEffect.CANCELLED, check(current, S.CANCELLED), to_department)
    if current == S.NEEDS_ATTENTION and to in RANK:
        # The department decided although the gateway lost track (e.g. an answer lost): follow it.
        return EventOutcome(EventEffect.MOVE, check(current, to), to_department)
    rank_now, rank_new = RANK.get(current, -1), RANK.get(to, -1)
    if rank_new < rank_now:
        return keep
    if rank_new == rank_now:
        if department_state == to_department:
            return keep
        return EventOutcome(EventEffect.SUBSTATE, current, to_department)
    return EventOutcome(EventEffect.MOVE, check(current, to), to_department)


@dataclass(frozen=True)
class Rejection:
    """Why a department rejected a step: the words the applicant reads and their machine codes."""

    reasons: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {"reasons": list(self.reasons), "codes": list(self.codes)}


def _texts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())


def rejection_of(data: Mapping[str, object]) -> Rejection:
    """The reasons a department's rejection event carries: identity's ``rejection_reason`` and
    ``rejection_code``, or permits' ``reasons`` and ``reason_codes`` lists."""
    reasons = _texts(data.get("reasons")) or _texts(data.get("rejection_reason"))
    codes = _texts(data.get("reason_codes")) or _texts(data.get("rejection_code"))
    return Rejection(reasons, codes)


# -- the case as a whole ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Undo:
    """Whether a department can undo a step's record, and up to which state: an ID card application can
    be cancelled while ACCEPTED, not once approved (the card is being made); a name change recorded by
    residence cannot be undone by the window at all. `ended_by`: the keys of the case's steps whose
    record, once a department holds it (or is recording it), ends this undo — a move-out can be cancelled
    until the move-in has used its migration certificate. `with_case`: whether the case's failure undoes
    it at all."""

    compensable: bool
    until: StepState = S.DONE
    ended_by: frozenset[str] = frozenset()
    # whether the case's failure undoes the record: True for a step that exists only for the case's
    # sake (a permit application); False for a record that stands on its own (an accommodation
    # registration says where a foreigner stays, whatever becomes of the permits) — it stays in force
    with_case: bool = True


NO_UNDO = Undo(compensable=False)


def can_undo(state: StepState, undo: Undo) -> bool:
    """Whether a step the department holds in `state` can still be undone."""
    return undo.compensable and RANK.get(state, 0) <= RANK[undo.until]


def undo_ended(undo: Undo, steps: Iterable[StepLike]) -> bool:
    """Whether a later step of the case has ended the undo (see ``Undo.ended_by``)."""
    return any(
        s.step_key in undo.ended_by and StepState(s.state) in (*HELD_BY_DEPARTMENT, S.RUNNING) for s in steps
    )


def undone_with_case(state: StepState, undo: Undo, steps: Iterable[StepLike] = ()) -> bool:
    """Whether a step its department holds in `state` is undone when the case fails: its record exists
    for the case's sake, the department can still undo it, and no later step has ended the undo."""
    return undo.with_case and can_undo(state, undo) and not undo_ended(undo, steps)


def begin_compensation(steps: Iterable[StepLike], undo: Mapping[str, Undo]) -> dict[str, StepState]:
    """The case failed (refused, cancelled by a department, or withdrawn): each step's new state, by
    step key. Steps not started are cancelled; steps a department holds are undone where the case's
    failure undoes them (``undone_with_case``); the rest — final, kept in force, or running (its answer
    is undone when it comes, if it should be) — keep their state."""
    steps = list(steps)
    changes: dict[str, StepState] = {}
    for step in steps:
        state = StepState(step.state)
        if state == S.PENDING:
            changes[step.step_key] = S.CANCELLED
        elif state in HELD_BY_DEPARTMENT and undone_with_case(state, undo.get(step.step_key, NO_UNDO), steps):
            changes[step.step_key] = check(state, S.COMPENSATING)
    return changes


@dataclass(frozen=True)
class Blocker:
    """A step that stops a withdrawal: the department keeps what it did."""

    step_key: str
    reason: str  # NOT_UNDOABLE, ALREADY_DECIDED, USED_BY_LATER_STEP or IN_PROGRESS
    state: StepState
    department_state: str


BLOCKER_REASONS = {
    "NOT_UNDOABLE": "the department has recorded this step and it cannot be undone from the window",
    "ALREADY_DECIDED": "the department has decided this step and can no longer cancel it",
    "USED_BY_LATER_STEP": "a later step used what this step recorded; the department can no longer undo it",
    "IN_PROGRESS": "the department is recording this step now and it could not be undone; try again shortly",
}


def withdrawal_blockers(steps: Iterable[StepLike], undo: Mapping[str, Undo]) -> list[Blocker]:
    """The steps that stop the applicant from withdrawing: a step its department holds and cannot undo
    (or can no longer undo in its state), or one being recorded now that could not be undone. A case is
    withdrawn as a whole or not at all: no step is dropped while an earlier one stays done. A record
    that stands on its own (``Undo.with_case`` false) is no part of what is withdrawn: it stays in force
    and does not stop the withdrawal."""
    steps = list(steps)
    blockers: list[Blocker] = []
    for step in steps:
        state = StepState(step.state)
        rule = undo.get(step.step_key, NO_UNDO)
        if not rule.with_case:
            continue
        if state == S.RUNNING and not rule.compensable:
            reason = "IN_PROGRESS"
        elif state in HELD_BY_DEPARTMENT and not rule.compensable:
            reason = "NOT_UNDOABLE"
        elif state in HELD_BY_DEPARTMENT and not can_undo(state, rule):
            reason = "ALREADY_DECIDED"
        elif state in HELD_BY_DEPARTMENT and undo_ended(rule, steps):
            reason = "USED_BY_LATER_STEP"
        else:
            continue
        blockers.append(Blocker(step.step_key, reason, state, step.department_state))
    return blockers


def ready_steps(steps: Sequence[StepLike]) -> set[str]:
    """The step keys that may be taken up now apart from their retry time: a PENDING step whose every
    dependency is satisfied (or only held by its department, if it starts when they are accepted), and a
    COMPENSATING step with no later step still compensating (undo runs in reverse order)."""
    by_key = {s.step_key: s for s in steps}
    ready: set[str] = set()
    for step in steps:
        if step.state == S.PENDING:
            needed = STARTED if step.starts_when == "accepted" else SATISFIED
            if all(by_key[d].state in needed for d in step.depends_on if d in by_key):
                ready.add(step.step_key)
        elif step.state == S.COMPENSATING and not any(
            o.state == S.COMPENSATING and o.position > step.position for o in steps
        ):
            ready.add(step.step_key)
    return ready


@dataclass(frozen=True)
class CaseFlags:
    """What the case's own record says beside its steps."""

    withdrawn: bool = False
    rejected: bool = False


def aggregate_state(flags: CaseFlags, steps: Iterable[StepLike]) -> CaseState:
    """The case's one status, derived from its steps."""
    steps = list(steps)
    states = [StepState(s.state) for s in steps if s.state != S.SKIPPED]
    if flags.withdrawn:
        # an undo the department refused is not a withdrawal done: staff must settle it first; and
        # it is done only once every department has undone its step (or answered a call still in flight)
        if S.NEEDS_ATTENTION in states:
            return CaseState.NEEDS_ATTENTION
        if any(s in (S.COMPENSATING, S.RUNNING, S.PENDING) for s in states):
            return CaseState.WITHDRAWING
        return CaseState.WITHDRAWN
    if flags.rejected or S.REFUSED in states:
        return CaseState.REJECTED
    if S.NEEDS_ATTENTION in states:
        return CaseState.NEEDS_ATTENTION
    if any(s.state not in FINAL and s.department_state == "AWAITING_MATERIALS" for s in steps):
        return CaseState.AWAITING_APPLICANT
    if all(s == S.DONE for s in states):
        return CaseState.COMPLETED
    if all(s in (S.READY, S.DONE) for s in states):
        return CaseState.READY_FOR_PICKUP
    if all(s in SATISFIED for s in states):
        return CaseState.APPROVED
    if any(s in HELD_BY_DEPARTMENT for s in states):
        return CaseState.IN_REVIEW
    return CaseState.RECEIVED


def in_force(flags: CaseFlags, state: StepState) -> bool:
    """Whether a step of a case that failed (refused, cancelled by a department, or withdrawn) is still
    held by its department: a record that stands on its own, or one its department can no longer undo.
    What the case shows as staying in force, never as undone."""
    return (flags.withdrawn or flags.rejected) and state in HELD_BY_DEPARTMENT


def flags_of(outcome: Mapping[str, object]) -> CaseFlags:
    return CaseFlags(withdrawn=bool(outcome.get("withdrawn")), rejected=bool(outcome.get("rejected")))
