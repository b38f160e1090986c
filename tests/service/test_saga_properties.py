"""Property-based test of the saga runner (hypothesis state machine): departments that succeed, refuse,
time out, or accept and then lose the gateway (a crash after the department committed), gateway
restarts, department decisions and withdrawals — in any order. Invariants:

- at most one department record per step (every retry carries the step's one request_id);
- once settled, a case that ended rejected or withdrawn holds no live department record (fully
  compensated) but those its view shows as still in force (a record that stands on its own, the
  accommodation registration), and each of those is live at its department; a case whose every step is
  done is completed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from gateway.cases import kept_in_force, open_case
from gateway.catalogue import load_catalogue
from gateway.clients import CallContext, Refused, Unavailable
from gateway.saga.model import CASE_FINAL, FINAL
from gateway.saga.model import StepState as A
from gateway.saga.runner import RunnerSettings, SagaRunner
from gateway.store import Base, Case, CaseStep
from services.common.clock import Clock
from services.common.db import create_schema, dispose_engine, make_engine, session_factory
from tests.conftest import examples
from tests.fakes import accepting_permits, accepting_residence
from tests.service.test_gateway_foreigner import DATA

CATALOGUE = load_catalogue()
MATTER = CATALOGUE["foreigner-employment"]
MODES = ("ok", "unavailable", "refuse", "crash")


class GatewayCrashed(BaseException):
    """The gateway process died right after the department committed (not an Exception: nothing in the
    runner may catch it, exactly as with a SIGKILL)."""


class SteppingClock(Clock):
    def __init__(self) -> None:
        object.__setattr__(self, "fixed_today", dt.date(2016, 9, 15))
        object.__setattr__(self, "offset", dt.timedelta())

    def now(self) -> dt.datetime:
        return dt.datetime(2016, 9, 15, 2, 0, tzinfo=dt.UTC) + self.offset  # type: ignore[attr-defined]

    def advance(self, seconds: float) -> None:
        object.__setattr__(self, "offset", self.offset + dt.timedelta(seconds=seconds))  # type: ignore[attr-defined]


class Department:
    """A department whose next answer is chosen by the test; it keeps every record it made."""

    def __init__(self, name: str) -> None:
        from tests.fakes import FakeDepartment

        self.fake = FakeDepartment(name)
        self.name = name
        self.mode = "ok"
        self.created: dict[str, Any] = {}  # request_id -> response (one record per request_id)
        self.cancelled: set[str] = set()  # resource ids ended (cancelled, or rejected by the department)

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any:
        mode, self.mode = self.mode, "ok"
        if mode == "unavailable":
            raise Unavailable(self.name, "down")
        if mode == "refuse" and method.startswith(("Create", "Register")):
            raise Refused(self.name, "REFUSED_BY_TEST", "no", "FAILED_PRECONDITION")
        response = await self.fake.call(method, request, ctx)
        if method.startswith(("Create", "Register")):
            self.created.setdefault(ctx.request_id, response)
        if method.startswith("Cancel"):
            self.cancelled.add(request.id)
        if mode == "crash":
            raise GatewayCrashed
        return response

    def live_records(self) -> set[str]:
        ids = set()
        for response in self.created.values():
            for field in (
                "work_permit_application",
                "residence_permit_application",
                "accommodation_registration",
            ):
                if response.DESCRIPTOR.fields_by_name.get(field) and response.HasField(field):
                    ids.add(getattr(response, field).id)
        return ids - self.cancelled

    def watch(self, after_sequence: int) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = SteppingClock()
        self.permits = Department("permits")
        accepting_permits(self.permits.fake)
        self.residence = Department("residence")
        accepting_residence(self.residence.fake)
        self.departments = {
            "permits": self.permits,
            "residence": self.residence,
            "identity": Department("identity"),
        }
        self.engine = make_engine(f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'saga.db'}")
        self.run(create_schema(self.engine, Base.metadata))
        self.sessions = session_factory(self.engine)
        self.runner = self.new_runner()
        self.case_ids: list[str] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def new_runner(self) -> SagaRunner:
        config = RunnerSettings(call_timeout=1.0, retry_base=0.5, retry_max=2.0, max_attempts=50)
        return SagaRunner(self.sessions, self.departments, self.clock, config)  # type: ignore[arg-type]

    def drive(self) -> None:
        try:
            self.run(self.runner.drive())
        except GatewayCrashed:
            self.restart()

    def teardown(self) -> None:
        self.run(dispose_engine(self.engine))
        self.loop.close()
        self.tmp.cleanup()

    async def steps(self) -> list[CaseStep]:
        async with self.sessions() as session:
            return list(await session.scalars(select(CaseStep)))

    async def cases(self) -> list[Case]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Case)))

    # -- rules -------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.case_ids) < 3)
    @rule()
    def submit(self) -> None:
        data = {**DATA, "applicant": {**DATA["applicant"], "passport_number": f"E{len(self.case_ids):08d}"}}
        case, _ = self.run(open_case(self.sessions, self.clock, MATTER, data, {}))
        self.case_ids.append(case.id)
        self.drive()

    @rule(department=st.sampled_from(["permits", "residence"]), mode=st.sampled_from(MODES))
    def next_answer(self, department: str, mode: str) -> None:
        self.departments[department].mode = mode

    @rule()
    def tick(self) -> None:
        self.clock.advance(3)
        self.drive()

    @rule()
    def restart(self) -> None:
        """A new gateway process: in-flight leases expire, then it resumes every unfinished case."""
        self.runner = self.new_runner()
        self.clock.advance(10)

    @rule(
        decision=st.sampled_from(
            [
                "WorkPermitApproved",
                "WorkPermitRejected",
                "WorkPermitIssued",
                "ResidencePermitApproved",
                "ResidencePermitRejected",
                "ResidencePermitIssued",
            ]
        )
    )
    def department_decides(self, decision: str) -> None:
        kind = "work_permit" if decision.startswith("Work") else "residence_permit"

        async def apply() -> None:
            for step in await self.steps():
                if step.step_key == kind and step.resource_id:
                    if decision.endswith("Rejected"):
                        self.permits.cancelled.add(step.resource_id)  # the department ended it itself
                    async with self.sessions() as session:
                        await self.runner.apply_event(session, "permits", decision, step.resource_id)
                        await session.commit()

        self.run(apply())
        self.drive()

    @precondition(lambda self: bool(self.case_ids))
    @rule(index=st.integers(min_value=0, max_value=2))
    def withdraw(self, index: int) -> None:
        case_id = self.case_ids[index % len(self.case_ids)]

        async def go() -> None:
            async with self.sessions() as session:
                case = await session.get_one(Case, case_id)
                final = case.state in CASE_FINAL
            if not final:
                await self.runner.withdraw(case_id)

        self.run(go())
        self.drive()

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def one_record_per_step(self) -> None:
        steps = self.run(self.steps())
        request_ids = {s.request_id for s in steps}
        for department in (self.permits, self.residence):
            for request_id in department.created:
                assert request_id in request_ids, "a department record no step asked for"
        resources = [s.resource_id for s in steps if s.resource_id]
        assert len(resources) == len(set(resources))

    def settle(self) -> None:
        for department in self.departments.values():
            department.mode = "ok"
        for _ in range(30):
            self.clock.advance(5)
            self.drive()

    @invariant()
    def final_cases_are_completed_or_fully_compensated(self) -> None:
        cases = self.run(self.cases())
        if not any(c.state in ("REJECTED", "WITHDRAWN") for c in cases):
            return
        self.settle()
        steps = self.run(self.steps())
        live = self.permits.live_records() | self.residence.live_records()
        for case in self.run(self.cases()):
            mine = [s for s in steps if s.case_id == case.id]
            if case.state in ("REJECTED", "WITHDRAWN"):
                kept = {s.resource_id for s in kept_in_force(case, mine) if s.resource_id}
                held = {s.resource_id for s in mine if s.resource_id} - kept
                assert not (held & live), f"{case.state} case still holds {held & live}"
                assert kept <= live, f"{case.state} case shows in force what is not: {kept - live}"
                assert {s.step_key for s in kept_in_force(case, mine)} <= {"accommodation"}
                assert all(s.state in FINAL for s in mine), [s.state for s in mine]
            if all(s.state == A.DONE for s in mine):
                assert case.state == "COMPLETED"


SagaMachine.TestCase.settings = settings(max_examples=examples(25))
TestSagaProperties = SagaMachine.TestCase
