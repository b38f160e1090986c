"""The durable saga runner: the I/O around ``gateway.saga.model``. It loads a case's steps, asks the
model what an answer or event means, and writes the result — with all of its state in the gateway's
database, so a gateway killed at any point resumes every unfinished case on start.

- A step is *due* when its ``ready`` column is set (kept by ``_settle`` from the model's
  ``ready_steps`` whenever a step of the case changes) and its ``next_attempt_at`` has come; the due
  query reads only ready steps, in retry-time order, a page at a time — however many cases wait on
  decisions. A claimed step whose lease expired (its runner died mid-call) is found by its own query.
- A runner *claims* a due step by bumping its version (``UPDATE ... WHERE version = :read``) and
  setting a lease (the due steps it found in one look, in one transaction); only the claimant calls the
  department, with the step's fixed request_id, so a
  repeated call after a crash returns the department's first answer. The steps ready when a case is
  opened are claimed in the transaction that opens it, for the submitting request (`claim_opened`).
  Every later write of a step or a case is version-checked as well (the mapper's ``version_id_col``):
  a writer that lost a race starts again from the database.
- Only transport failures are retried (with backoff); a programming error, a department's
  INTERNAL/UNKNOWN or the department refusing the gateway itself needs staff at once (NEEDS_ATTENTION,
  shown to the applicant as delayed, never as a refusal). A business refusal fails the case and
  compensates, in reverse order, every step a department already holds that exists for the case's sake;
  a record that stands on its own (``Action.with_case``) stays in force.
- A department event moves the step holding its resource; a step is found by the resource id the
  create call answered, or by the create call's request_id that the creation event carries. An event
  for a resource no step holds yet is parked and applied when a step binds that resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

import structlog
from sqlalchemy import CursorResult, ScalarSelect, Select, and_, delete, exists, select, true, update
from sqlalchemy.exc import DBAPIError, NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import object_session
from sqlalchemy.orm.exc import StaleDataError

from gateway.clients import Broken, CallContext, Department, Invalid, NotAllowed, Refused, Unavailable
from gateway.departments import ACTIONS, EVENT_TYPES, Action, Outcome, StepInput
from gateway.departments.base import OPERATOR_REFUSALS
from gateway.saga import model as M
from gateway.saga.model import CaseState, Failure, StepState
from gateway.store import Case, CaseStep, ParkedEvent
from govhub.common.v1 import common_pb2
from services.common.clock import Clock

log = structlog.get_logger("govhub.saga")
T = TypeVar("T")

PAGE = 64  # due steps read per query
_EARLIER = (
    CaseStep.step_key,
    CaseStep.result,
    CaseStep.resource_id,
)  # what a step's input reads of those before it
PARKED_DAYS = 30  # how long an event for an unknown resource is kept
_MADE_READY = "saga_made_ready"  # Session.info: a change in the session made a step ready
WRITE_ATTEMPTS = 8  # a write that lost a race is tried again, over about a second in all
RACE_SQLSTATES = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock detected, serialization failure


def lost_race(exc: BaseException) -> bool:
    """Whether a write failed only because another writer got there first: a version moved meanwhile
    (``StaleDataError``), or PostgreSQL ended one of two transactions waiting on each other's rows
    (deadlock, serialization failure). Such a write is simply tried again from the database."""
    if isinstance(exc, StaleDataError):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


async def write_again(
    sessions: async_sessionmaker[AsyncSession],
    change: Callable[[AsyncSession], Awaitable[T]],
    attempts: int = WRITE_ATTEMPTS,
) -> T:
    """Run `change` in a fresh session and commit it. A lost race (`lost_race`) starts again from the
    database after a short, growing, jittered pause, so that writers of one case that collide do not
    collide again in step; the last loss is raised."""
    for attempt in range(1, attempts + 1):
        try:
            async with sessions() as session:
                result = await change(session)
                await session.commit()
                return result
        except (StaleDataError, DBAPIError) as exc:
            if attempt == attempts or not lost_race(exc):
                raise
            log.info("concurrent change; writing again", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(M.retry_delay(attempt, 0.01, 0.5, random.random()))
    raise AssertionError("unreachable")


def _case_and_steps(case_id: str | ScalarSelect[str]) -> Select[tuple[Case, CaseStep]]:
    return (
        select(Case, CaseStep)
        .join(CaseStep, CaseStep.case_id == Case.id)
        .where(Case.id == case_id)
        .order_by(CaseStep.position)
    )


async def read_case(session: AsyncSession, case_id: str) -> tuple[Case, list[CaseStep]]:
    """A case and all of its steps (in order), to read: one statement."""
    rows = (await session.execute(_case_and_steps(case_id))).all()
    if not rows:
        raise NoResultFound("no such case")
    return rows[0][0], [row[1] for row in rows]


async def lock_case(session: AsyncSession, case_id: str | ScalarSelect[str]) -> tuple[Case, list[CaseStep]]:
    """A case and all of its steps (in order), fresh from the database, to change them: one statement.
    Their rows are locked (``FOR UPDATE``; SQLite has one writer anyway), so that the writers of one
    case — the runner's answers, every gateway's event consumers, a withdrawal, a hand-over, the
    submission's last word — wait for each other in turn and then read what the other wrote (PostgreSQL
    fetches the newest version of a locked row it waited for), instead of writing over a version
    another has meanwhile moved."""
    case, steps, _ = await _lock_case(session, case_id)
    return case, steps


async def _lock_case(
    session: AsyncSession, case_id: str | ScalarSelect[str], parked: tuple[str, str] | None = None
) -> tuple[Case, list[CaseStep], bool]:
    """`lock_case`, and in the same statement whether events are parked about `parked` (department,
    resource id)."""
    query: Select[Any] = _case_and_steps(case_id).with_for_update().execution_options(populate_existing=True)
    if parked is not None:
        query = query.add_columns(
            exists()
            .where(ParkedEvent.department == parked[0], ParkedEvent.aggregate_id == parked[1])
            .label("parked")
        )
    rows = (await session.execute(query)).all()
    if not rows:
        raise NoResultFound("no such case")
    return rows[0][0], [row[1] for row in rows], parked is not None and bool(rows[0][2])


def step_materials(
    uploaded: Mapping[str, dict[str, Any]], wanted: list[str]
) -> list[common_pb2.MaterialReference]:
    """References to the materials a step receives. An entry ``key=kind`` hands the material uploaded as
    `key` to the department under its own checklist name `kind` (one passport serves two checklists)."""
    references = []
    for entry in wanted:
        key, _, kind = entry.partition("=")
        if key in uploaded:
            references.append(common_pb2.MaterialReference(**{**uploaded[key], "kind": kind or key}))
    return references


def undo_rules(steps: list[CaseStep]) -> dict[str, M.Undo]:
    """How each step of a case can be undone (``Action.undo``), with the actions that end an undo
    (``Action.undo_ended_by``) resolved to the case's steps that run them."""
    rules = {}
    for step in steps:
        action = ACTIONS[step.action]
        ended_by = frozenset(s.step_key for s in steps if s.action in action.undo_ended_by)
        rules[step.step_key] = replace(action.undo, ended_by=ended_by)
    return rules


def compensation_request_id(step: CaseStep) -> str:
    return str(uuid.uuid5(uuid.UUID(step.request_id), "compensate"))


@dataclass
class RunnerSettings:
    call_timeout: float = 5.0
    retry_base: float = 0.5
    retry_max: float = 30.0
    max_attempts: int = 8
    poll_interval: float = 1.0
    concurrency: int = 16


@dataclass(frozen=True)
class _AsPending:
    """A claimed (RUNNING) step seen as the PENDING step it was, to ask the model if it was ready."""

    row: CaseStep

    @property
    def step_key(self) -> str:
        return self.row.step_key

    @property
    def state(self) -> str:
        return StepState.PENDING

    @property
    def department_state(self) -> str:
        return self.row.department_state

    @property
    def position(self) -> int:
        return self.row.position

    @property
    def depends_on(self) -> list[str]:
        return list(self.row.depends_on)

    @property
    def starts_when(self) -> str:
        return self.row.starts_when


Alarm = Callable[[str, str, str], None]  # (department, step key, reason): an operator must act


class SagaRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        departments: Mapping[str, Department],
        clock: Clock,
        settings: RunnerSettings,
        owner: str | None = None,
        alarm: Alarm | None = None,
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        # what it only reads (due steps, a step's input) goes through `reads` (SQLite: the read-only
        # connections beside the writer); every claim and write is version-checked against the database
        self._reads = reads or sessions
        self._departments = departments
        self._clock = clock
        self._settings = settings
        self.owner = owner or f"gw-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()
        # the create calls this runner has sent whose answers are not yet recorded, by request_id: done
        # once the answer is written (or the step has failed)
        self._answering: dict[str, asyncio.Future[None]] = {}
        # the cases a submitting request is driving (`drive(first=True)`): whether a write of this runner
        # has made a step of theirs ready since it last looked
        self._made_ready: dict[str, bool] = {}
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._alarm = alarm
        self._tasks: set[asyncio.Task[Any]] = set()

    def wake(self) -> None:
        self._wake.set()

    def spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        """Run `work` in the background, kept until it ends and cancelled by `close` (shutdown)."""

        async def run() -> T:
            return await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background saga work failed", error=repr(task.exception()))

    async def close(self) -> None:
        """Cancel the background work still running (a drive started by a request that has answered)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- claiming -------------------------------------------------------------------------------

    async def _due_steps(self, case_id: str | None, first: bool = False) -> list[CaseStep]:
        """Ready steps whose time has come (oldest first, one page), then claimed steps whose lease
        expired. `first`: the submitting request's own drive (only steps not yet tried)."""
        now = self._clock.now()
        due = select(CaseStep).where(CaseStep.ready == true())  # (`IS TRUE` would not use the index)
        if case_id is not None:
            due = due.where(CaseStep.case_id == case_id)
        # `first`: only the case's steps not yet tried (retries are the background loop's)
        due = due.where(CaseStep.attempts == 0) if first else due.where(CaseStep.next_attempt_at <= now)
        lost = select(CaseStep).where(CaseStep.lease_until < now)
        if case_id is not None:
            lost = lost.where(CaseStep.case_id == case_id)
        async with self._reads() as session:
            steps = list(
                await session.scalars(due.order_by(CaseStep.next_attempt_at, CaseStep.id).limit(PAGE))
            )
            if not first:  # a lost lease is the background loop's to recover
                steps += await session.scalars(lost.order_by(CaseStep.lease_until).limit(PAGE))
        return [s for s in steps if s.id not in self._inflight]

    async def _claim(self, due: Sequence[CaseStep]) -> list[CaseStep]:
        """Claim due steps, in one transaction: each by its own version-checked update, so that a step
        another runner claimed or changed meanwhile is left out. Returns the steps claimed."""
        now = self._clock.now()
        lease = now + dt.timedelta(seconds=self._settings.call_timeout + 5)
        wanted = []
        for step in due:
            new_state = StepState.COMPENSATING if step.state == StepState.COMPENSATING else StepState.RUNNING
            wanted.append((step, M.check(StepState(step.state), new_state)))
        won = []
        async with self._sessions() as session:
            for step, new_state in wanted:
                result = await session.execute(
                    update(CaseStep)
                    .where(CaseStep.id == step.id, CaseStep.version == step.version)
                    .values(
                        state=new_state,
                        ready=False,
                        lease_owner=self.owner,
                        lease_until=lease,
                        version=CaseStep.version + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if cast("CursorResult[Any]", result).rowcount == 1:
                    won.append((step, new_state))
            await session.commit()
        for step, new_state in won:
            step.state, step.lease_owner, step.lease_until, step.version = (
                new_state,
                self.owner,
                lease,
                step.version + 1,
            )
        return [step for step, _ in won]

    def claim_opened(self, steps: list[CaseStep], now: dt.datetime) -> list[CaseStep]:
        """Claim the steps of a case being opened that are ready at once, for the request that opens it
        (written in the transaction that opens the case, in place of a claim of their own): that request
        runs them (`drive(claimed=...)`), in its own trace. If its gateway dies first, their lease
        expires and the background loop takes them up, as after any claim. Returns them."""
        lease = now + dt.timedelta(seconds=self._settings.call_timeout + 5)
        claimed = [s for s in steps if s.ready]
        for step in claimed:
            step.state = M.check(StepState(step.state), StepState.RUNNING)
            step.ready = False
            step.lease_owner, step.lease_until = self.owner, lease
            step.next_attempt_at = now
        return claimed

    # -- running --------------------------------------------------------------------------------

    async def drive(
        self, case_id: str | None = None, *, first: bool = False, claimed: Sequence[CaseStep] = ()
    ) -> int:
        """Run every step that is due now (of one case, or of all), until none is. Returns how many ran.
        `first`: the submitting request drives its new case: the steps it `claimed` when it opened the
        case, then those they make ready (so that they run in the request's trace, not in the
        background loop's)."""
        ran = len(claimed)
        # A new case's drive looks for more of its steps only when this runner's writes made one ready
        # (`_settle` notes it): after a one-step case's step, no query at all.
        watch = case_id if first and claimed else None
        if watch is not None:
            self._made_ready[watch] = False
        try:
            if claimed:
                await asyncio.gather(*(self._run_step(s) for s in claimed))
            while True:
                if watch is not None:
                    if not self._made_ready[watch]:
                        return ran
                    self._made_ready[watch] = False
                due = await self._due_steps(case_id, first)
                if not due:
                    return ran
                claimed = await self._claim(due)
                if not claimed:
                    return ran
                await asyncio.gather(*(self._run_step(s) for s in claimed))
                ran += len(claimed)
        finally:
            if watch is not None:
                del self._made_ready[watch]

    async def answered(self, request_ids: Sequence[str], timeout: float) -> None:
        """Wait (at most `timeout` seconds) until this runner has recorded the answers of the calls
        with these request ids that it is making now: a department's event about a record it has just
        created often arrives before the create call's answer is written, and would otherwise be
        applied in a transaction of its own to a step still waiting for that answer."""
        pending = [self._answering[r] for r in request_ids if r in self._answering]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def _run_step(self, step: CaseStep) -> None:
        self._inflight.add(step.id)
        answering = None
        if step.state != StepState.COMPENSATING:
            answering = self._answering[step.request_id] = asyncio.get_running_loop().create_future()
        try:
            async with self._limit:
                if step.state == StepState.COMPENSATING:
                    await self._compensate(step)
                else:
                    await self._execute(step)
        except Exception as exc:
            if lost_race(exc):
                # Other writers of the case kept winning (`write_again` gave up): nothing is wrong with
                # the step. It keeps its lease, and when that runs out the background loop runs it again
                # with the same request_id, so the department answers what it answered; nothing is lost.
                log.warning("answer not recorded (case kept changing); step runs again", step=step.step_key)
                return
            log.exception("step crashed", step=step.step_key)
            with contextlib.suppress(Exception):  # if even that fails, the lease expires and it is retried
                await self._fail(step.id, Failure.PROGRAMMING, type(exc).__name__)
        finally:
            self._inflight.discard(step.id)
            if answering is not None:
                del self._answering[step.request_id]
                answering.set_result(None)

    async def _write(self, change: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `change` in a fresh session and commit; on a lost race (a version moved meanwhile) start
        again from the database (`write_again`)."""
        return await write_again(self._sessions, change)

    async def _load(self, session: AsyncSession, step_id: str) -> tuple[Case, CaseStep, list[CaseStep]]:
        """A step, its case (locked) and all of the case's steps (`lock_case`)."""
        case, step, steps, _ = await self._load_parked(session, step_id)
        return case, step, steps

    async def _load_parked(
        self, session: AsyncSession, step_id: str, parked: tuple[str, str] | None = None
    ) -> tuple[Case, CaseStep, list[CaseStep], bool]:
        """`_load`, and in the same statement whether events are parked about `parked` (department,
        resource id)."""
        of_case = select(CaseStep.case_id).where(CaseStep.id == step_id).scalar_subquery()
        case, steps, any_parked = await _lock_case(session, of_case, parked)
        step = next((s for s in steps if s.id == step_id), None)
        if step is None:
            raise NoResultFound(f"no step {step_id}")
        return case, step, steps, any_parked

    async def _still_ready(self, step_id: str) -> bool:
        """Whether a claimed step may really run now (its dependencies satisfied); if not — a row marked
        ready by the upgrade, or a race — it goes back to wait, and `_settle` marks it when it may."""

        async def check(session: AsyncSession) -> bool:
            case, step, steps = await self._load(session, step_id)
            others = [s if s.id != step.id else _AsPending(s) for s in steps]
            if step.step_key in M.ready_steps(others):
                return True
            step.state = StepState.PENDING
            step.lease_owner = step.lease_until = None
            self._settle(case, steps)
            return False

        return await self._write(check)

    async def _execute(self, step: CaseStep) -> None:
        action = ACTIONS[step.action]
        if step.depends_on and not await self._still_ready(step.id):
            return
        async with self._reads() as session:  # what the call is built from: one Core statement
            rows = (
                await session.execute(
                    select(Case.case_no, Case.data, Case.materials, *_EARLIER)
                    .outerjoin(CaseStep, and_(CaseStep.case_id == Case.id, CaseStep.position < step.position))
                    .where(Case.id == step.case_id)
                )
            ).all()
        if not rows:
            raise NoResultFound(f"no case {step.case_id}")
        case_no, data, materials = rows[0][:3]
        earlier = [row for row in rows if row.step_key is not None]
        step_input = StepInput(
            data=data,
            reads=action.reads,
            materials=step_materials(materials, step.materials),
            results={s.step_key: s.result for s in earlier},
            resources={s.step_key: s.resource_id or "" for s in earlier},
            request_id=step.request_id,
        )
        try:
            request = action.rpc.check(action.build(step_input))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("step request cannot be built", step=step.step_key, action=action.name, error=repr(exc))
            await self._fail(step.id, Failure.PROGRAMMING, f"request not built: {type(exc).__name__}")
            return
        ctx = CallContext(request_id=step.request_id, case_no=case_no, timeout=self._settings.call_timeout)
        department = self._departments[step.department]
        try:
            response = await action.rpc.call(department, request, ctx)
            outcome = action.outcome(response)
        except Broken as exc:
            await self._fail(step.id, Failure.PROGRAMMING, exc.message)
            return
        except Unavailable as exc:
            await self._fail(step.id, Failure.TRANSPORT, exc.message)
            return
        except NotAllowed as exc:
            self._raise_alarm(step, exc.reason)
            await self._fail(step.id, Failure.OPERATOR, f"{step.department} refused the gateway ({exc.code})")
            return
        except Refused as exc:
            if exc.reason in OPERATOR_REFUSALS:  # e.g. a calendar not covering the year: not the applicant's
                self._raise_alarm(step, exc.reason)
                await self._fail(step.id, Failure.OPERATOR, f"{step.department}: {exc.reason}")
                return
            if exc.reason not in action.nothing_to_do:
                await self._refuse(step.id, exc.reason, exc.message, [], code=exc.code)
                return
            outcome = Outcome(resource_id="", state=StepState.DONE, department_state=exc.reason)
        except Invalid as exc:
            await self._refuse(
                step.id, "INVALID_ARGUMENT", exc.message, exc.violations, code="INVALID_ARGUMENT"
            )
            return
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("department answer not understood", step=step.step_key, error=repr(exc))
            await self._fail(step.id, Failure.PROGRAMMING, f"answer not understood: {type(exc).__name__}")
            return
        log.info("step accepted", step=step.step_key, department=step.department, state=outcome.state)

        # the parked events about the resource answered are looked for in the statement that locks the case
        answered = (step.department, outcome.resource_id) if outcome.resource_id else None

        async def accept(session: AsyncSession) -> bool:
            case, fresh, steps, parked = await self._load_parked(session, step.id, answered)
            flags = M.flags_of(case.outcome)
            failed = flags.rejected or flags.withdrawn
            fresh.state = M.on_outcome(
                StepState(fresh.state),
                outcome.state,
                case_failed=failed,
                compensable=M.undone_with_case(outcome.state, undo_rules(steps)[fresh.step_key], steps),
            )
            if fresh.state == StepState.COMPENSATING:
                fresh.next_attempt_at = self._clock.now()
            fresh.resource_id = outcome.resource_id or fresh.resource_id
            if M.RANK.get(StepState(fresh.state), -1) <= M.RANK[outcome.state] or not fresh.department_state:
                fresh.department_state = outcome.department_state
            fresh.statutory_deadline = outcome.statutory_deadline
            fresh.result = outcome.result
            fresh.lease_owner = fresh.lease_until = None
            fresh.attempts += 1
            fresh.updated_at = self._clock.now()
            if parked or (fresh.resource_id and fresh.resource_id != outcome.resource_id):
                await self._apply_parked(session, case, fresh, steps)
            self._settle(case, steps)
            return any(s.ready for s in steps)

        if await self._write(accept):  # a step of the case is ready now: the background loop may take it
            self.wake()

    def _raise_alarm(self, step: CaseStep, reason: str) -> None:
        log.error(
            "department refused the gateway: an operator must fix grants or certificates",
            department=step.department,
            step=step.step_key,
            reason=reason,
        )
        if self._alarm is not None:
            self._alarm(step.department, step.step_key, reason)

    async def _fail(self, step_id: str, failure: Failure, message: str) -> None:
        async def fail(session: AsyncSession) -> None:
            case, step, steps = await self._load(session, step_id)
            step.attempts += 1
            step.lease_owner = step.lease_until = None
            step.message = message
            step.updated_at = self._clock.now()
            after = M.on_failure(StepState(step.state), failure, step.attempts, self._settings.max_attempts)
            step.state = after.state
            if after.retry:
                delay = M.retry_delay(
                    step.attempts, self._settings.retry_base, self._settings.retry_max, random.random()
                )
                step.next_attempt_at = self._clock.now() + dt.timedelta(seconds=delay)
                log.info("step will retry", step=step.step_key, attempts=step.attempts, delay=round(delay, 2))
            else:
                step.reason = after.reason
                log.warning("step needs attention", step=step.step_key, reason=after.reason, error=message)
            self._settle(case, steps)

        await self._write(fail)

    async def _refuse(
        self,
        step_id: str,
        reason: str,
        message: str,
        violations: list[tuple[str, str, str]],
        *,
        code: str = "FAILED_PRECONDITION",
    ) -> None:
        """The department refused the step's call (`code`: its gRPC status, e.g. ALREADY_EXISTS)."""

        async def refuse(session: AsyncSession) -> str:
            case, step, steps = await self._load(session, step_id)
            step.state = M.check(StepState(step.state), StepState.REFUSED)
            step.reason = reason
            step.message = message
            step.result = {
                "violations": [{"field": f, "reason": r, "description": d} for f, r, d in violations],
                "code": code,
            }
            step.lease_owner = step.lease_until = None
            step.attempts += 1
            step.updated_at = self._clock.now()
            self._begin_compensation(case, steps, {"rejected": True, "reason": reason, "step": step.step_key})
            return step.step_key

        key = await self._write(refuse)
        log.info("step refused", step=key, reason=reason)
        self.wake()

    def _begin_compensation(self, case: Case, steps: list[CaseStep], outcome: dict[str, object]) -> None:
        """The case failed: undo the steps that exist for its sake (``M.begin_compensation``); a record
        that stands on its own, or one its department can no longer undo, keeps its state."""
        case.outcome = {**case.outcome, **outcome}
        changes = M.begin_compensation(steps, undo_rules(steps))
        now = self._clock.now()
        for step in steps:
            new = changes.get(step.step_key)
            if new is None:
                continue
            step.state = new
            step.updated_at = now
            if new == StepState.COMPENSATING:
                step.next_attempt_at = now
                step.attempts = 0
        self._settle(case, steps)

    async def _compensate(self, step: CaseStep) -> None:
        action = ACTIONS[step.action]
        async with self._sessions() as session:
            case = await session.get_one(Case, step.case_id)
            case_no, reason = case.case_no, str(case.outcome.get("reason", "CASE_FAILED"))
        if not (action.compensate_rpc and action.compensate_build and step.resource_id):
            await self._fail(step.id, Failure.PROGRAMMING, "nothing to undo the step with")
            return
        request_id = compensation_request_id(step)
        ctx = CallContext(request_id=request_id, case_no=case_no, timeout=self._settings.call_timeout)
        try:
            request = action.compensate_rpc.check(
                action.compensate_build(step.resource_id, request_id, reason, step.result)
            )
            await action.compensate_rpc.call(self._departments[step.department], request, ctx)
        except Broken as exc:
            await self._fail(step.id, Failure.PROGRAMMING, exc.message)
            return
        except Unavailable as exc:
            await self._fail(step.id, Failure.TRANSPORT, exc.message)
            return
        except NotAllowed as exc:
            self._raise_alarm(step, exc.reason)
            await self._fail(step.id, Failure.OPERATOR, f"{step.department} refused the gateway ({exc.code})")
            return
        except (Refused, Invalid) as exc:
            # The department keeps its record (e.g. ILLEGAL_TRANSITION: decided meanwhile): never shown
            # as undone — staff settle it, and the department's own event moves the step if it ends it.
            reason = exc.reason if isinstance(exc, Refused) else "INVALID_ARGUMENT"
            log.warning("compensation refused", step=step.step_key, reason=reason, error=exc.message)
            await self._undo_refused(step.id, reason)
            return
        except (KeyError, TypeError, ValueError) as exc:
            await self._fail(step.id, Failure.PROGRAMMING, f"undo not built: {type(exc).__name__}")
            return

        async def done(session: AsyncSession) -> None:
            case, fresh, steps = await self._load(session, step.id)
            if fresh.state == StepState.COMPENSATING:  # (an event may have told us first)
                fresh.state = StepState.COMPENSATED
                fresh.department_state = "CANCELLED"
            fresh.lease_owner = fresh.lease_until = None
            fresh.updated_at = self._clock.now()
            self._settle(case, steps)

        await self._write(done)
        self.wake()

    async def _undo_refused(self, step_id: str, reason: str) -> None:
        async def refused(session: AsyncSession) -> None:
            case, step, steps = await self._load(session, step_id)
            if step.state != StepState.COMPENSATING:  # an event told us first
                return
            step.state = M.check(StepState.COMPENSATING, StepState.NEEDS_ATTENTION)
            step.reason = "UNDO_REFUSED"
            step.message = f"{step.department} refused the undo ({reason})"
            step.lease_owner = step.lease_until = None
            step.updated_at = self._clock.now()
            self._settle(case, steps)

        await self._write(refused)
        self.wake()

    def _settle(self, case: Case, steps: list[CaseStep]) -> None:
        """Recompute the case's one status and which of its steps are ready to be taken up."""
        now = self._clock.now()
        ready = M.ready_steps(steps)
        for step in steps:
            is_ready = step.step_key in ready and step.lease_owner is None
            if is_ready and step.next_attempt_at is None:
                step.next_attempt_at = now
            if step.ready != is_ready:
                step.ready = is_ready
            if is_ready:
                if case.id in self._made_ready:
                    self._made_ready[case.id] = True
                if (session := object_session(case)) is not None:
                    session.info[_MADE_READY] = True
        state = M.aggregate_state(M.flags_of(case.outcome), steps)
        if state != case.state:
            log.info("case state", case_no=case.case_no, old=case.state, new=state)
            case.state = state
            case.notify_due = True
            if state == CaseState.COMPLETED and case.completed_at is None:
                case.completed_at = now
        case.updated_at = now

    @staticmethod
    def made_ready(session: AsyncSession) -> bool:
        """Whether a change in `session` has made a step ready (``_settle``): worth waking the loop for."""
        return bool(session.info.get(_MADE_READY))

    # -- department decisions -------------------------------------------------------------------

    async def apply_event(
        self,
        session: AsyncSession,
        department: str,
        event_type: str,
        resource_id: str,
        request_id: str = "",
        sequence: int = 0,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move the step that holds `resource_id` at `department` by the event (the caller commits, with
        its cursor); what the event's `data` tells of the result (a fee fixed, a number issued, a
        rejection's reasons) is kept on the step. A step whose create call's answer was lost is found by
        the event's `request_id` and bound to the resource; an event about a resource no step holds yet
        is parked."""
        step_id = await session.scalar(
            select(CaseStep.id).where(CaseStep.department == department, CaseStep.resource_id == resource_id)
        )
        by_request = step_id is None and bool(request_id)
        if by_request:
            step_id = await session.scalar(
                select(CaseStep.id).where(
                    CaseStep.department == department, CaseStep.request_id == request_id
                )
            )
        if step_id is None:
            if event_type in EVENT_TYPES and resource_id:
                await self._park(session, department, event_type, resource_id, request_id, sequence, data)
            return False
        case, step, steps = await self._load(session, step_id)  # locks the case before anything changes
        if by_request and not step.resource_id and resource_id:
            step.resource_id = resource_id  # the creation event names what the lost answer would have
            log.info("step bound by its creation event", step=step.step_key, department=department)
            await self._apply_parked(session, case, step, steps)
            self._settle(case, steps)
        action = ACTIONS[step.action]
        if event_type not in action.events:
            return step.resource_id == resource_id and bool(request_id)
        moved = self._apply(case, step, steps, action, event_type, data or {})
        if moved:
            self._settle(case, steps)
        return moved

    async def unchanged_by(
        self, department: str, events: Sequence[tuple[str, str, str, Mapping[str, Any] | None]]
    ) -> int | None:
        """Whether a batch of `department`'s events (type, resource id, request id, data) would change
        nothing (`apply_event` with no write): each about a resource one step holds, which its event
        would leave as it is (ignored, nothing new learnt). Read from the committed state without a
        lock: an event that changes nothing there is one that arrived a moment earlier. Returns how
        many `apply_event` would count, or None when the batch must be applied."""
        ids = {resource_id for _, resource_id, _, _ in events}
        if "" in ids:
            return None
        async with self._reads() as session:
            rows = (
                await session.execute(
                    select(
                        CaseStep.resource_id,
                        CaseStep.action,
                        CaseStep.state,
                        CaseStep.department_state,
                        CaseStep.result,
                    ).where(CaseStep.department == department, CaseStep.resource_id.in_(ids))
                )
            ).all()
        held: dict[str, Any] = {}
        for row in rows:
            if row.resource_id in held:  # two steps name it: the write decides
                return None
            held[row.resource_id] = row
        counted = 0
        for event_type, resource_id, request_id, data in events:
            step = held.get(resource_id)
            if step is None:
                return None
            action = ACTIONS[step.action]
            if event_type not in action.events:
                counted += bool(request_id)
                continue
            if action.event_result is not None and data:
                learnt = action.event_result(event_type, data)
                if learnt and any(step.result.get(k) != v for k, v in learnt.items()):
                    return None
            to, to_department = action.events[event_type]
            if M.on_event(StepState(step.state), step.department_state, to, to_department).effect != (
                M.EventEffect.IGNORE
            ):
                return None
        return counted

    def _apply(
        self,
        case: Case,
        step: CaseStep,
        steps: list[CaseStep],
        action: Action[Any, Any],
        event_type: str,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move `step` by one event of its department; what the event's `data` tells of the result is
        kept on the step first (a fee fixed, a number issued), even when the state does not move."""
        if action.event_result is not None and data:
            learnt = action.event_result(event_type, data)
            if learnt and any(step.result.get(k) != v for k, v in learnt.items()):
                step.result = {**step.result, **learnt}
        to, to_department = action.events[event_type]
        result = M.on_event(StepState(step.state), step.department_state, to, to_department)
        if result.effect == M.EventEffect.IGNORE:
            return False
        step.state = result.state
        step.department_state = result.department_state
        step.updated_at = self._clock.now()
        if result.state != StepState.NEEDS_ATTENTION and step.reason in M.FAILURE_REASONS.values():
            step.reason = ""  # the department answered after all
        if result.effect == M.EventEffect.REFUSE:
            step.reason = "REJECTED_BY_DEPARTMENT"
            rejection = M.rejection_of(data or {})
            if rejection.reasons or rejection.codes:
                step.result = {**step.result, "rejection": rejection.as_dict()}
            self._begin_compensation(case, steps, {"rejected": True, "reason": "REJECTED_BY_DEPARTMENT"})
        elif result.effect == M.EventEffect.CANCELLED:
            self._begin_compensation(case, steps, {"rejected": True, "reason": "CANCELLED_BY_DEPARTMENT"})
        return True

    async def _park(
        self,
        session: AsyncSession,
        department: str,
        event_type: str,
        resource_id: str,
        request_id: str,
        sequence: int,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        exists = await session.scalar(
            select(ParkedEvent.id).where(
                ParkedEvent.department == department, ParkedEvent.sequence == sequence
            )
        )
        if exists is None:
            session.add(
                ParkedEvent(
                    department=department,
                    sequence=sequence,
                    event_type=event_type,
                    aggregate_id=resource_id,
                    request_id=request_id,
                    data=dict(data) if data else None,
                    created_at=self._clock.now(),
                )
            )
            log.info(
                "event parked: no step holds its resource yet", department=department, event_type=event_type
            )

    async def _apply_parked(
        self, session: AsyncSession, case: Case, step: CaseStep, steps: list[CaseStep]
    ) -> None:
        """Apply, in order, the parked events about the resource `step` has just bound."""
        parked = list(
            await session.scalars(
                select(ParkedEvent)
                .where(
                    ParkedEvent.department == step.department, ParkedEvent.aggregate_id == step.resource_id
                )
                .order_by(ParkedEvent.sequence)
            )
        )
        action = ACTIONS[step.action]
        for event in parked:
            if event.event_type in action.events:
                self._apply(case, step, steps, action, event.event_type, event.data or {})
                log.info("parked event applied", step=step.step_key, event_type=event.event_type)
            await session.delete(event)

    async def prune_parked(self) -> int:
        """Forget parked events no step claimed within PARKED_DAYS (resources of other clients)."""
        cutoff = self._clock.now() - dt.timedelta(days=PARKED_DAYS)
        async with self._sessions() as session:
            result = await session.execute(delete(ParkedEvent).where(ParkedEvent.created_at < cutoff))
            await session.commit()
        return int(cast("CursorResult[Any]", result).rowcount or 0)

    async def resume(self, department: str) -> int:
        """The department answers again: the steps that gave up waiting for it (retries spent) are taken
        up afresh. Returns how many."""
        async with self._sessions() as session:
            ids = list(
                await session.scalars(
                    select(CaseStep.id).where(
                        CaseStep.department == department,
                        CaseStep.state == StepState.NEEDS_ATTENTION,
                        CaseStep.reason == M.FAILURE_REASONS[Failure.TRANSPORT],
                    )
                )
            )
        for step_id in ids:

            async def again(session: AsyncSession, step_id: str = step_id) -> None:
                case, step, steps = await self._load(session, step_id)
                if step.state != StepState.NEEDS_ATTENTION:
                    return
                if case.outcome.get("rejected") or case.outcome.get("withdrawn"):  # the case failed meanwhile
                    then = StepState.COMPENSATING if step.resource_id else StepState.CANCELLED
                else:
                    then = StepState.PENDING
                step.state = M.check(StepState.NEEDS_ATTENTION, then)
                step.attempts = 0
                step.reason = ""
                step.next_attempt_at = self._clock.now()
                self._settle(case, steps)

            await self._write(again)
        if ids:
            log.info("department back: steps resumed", department=department, steps=len(ids))
            self.wake()
        return len(ids)

    async def withdraw(self, case_id: str) -> list[M.Blocker]:
        """Withdraw the case — unless a step can no longer be undone by its department: then nothing
        changes and those steps are returned (checked in the transaction that withdraws)."""

        async def withdraw(session: AsyncSession) -> list[M.Blocker]:
            case, steps = await lock_case(session, case_id)
            blockers = M.withdrawal_blockers(steps, undo_rules(steps))
            if not blockers:
                self._begin_compensation(case, steps, {"withdrawn": True, "reason": "WITHDRAWN_BY_APPLICANT"})
            return blockers

        # The background loop is not woken: the request that withdraws drives the undo itself
        # (``cases.drive_for``), so that its answer can say WITHDRAWN; what it leaves, the loop takes up.
        return await self._write(withdraw)

    async def hand_over(
        self, case_id: str, step_ids: set[str], by: str, results: dict[str, dict[str, Any]]
    ) -> Case:
        """Pickup at the counter: READY -> DONE for the given steps of one case (others untouched), in
        one transaction; returns the case with its new state (COMPLETED once every step is done). An ID
        card was handed over by identity's IssueCard before this; a permit is recorded as handed over."""
        now = self._clock.now()

        async def hand(session: AsyncSession) -> Case:
            case, steps = await lock_case(session, case_id)
            for step in steps:
                if step.id not in step_ids or step.state != StepState.READY:
                    continue
                step.state = M.check(StepState.READY, StepState.DONE)
                step.department_state = "ISSUED" if ACTIONS[step.action].handover else "HANDED_OVER"
                step.result = {
                    **step.result,
                    **results.get(step.id, {}),
                    "handed_over": {"by": by, "at": now.isoformat()},
                }
                step.updated_at = now
            self._settle(case, steps)
            return case

        case = await self._write(hand)
        self.wake()
        return case

    # -- background loop ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Resume every unfinished case, then keep driving due steps as they become due."""
        ticks = 0
        while True:
            try:
                await self.drive()
                if ticks % 3600 == 0:
                    await self.prune_parked()
            except Exception:
                log.exception("saga tick failed")
            ticks += 1
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
