"""The saga runner against a real database (SQLite, and PostgreSQL when configured): a backlog of any size
does not hide a due step; no department event is lost when a create call's answer is; programming and
operator faults go to staff at once while only transport failures are retried."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import models
from gateway.cases import case_view, open_case
from gateway.catalogue import load_catalogue
from gateway.clients import Broken, CallContext, NotAllowed, Unavailable
from gateway.events import Event, EventConsumer
from gateway.notify import message_for, milestone_of
from gateway.saga.model import CaseState, StepState
from gateway.saga.runner import RunnerSettings, SagaRunner, lock_case, write_again
from gateway.store import Base, Case, CaseStep, ParkedEvent
from govhub.common.v1 import common_pb2
from services.common.clock import Clock
from services.common.db import create_schema, dispose_engine, make_engine, session_factory
from tests.fakes import FakeDepartment, accepting_identity, accepting_permits, accepting_residence
from tests.service.gateway_support import TODAY
from tests.service.test_gateway_cases import VALID
from tests.service.test_gateway_foreigner import DATA

CATALOGUE = load_catalogue()
FAST = RunnerSettings(retry_base=0.001, retry_max=0.001, max_attempts=3)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    await create_schema(engine, Base.metadata)
    yield session_factory(engine)
    await dispose_engine(engine)


def _departments() -> dict[str, FakeDepartment]:
    return {
        "identity": accepting_identity(FakeDepartment("identity")),
        "residence": accepting_residence(FakeDepartment("residence")),
        "permits": accepting_permits(FakeDepartment("permits")),
    }


async def _seed_backlog(sessions: async_sessionmaker[AsyncSession], waiting: int, now: dt.datetime) -> None:
    """`waiting` foreign-employee cases whose residence-permit step waits for its work permit's decision
    (bulk inserts: the runner's queries, not the seeding, are under test)."""
    earlier = now - dt.timedelta(days=30)
    cases, steps = [], []
    for n in range(waiting):
        case_id = str(uuid.uuid4())
        cases.append(
            {
                "id": case_id,
                "case_no": f"GHBACKLOG{n:08d}",
                "matter": "foreigner-employment",
                "state": "IN_REVIEW",
                "query_code_hash": "0" * 64,
                "applicant_key": f"{n:064d}",
                "data": {},
                "materials": {},
                "outcome": {},
                "submitted_on": earlier.date(),
                "created_at": earlier,
                "updated_at": earlier,
                "version": 1,
                "notify_due": False,
            }
        )
        common = {"case_id": case_id, "department": "permits", "starts_when": "approved", "materials": []}
        common |= {"department_state": "UNDER_REVIEW", "reason": "", "message": "", "result": {}}
        common |= {"updated_at": earlier, "version": 1}
        steps.append(
            common
            | {
                "id": str(uuid.uuid4()),
                "step_key": "work_permit",
                "position": 0,
                "action": "permits.work_permit",
                "depends_on": [],
                "state": "ACCEPTED",
                "request_id": str(uuid.uuid4()),
                "resource_id": str(uuid.uuid4()),
                "attempts": 1,
                "next_attempt_at": earlier,
                "ready": False,
            }
        )
        steps.append(
            common
            | {
                "id": str(uuid.uuid4()),
                "step_key": "residence_permit",
                "position": 1,
                "action": "permits.residence_permit",
                "depends_on": ["work_permit"],
                "state": "PENDING",
                "request_id": str(uuid.uuid4()),
                "resource_id": None,
                "attempts": 0,
                "next_attempt_at": earlier,  # long past: only readiness keeps them back
                "ready": False,
            }
        )
    async with sessions() as session:
        for start in range(0, waiting, 2000):
            await session.execute(Case.__table__.insert(), cases[start : start + 2000])
            await session.execute(CaseStep.__table__.insert(), steps[2 * start : 2 * (start + 2000)])
        await session.commit()


async def test_a_due_step_runs_in_one_tick_behind_ten_thousand_waiting_cases(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    await _seed_backlog(sessions, 10_000, clock.now())
    departments = _departments()
    runner = SagaRunner(sessions, departments, clock, FAST)  # type: ignore[arg-type]
    case, _ = await open_case(sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {})

    ran = await runner.drive()  # one tick of the background loop

    assert ran == 1
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and step.state == StepState.ACCEPTED
        waiting = await session.scalar(
            select(CaseStep).where(CaseStep.step_key == "residence_permit", CaseStep.state != "PENDING")
        )
        assert waiting is None  # nothing of the backlog ran early
    assert len(departments["identity"].calls_to("CreateCardApplication")) == 1
    assert departments["permits"].calls == []


async def test_an_expired_lease_is_recovered_behind_the_backlog(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    await _seed_backlog(sessions, 2_000, clock.now())
    departments = _departments()
    runner = SagaRunner(sessions, departments, clock, FAST)  # type: ignore[arg-type]
    case, _ = await open_case(sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {})
    async with sessions() as session:  # a runner claimed it and died
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None
        step.state, step.ready = StepState.RUNNING, False
        step.lease_owner, step.lease_until = "gw-dead", clock.now() - dt.timedelta(seconds=1)
        await session.commit()
    assert await runner.drive() == 1
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and step.state == StepState.ACCEPTED and step.lease_owner is None


async def test_steps_claimed_when_the_case_opened_are_taken_up_once_the_claim_expires(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock(TODAY)
    departments = _departments()
    submitting = SagaRunner(sessions, departments, clock, FAST, owner="gw-died")  # type: ignore[arg-type]
    case, _ = await open_case(
        sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {}, runner=submitting
    )
    assert [(s.state, s.lease_owner) for s in case.steps] == [(StepState.RUNNING, "gw-died")]
    # its gateway dies before running them: another does not take them up while the claim holds ...
    assert await SagaRunner(sessions, departments, clock, FAST).drive() == 0  # type: ignore[arg-type]
    assert departments["identity"].calls == []
    # ... and does once it has expired; the applicant is told, as of any case kept
    later = Clock(TODAY + dt.timedelta(days=1))
    assert await SagaRunner(sessions, departments, later, FAST).drive() == 1  # type: ignore[arg-type]
    assert len(departments["identity"].calls_to("CreateCardApplication")) == 1
    async with sessions() as session:
        fresh = await session.get_one(Case, case.id)
        assert fresh.state == CaseState.IN_REVIEW and fresh.notify_due


class LosingAnswers(FakeDepartment):
    """A department that commits the create call but whose answer is lost `lose` times (a timeout)."""

    def __init__(self, name: str, lose: int) -> None:
        super().__init__(name)
        self.lose = lose

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any:
        answer = await super().call(method, request, ctx)
        if method.startswith("Create") and self.lose:
            self.lose -= 1
            raise Unavailable(self.name, "permits deadline_exceeded")
        return answer

    def emit_event(self, event_type: str, aggregate_id: str, request_id: str = "") -> common_pb2.Event:
        event = common_pb2.Event(
            sequence=len(self.events) + 1, type=event_type, aggregate_id=aggregate_id, request_id=request_id
        )
        self.events.append(event)
        return event


async def _work_permit(sessions: async_sessionmaker[AsyncSession], case_id: str) -> CaseStep:
    async with sessions() as session:
        step = await session.scalar(
            select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.step_key == "work_permit")
        )
        assert step is not None
        return step


@pytest.mark.parametrize("creation_event", [True, False], ids=["bound-by-request-id", "parked"])
async def test_a_decision_taken_while_the_create_answer_was_lost_is_not_lost(
    sessions: async_sessionmaker[AsyncSession], creation_event: bool
) -> None:
    clock = Clock()
    permits = accepting_permits(LosingAnswers("permits", lose=1))
    departments = {**_departments(), "permits": permits}
    runner = SagaRunner(sessions, departments, clock, RunnerSettings(retry_base=30, retry_max=30))  # type: ignore[arg-type]
    consumer = EventConsumer(permits, runner, sessions, clock)
    assert await consumer.acquire() == 0
    case, _ = await open_case(sessions, clock, CATALOGUE["foreigner-employment"], DATA, {})

    await runner.drive(case.id)  # the call reaches permits; its answer is lost: a retry in 30 s
    step = await _work_permit(sessions, case.id)
    assert step.state == StepState.PENDING and step.resource_id is None
    ((_request, ctx),) = permits.calls_to("CreateWorkPermitApplication")
    application = permits.answers[ctx.request_id].work_permit_application.id

    # permits decides before the retry; the gateway reads its events
    events = []
    if creation_event:
        events.append(permits.emit_event("WorkPermitSubmitted", application, ctx.request_id))
    events.append(permits.emit_event("WorkPermitApproved", application, "approve-request"))
    # delivered by one read of the stream: applied in one transaction, the creation event first
    await consumer.apply_batch([Event(e.type, e.aggregate_id, e.sequence, e.request_id) for e in events])

    step = await _work_permit(sessions, case.id)
    if creation_event:  # bound at once by the creation event's request_id, then moved by the decision
        assert (step.resource_id, step.state) == (application, StepState.APPROVED)
    else:  # parked until the step knows its resource: the retry's answer (the department's first one)
        assert step.resource_id is None
        async with sessions() as session:
            assert len((await session.scalars(select(ParkedEvent))).all()) == 1
        async with sessions() as session:
            fresh = await session.get_one(CaseStep, step.id)
            fresh.next_attempt_at = clock.now()  # the retry is due
            await session.commit()
        await runner.drive(case.id)
        step = await _work_permit(sessions, case.id)
        assert (step.resource_id, step.state) == (application, StepState.APPROVED)
        async with sessions() as session:
            assert (await session.scalars(select(ParkedEvent))).all() == []

    # and the case goes on: the residence permit is applied for against the approved work permit
    await runner.drive(case.id)
    ((rp_request, _),) = permits.calls_to("CreateResidencePermitApplication")
    assert rp_request.work_permit_id == application
    assert len({c.request_id for _, c in permits.calls_to("CreateWorkPermitApplication")}) == 1


class Failing(FakeDepartment):
    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name)
        self.error = error

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any:
        self.calls.append((method, request, ctx))
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason", "alarm"),
    [
        (Broken("identity", "identity internal"), "INTERNAL_ERROR", False),
        (NotAllowed("identity", "NOT_GRANTED", "not granted", "PERMISSION_DENIED"), "OPERATOR_FAULT", True),
    ],
    ids=["internal", "permission-denied"],
)
async def test_faults_that_retrying_cannot_mend_need_attention_at_once_and_never_reject(
    sessions: async_sessionmaker[AsyncSession], error: Exception, reason: str, alarm: bool
) -> None:
    clock = Clock()
    identity = Failing("identity", error)
    alarms: list[tuple[str, str, str]] = []
    runner = SagaRunner(
        sessions,
        {**_departments(), "identity": identity},
        clock,
        FAST,
        alarm=lambda *a: alarms.append(a),  # type: ignore[dict-item]
    )
    case, _ = await open_case(sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {})
    await runner.drive(case.id)
    await runner.drive()
    assert len(identity.calls) == 1  # not retried
    async with sessions() as session:
        fresh = await session.get_one(Case, case.id)
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None
        assert (step.state, step.reason) == (StepState.NEEDS_ATTENTION, reason)
        assert fresh.state == CaseState.NEEDS_ATTENTION  # delayed, not rejected
    assert bool(alarms) == alarm


async def test_a_builder_bug_needs_attention_at_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = Clock()
    departments = _departments()
    runner = SagaRunner(sessions, departments, clock, FAST)  # type: ignore[arg-type]
    broken = {**DATA, "annual_salary_yuan": "lots"}  # int("lots") in the builder: a bug, not an outage
    case, _ = await open_case(sessions, clock, CATALOGUE["foreigner-employment"], broken, {})
    await runner.drive(case.id)
    await runner.drive()
    assert departments["permits"].calls_to("CreateWorkPermitApplication") == []
    step = await _work_permit(sessions, case.id)
    assert (step.state, step.reason) == (StepState.NEEDS_ATTENTION, "INTERNAL_ERROR")


async def test_a_write_that_lost_a_race_is_refused_by_the_version(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy.orm.exc import StaleDataError

    clock = Clock()
    case, _ = await open_case(sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {})
    async with sessions() as session:
        seen = await session.get_one(Case, case.id)
        await session.execute(  # another writer moves the case on meanwhile
            update(Case)
            .where(Case.id == case.id)
            .values(state="IN_REVIEW", version=Case.version + 1)
            .execution_options(synchronize_session=False)
        )
        seen.state = "REJECTED"
        with pytest.raises(StaleDataError):
            await session.commit()


async def test_writers_of_one_case_wait_for_each_other_instead_of_losing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A writer that comes while another holds the case waits for it and then writes on what it left:
    one try, and neither change is lost (seen on PostgreSQL with two gateways: the loser of a run of
    races sent a step to staff with StaleDataError)."""
    clock = Clock()
    case, _ = await open_case(sessions, clock, CATALOGUE["foreigner-employment"], DATA, {})
    tries = 0

    async def second(session: AsyncSession) -> None:
        nonlocal tries
        tries += 1
        mine, steps = await lock_case(session, case.id)
        steps[1].message = "second"
        mine.updated_at = clock.now()

    async with sessions() as first:
        held, steps = await lock_case(first, case.id)
        later = asyncio.create_task(write_again(sessions, second))
        await asyncio.sleep(0.3)  # the second writer is waiting on the first by now
        steps[0].message = "first"
        held.updated_at = clock.now()
        await first.commit()
    await later
    assert tries == 1
    async with sessions() as session:
        _, steps = await lock_case(session, case.id)
        assert [s.message for s in steps[:2]] == ["first", "second"]


async def test_an_answer_that_cannot_be_recorded_is_asked_for_again_not_sent_to_staff(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other writers kept winning the case until the runner gave up recording a department's answer:
    the step keeps its claim (never NEEDS_ATTENTION, the applicant is not told of a delay), and once the
    claim runs out the same request is sent again and its answer recorded."""
    from sqlalchemy.orm.exc import StaleDataError

    clock = Clock(TODAY)
    departments = _departments()
    runner = SagaRunner(sessions, departments, clock, FAST)  # type: ignore[arg-type]
    case, _ = await open_case(
        sessions, clock, CATALOGUE["id-card-renewal-cross-province"], VALID["data"], {}, runner=runner
    )
    original = SagaRunner._write
    losing = {"accept": 1}

    async def write(self: SagaRunner, change: Any) -> Any:
        if losing.get(change.__name__):
            losing[change.__name__] -= 1
            raise StaleDataError("another writer won every time")
        return await original(self, change)

    monkeypatch.setattr(SagaRunner, "_write", write)
    await runner.drive(case.id, first=True, claimed=case.steps)
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and (step.state, step.reason) == (StepState.RUNNING, "")
        assert (await session.get_one(Case, case.id)).state != CaseState.NEEDS_ATTENTION
    later = SagaRunner(sessions, departments, Clock(TODAY + dt.timedelta(days=1)), FAST)  # type: ignore[arg-type]
    assert await later.drive() == 1
    calls = departments["identity"].calls_to("CreateCardApplication")
    assert len(calls) == 2 and calls[0][1].request_id == calls[1][1].request_id  # the same request again
    async with sessions() as session:
        step = await session.scalar(select(CaseStep).where(CaseStep.case_id == case.id))
        assert step is not None and step.state == StepState.ACCEPTED and step.lease_owner is None


async def test_due_steps_are_claimed_together_and_a_step_taken_meanwhile_is_left_out(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    matter = CATALOGUE["id-card-renewal-cross-province"]
    cases = [(await open_case(sessions, clock, matter, VALID["data"], {}))[0] for _ in range(3)]
    runner = SagaRunner(sessions, _departments(), clock, FAST, owner="mine")
    other = SagaRunner(sessions, _departments(), clock, FAST, owner="other")
    due = await runner._due_steps(None)
    assert {s.case_id for s in due} == {c.id for c in cases}
    [taken] = await other._claim([s for s in await other._due_steps(None) if s.case_id == cases[1].id])
    claimed = await runner._claim(due)
    assert {s.case_id for s in claimed} == {cases[0].id, cases[2].id}
    async with sessions() as session:
        steps = {s.case_id: s for s in await session.scalars(select(CaseStep))}
    assert {case_id: (s.state, s.lease_owner) for case_id, s in steps.items()} == {
        cases[0].id: (StepState.RUNNING, "mine"),
        cases[1].id: (StepState.RUNNING, "other"),
        cases[2].id: (StepState.RUNNING, "mine"),
    }
    assert all(s.version == steps[s.case_id].version for s in [*claimed, taken])


async def test_a_parked_rejection_keeps_its_reasons_until_its_step_binds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The create call's answer is lost and permits rejects before the retry: the rejection is parked
    with what it carries, and once the retry binds the step the case shows its reasons and codes."""
    clock = Clock()
    permits = accepting_permits(LosingAnswers("permits", lose=1))
    departments = {**_departments(), "permits": permits}
    runner = SagaRunner(sessions, departments, clock, RunnerSettings(retry_base=30, retry_max=30))  # type: ignore[arg-type]
    consumer = EventConsumer(permits, runner, sessions, clock)
    assert await consumer.acquire() == 0
    case, _ = await open_case(sessions, clock, CATALOGUE["foreigner-employment"], DATA, {})
    await runner.drive(case.id)  # the answer is lost
    ((_request, ctx),) = permits.calls_to("CreateWorkPermitApplication")
    application = permits.answers[ctx.request_id].work_permit_application.id

    rejected = permits.emit_event("WorkPermitRejected", application, "reject-request")
    reasons = {"reasons": ["学历证明未经认证"], "reason_codes": ["DEGREE_NOT_AUTHENTICATED"]}
    await consumer.apply(
        rejected.type, rejected.aggregate_id, rejected.sequence, rejected.request_id, reasons
    )
    async with sessions() as session:
        [parked] = (await session.scalars(select(ParkedEvent))).all()
        assert parked.data == reasons  # kept with the event, not just its type

    step = await _work_permit(sessions, case.id)
    async with sessions() as session:
        fresh = await session.get_one(CaseStep, step.id)
        fresh.next_attempt_at = clock.now()  # the retry is due: it binds the application
        await session.commit()
    await runner.drive(case.id)
    step = await _work_permit(sessions, case.id)
    assert (step.resource_id, step.state) == (application, StepState.REFUSED)
    assert step.result["rejection"] == {"reasons": reasons["reasons"], "codes": reasons["reason_codes"]}
    async with sessions() as session:
        assert (await session.get_one(Case, case.id)).state == CaseState.REJECTED
        assert (await session.scalars(select(ParkedEvent))).all() == []


async def test_a_permit_cancelled_after_issue_undoes_what_rests_on_it_and_leaves_the_stay_in_force(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Both permits issued, the stay registered; then permits cancels the work permit. The residence
    permit (there for the case's sake) is undone; the accommodation registration stands on its own: residence
    is never asked to cancel it, and the case, its view and its notification say it stays in force."""
    clock = Clock()
    departments = _departments()
    runner = SagaRunner(sessions, departments, clock, FAST)
    matter = CATALOGUE["foreigner-employment"]
    case, _ = await open_case(sessions, clock, matter, DATA, {})
    await runner.drive(case.id)
    async with sessions() as session:
        steps = {
            s.step_key: s for s in await session.scalars(select(CaseStep).where(CaseStep.case_id == case.id))
        }
    assert steps["accommodation"].state == StepState.DONE
    events = [
        ("WorkPermitApproved", "work_permit"),
        ("WorkPermitIssued", "work_permit"),
        ("ResidencePermitApproved", "residence_permit"),
        ("ResidencePermitIssued", "residence_permit"),
        ("WorkPermitCancelled", "work_permit"),
    ]
    for event, key in events:
        async with sessions() as session:
            assert await runner.apply_event(session, "permits", event, str(steps[key].resource_id))
            await session.commit()
        if event == "ResidencePermitIssued":
            async with sessions() as session:
                assert (await session.get_one(Case, case.id)).state == CaseState.READY_FOR_PICKUP
    await runner.drive(case.id)

    async with sessions() as session:
        fresh = await session.get_one(Case, case.id)
        rows = list(
            await session.scalars(
                select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.position)
            )
        )
    assert {s.step_key: s.state for s in rows} == {
        "work_permit": StepState.CANCELLED,
        "residence_permit": StepState.COMPENSATED,
        "accommodation": StepState.DONE,
    }
    assert (fresh.state, fresh.outcome["reason"]) == (CaseState.REJECTED, "CANCELLED_BY_DEPARTMENT")
    [(undo, _)] = departments["permits"].calls_to("CancelResidencePermitApplication")
    assert undo.id == steps["residence_permit"].resource_id
    assert departments["residence"].calls_to("CancelAccommodationRegistration") == []

    view = case_view(fresh, rows, CATALOGUE, clock, personal=False)
    assert view["in_force"] == ["accommodation"]
    shown = {s["key"]: s for s in view["steps"]}
    assert shown["accommodation"]["in_force"] is True and "in force" in shown["accommodation"]["message"]
    assert not any(shown[k].get("in_force") for k in ("work_permit", "residence_permit"))
    documented = msgspec.convert(view, models.Case)  # the OpenAPI document's shape
    assert documented.in_force == ["accommodation"] and documented.steps[2].in_force

    milestone = milestone_of(fresh.state, fresh.outcome)
    assert milestone == "cancelled"  # decided and then cancelled: not "not approved"
    fresh.contact = {"language": "en"}
    message = message_for(fresh, rows, matter, milestone)
    assert "cancelled by the department (CANCELLED_BY_DEPARTMENT)" in message.text
    assert "Still in force: Accommodation registration." in message.text
