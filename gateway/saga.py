"""The durable saga runner: it moves every case's steps along, with all of its state in the
gateway's database, so a gateway killed at any point resumes every unfinished case on start.

- A step is *due* when it is PENDING with every dependency satisfied and its retry time reached,
  when it is RUNNING with an expired lease (its runner died mid-call), or when it is COMPENSATING.
- A runner *claims* a due step by bumping its version (optimistic lock; portable to SQLite and
  PostgreSQL) and setting a lease; only the claimant calls the department, with the step's fixed
  request_id, so a repeated call after a crash returns the department's first answer.
- Unavailable departments are retried with exponential backoff; past the last attempt the step
  NEEDS_ATTENTION (shown, never dropped). A business refusal fails the case and compensates every
  step a department already holds, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import actions as A
from gateway.clients import CallContext, Department, Invalid, Refused, Unavailable
from gateway.store import Case, CaseStep
from govhub.common.v1 import common_pb2
from services.common.clock import Clock

log = structlog.get_logger("govhub.saga")

# Case states (the one status).
RECEIVED = "RECEIVED"
IN_REVIEW = "IN_REVIEW"
AWAITING_APPLICANT = "AWAITING_APPLICANT"  # a department asks for missing material
APPROVED = "APPROVED"
READY_FOR_PICKUP = "READY_FOR_PICKUP"
COMPLETED = "COMPLETED"
REJECTED = "REJECTED"
WITHDRAWN = "WITHDRAWN"
NEEDS_ATTENTION = "NEEDS_ATTENTION"
CASE_FINAL = frozenset({COMPLETED, REJECTED, WITHDRAWN})


def aggregate_state(case_outcome: Mapping[str, object], steps: list[CaseStep]) -> str:
    """The case's one status, derived from its steps."""
    states = [s.state for s in steps if s.state != A.SKIPPED]
    if case_outcome.get("withdrawn"):
        return WITHDRAWN
    if any(s == A.REFUSED for s in states) or case_outcome.get("rejected"):
        return REJECTED
    if any(s == A.NEEDS_ATTENTION for s in states):
        return NEEDS_ATTENTION
    if any(s.state not in A.FINAL and s.department_state == "AWAITING_MATERIALS" for s in steps):
        return AWAITING_APPLICANT
    if all(s == A.DONE for s in states):
        return COMPLETED
    if all(s in (A.READY, A.DONE) for s in states):
        return READY_FOR_PICKUP
    if all(s in A.SATISFIED for s in states):
        return APPROVED
    if any(s in A.HELD_BY_DEPARTMENT for s in states):
        return IN_REVIEW
    return RECEIVED


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


class SagaRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        departments: Mapping[str, Department],
        clock: Clock,
        settings: RunnerSettings,
        owner: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._departments = departments
        self._clock = clock
        self._settings = settings
        self.owner = owner or f"gw-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()
        self._limit = asyncio.Semaphore(settings.concurrency)

    def wake(self) -> None:
        self._wake.set()

    # -- claiming -------------------------------------------------------------------------------

    async def _due_steps(self, case_id: str | None, first: bool = False) -> list[CaseStep]:
        now = self._clock.now()
        scheduled = or_(CaseStep.next_attempt_at.is_(None), CaseStep.next_attempt_at <= now)
        if first:  # the submitting request's own drive: its new steps are held for it
            scheduled = or_(scheduled, CaseStep.attempts == 0)
        stmt = select(CaseStep).where(
            or_(
                (CaseStep.state == A.PENDING) & scheduled,
                (CaseStep.state == A.RUNNING) & (CaseStep.lease_until < now),
                (CaseStep.state == A.COMPENSATING)
                & or_(CaseStep.lease_until.is_(None), CaseStep.lease_until < now)
                & or_(CaseStep.next_attempt_at.is_(None), CaseStep.next_attempt_at <= now),
            )
        )
        if case_id is not None:
            stmt = stmt.where(CaseStep.case_id == case_id)
        async with self._sessions() as session:
            candidates = list((await session.scalars(stmt.limit(200))).all())
            if not candidates:
                return []
            case_ids = {c.case_id for c in candidates}
            siblings = (await session.scalars(select(CaseStep).where(CaseStep.case_id.in_(case_ids)))).all()
        by_case: dict[str, dict[str, CaseStep]] = {}
        for s in siblings:
            by_case.setdefault(s.case_id, {})[s.step_key] = s
        due = []
        for step in candidates:
            if step.id in self._inflight:
                continue
            family = by_case[step.case_id]
            needed = A.STARTED if step.starts_when == "accepted" else A.SATISFIED
            if step.state == A.PENDING and not all(
                family[d].state in needed for d in step.depends_on if d in family
            ):
                continue
            if step.state == A.COMPENSATING and any(
                s.state == A.COMPENSATING and s.position > step.position for s in family.values()
            ):
                continue  # undo in reverse order
            due.append(step)
        return due

    async def _claim(self, step: CaseStep) -> CaseStep | None:
        now = self._clock.now()
        lease = now + dt.timedelta(seconds=self._settings.call_timeout + 5)
        new_state = A.COMPENSATING if step.state == A.COMPENSATING else A.RUNNING
        async with self._sessions() as session:
            result = await session.execute(
                update(CaseStep)
                .where(CaseStep.id == step.id, CaseStep.version == step.version)
                .values(
                    state=new_state,
                    lease_owner=self.owner,
                    lease_until=lease,
                    version=CaseStep.version + 1,
                    updated_at=now,
                )
            )
            await session.commit()
        if result.rowcount != 1:
            return None
        step.state, step.lease_owner, step.lease_until, step.version = (
            new_state,
            self.owner,
            lease,
            step.version + 1,
        )
        return step

    # -- running --------------------------------------------------------------------------------

    async def drive(self, case_id: str | None = None, *, first: bool = False) -> int:
        """Run every step that is due now (of one case, or of all), until none is. Returns how many ran.
        `first`: the submitting request drives its new case, whose steps are held for it (so that they
        run in the request's trace, not in the background loop's)."""
        ran = 0
        while True:
            due = await self._due_steps(case_id, first)
            if not due:
                return ran
            claimed = [c for c in [await self._claim(s) for s in due] if c is not None]
            if not claimed:
                return ran
            await asyncio.gather(*(self._run_step(s) for s in claimed))
            ran += len(claimed)

    async def _run_step(self, step: CaseStep) -> None:
        self._inflight.add(step.id)
        try:
            async with self._limit:
                if step.state == A.COMPENSATING:
                    await self._compensate(step)
                else:
                    await self._execute(step)
        except Exception:
            log.exception("step crashed; counted as a failed attempt", step=step.step_key)
            with contextlib.suppress(Exception):  # if even that fails, the lease expires and it is retried
                await self._retry_later(step.id, "internal error")
        finally:
            self._inflight.discard(step.id)

    async def _load(self, session: AsyncSession, step_id: str) -> tuple[Case, CaseStep, list[CaseStep]]:
        step = await session.get_one(CaseStep, step_id)
        case = await session.get_one(Case, step.case_id)
        steps = list(
            await session.scalars(
                select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.position)
            )
        )
        return case, step, steps

    async def _execute(self, step: CaseStep) -> None:
        action = A.ACTIONS[step.action]
        async with self._sessions() as session:
            case = await session.get_one(Case, step.case_id)
            case_no = case.case_no
            earlier = await session.scalars(
                select(CaseStep).where(CaseStep.case_id == case.id, CaseStep.position < step.position)
            )
            step_input = A.StepInput(
                data=case.data,
                materials=step_materials(case.materials, step.materials),
                results={s.step_key: s.result for s in earlier},
                request_id=step.request_id,
            )
        ctx = CallContext(request_id=step.request_id, case_no=case_no, timeout=self._settings.call_timeout)
        department = self._departments[step.department]
        try:
            response = await department.call(action.method, action.build(step_input), ctx)
            outcome = action.outcome(response)
        except Unavailable as exc:
            await self._retry_later(step.id, exc.message)
            return
        except Refused as exc:
            if exc.reason not in action.nothing_to_do:
                await self._refuse(step.id, exc.reason, exc.message, [])
                return
            outcome = A.Outcome(resource_id="", state=A.DONE, department_state=exc.reason)
        except Invalid as exc:
            await self._refuse(step.id, "INVALID_ARGUMENT", exc.message, exc.violations)
            return
        log.info("step accepted", step=step.step_key, department=step.department, state=outcome.state)
        async with self._sessions() as session:
            case, fresh, steps = await self._load(session, step.id)
            fresh.resource_id = outcome.resource_id or None
            fresh.department_state = outcome.department_state
            fresh.statutory_deadline = outcome.statutory_deadline
            fresh.result = outcome.result
            fresh.lease_owner = fresh.lease_until = None
            fresh.attempts += 1
            fresh.updated_at = self._clock.now()
            fresh.version += 1
            if case.state in (REJECTED, WITHDRAWN) and action.compensate_method:
                fresh.state = A.COMPENSATING  # the case failed while this call was in flight: undo it
                fresh.next_attempt_at = None
            else:
                fresh.state = outcome.state
            self._settle(case, steps)
            await session.commit()
        self.wake()

    async def _retry_later(self, step_id: str, message: str) -> None:
        async with self._sessions() as session:
            case, step, steps = await self._load(session, step_id)
            step.attempts += 1
            step.lease_owner = step.lease_until = None
            step.message = message
            step.version += 1
            step.updated_at = self._clock.now()
            if step.attempts >= self._settings.max_attempts:
                step.state = A.NEEDS_ATTENTION
                step.reason = "DEPARTMENT_UNAVAILABLE"
                log.warning("step needs attention", step=step.step_key, attempts=step.attempts)
            else:
                if step.state == A.RUNNING:
                    step.state = A.PENDING
                delay = min(self._settings.retry_max, self._settings.retry_base * 2 ** (step.attempts - 1))
                delay *= 0.5 + random.random() / 2
                step.next_attempt_at = self._clock.now() + dt.timedelta(seconds=delay)
                log.info("step will retry", step=step.step_key, attempts=step.attempts, delay=round(delay, 2))
            self._settle(case, steps)
            await session.commit()

    async def _refuse(
        self, step_id: str, reason: str, message: str, violations: list[tuple[str, str, str]]
    ) -> None:
        async with self._sessions() as session:
            case, step, steps = await self._load(session, step_id)
            step.state = A.REFUSED
            step.reason = reason
            step.message = message
            step.result = {
                "violations": [{"field": f, "reason": r, "description": d} for f, r, d in violations]
            }
            step.lease_owner = step.lease_until = None
            step.attempts += 1
            step.version += 1
            step.updated_at = self._clock.now()
            self._begin_compensation(case, steps, {"rejected": True, "reason": reason, "step": step.step_key})
            await session.commit()
        log.info("step refused", step=step.step_key, reason=reason)
        self.wake()

    def _begin_compensation(self, case: Case, steps: list[CaseStep], outcome: dict[str, object]) -> None:
        case.outcome = {**case.outcome, **outcome}
        for other in steps:
            if other.state == A.PENDING:
                other.state = A.CANCELLED
            elif other.state in A.HELD_BY_DEPARTMENT:
                action = A.ACTIONS[other.action]
                other.state = A.COMPENSATING if action.compensate_method else other.state
                other.next_attempt_at = None
                other.attempts = 0
            other.version += 1
        self._settle(case, steps)

    async def _compensate(self, step: CaseStep) -> None:
        action = A.ACTIONS[step.action]
        async with self._sessions() as session:
            case = await session.get_one(Case, step.case_id)
            case_no, reason = case.case_no, str(case.outcome.get("reason", "CASE_FAILED"))
        assert action.compensate_method and action.compensate_build and step.resource_id
        request_id = compensation_request_id(step)
        ctx = CallContext(request_id=request_id, case_no=case_no, timeout=self._settings.call_timeout)
        try:
            await self._departments[step.department].call(
                action.compensate_method,
                action.compensate_build(step.resource_id, request_id, reason, step.result),
                ctx,
            )
        except Unavailable as exc:
            await self._retry_later(step.id, exc.message)
            return
        except (Refused, Invalid) as exc:
            # The department no longer holds it in a cancellable state (e.g. already cancelled).
            log.warning("compensation refused", step=step.step_key, error=exc.message)
        async with self._sessions() as session:
            case, fresh, steps = await self._load(session, step.id)
            fresh.state = A.COMPENSATED
            fresh.department_state = "CANCELLED"
            fresh.lease_owner = fresh.lease_until = None
            fresh.version += 1
            fresh.updated_at = self._clock.now()
            self._settle(case, steps)
            await session.commit()
        self.wake()

    def _settle(self, case: Case, steps: list[CaseStep]) -> None:
        state = aggregate_state(case.outcome, steps)
        if state != case.state:
            log.info("case state", case_no=case.case_no, old=case.state, new=state)
            case.state = state
        case.updated_at = self._clock.now()
        case.version += 1

    # -- department decisions -------------------------------------------------------------------

    async def apply_event(
        self, session: AsyncSession, department: str, event_type: str, resource_id: str
    ) -> bool:
        """Move the step that holds `resource_id` at `department` by the event; duplicates and events
        for resources no case holds are ignored. The caller commits (with its cursor)."""
        holders = await session.scalars(
            select(CaseStep).where(CaseStep.department == department, CaseStep.resource_id == resource_id)
        )
        step = next((s for s in holders if event_type in A.ACTIONS[s.action].events), None)
        if step is None:
            return False
        action = A.ACTIONS[step.action]
        new_state, department_state = action.events[event_type]
        case, step, steps = await self._load(session, step.id)
        if step.state in (A.COMPENSATING, A.COMPENSATED, A.CANCELLED, A.REFUSED):
            if new_state == A.CANCELLED and step.state == A.COMPENSATING:
                step.state = A.COMPENSATED
                step.department_state = department_state
                step.version += 1
                self._settle(case, steps)
                return True
            return False
        if new_state == A.REFUSED:
            step.state = A.REFUSED
            step.reason = "REJECTED_BY_DEPARTMENT"
            step.department_state = department_state
            step.version += 1
            self._begin_compensation(case, steps, {"rejected": True, "reason": "REJECTED_BY_DEPARTMENT"})
            return True
        if new_state == A.CANCELLED:
            step.state = A.CANCELLED
            step.department_state = department_state
            step.version += 1
            self._begin_compensation(case, steps, {"rejected": True, "reason": "CANCELLED_BY_DEPARTMENT"})
            return True
        if A.RANK.get(new_state, -1) < A.RANK.get(step.state, -1):
            return False  # a late event: the step is already further on
        if A.RANK.get(new_state, -1) == A.RANK.get(step.state, -1):
            if step.department_state == department_state:
                return False  # a repeated event
            step.department_state = department_state  # e.g. under review -> awaiting materials
            step.version += 1
            self._settle(case, steps)
            return True
        step.state = new_state
        step.department_state = department_state
        step.version += 1
        step.updated_at = self._clock.now()
        self._settle(case, steps)
        return True

    async def withdraw(self, case_id: str) -> None:
        async with self._sessions() as session:
            case = await session.get_one(Case, case_id)
            steps = list(await session.scalars(select(CaseStep).where(CaseStep.case_id == case_id)))
            self._begin_compensation(case, steps, {"withdrawn": True, "reason": "WITHDRAWN_BY_APPLICANT"})
            await session.commit()
        self.wake()

    # -- background loop ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Resume every unfinished case, then keep driving due steps as they become due."""
        while True:
            try:
                await self.drive()
            except Exception:
                log.exception("saga tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
