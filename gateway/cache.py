"""The public case views a gateway replica keeps in memory (``CaseViews``), and the session class through
which every write of the gateway's database goes (``TrackingSession``), which tells them what changed.

A public progress answer may be served from memory for at most ``TTL`` seconds after the database last
showed it current: after it was read, or after a later check found its case unchanged (``revalidate``:
every view kept, every ``TTL / 2`` seconds, in the background, in statements of ``CHECKED`` views; what a
statement reads is the version of each case and of each of its steps, which every ORM write raises, and
whether wrong query codes are on record for its number). So a view stays in memory while its case does
not change (up to ``SIZE`` views, the least recently read forgotten first), and a change made by another
replica (on a shared PostgreSQL) is seen within ``TTL``. Each replica also forgets a case's view as soon
as it commits a change to that case or its steps itself (the ORM's own writes name the case; a bulk
``UPDATE``/``DELETE`` of cases or steps names its rows when its ``WHERE`` pins a case id, a step's case
id or a step id, or a list of them with ``IN``, ANDed with anything else; any other forgets every
view), so a replica never serves its own stale writes. A view read while a change of its case was
being committed here is not kept: ``put`` refuses a read begun before the last change here of its case,
one of its steps or its number (changes of other cases do not matter, so that a stream of writes
elsewhere does not keep every read from being kept). A bulk ``UPDATE`` of cases or steps that changes
what the public view shows must raise the rows' ``version``, as the ORM's writes do, for other replicas
to see it; one that changes only what no public view shows (the notifier's bookkeeping: ``notify_due``,
``notified_state``) says so with the execution option ``NOT_PUBLIC`` and forgets no view.

Only what passed the query-code check is ever answered from here: a wrong code is always checked against
the database and counted (gateway/ratelimit.py), never answered from memory. A view is kept only when
no wrong code was on record for its number when it was read, and is forgotten (``forget_number``) as
soon as this replica counts a wrong code for it, reads it with wrong codes on record, or a check finds
wrong codes on record; so a lock made by another replica is seen here within ``TTL`` too
(docs/architecture.md, "Security", query codes).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import structlog
from aiohttp import web
from sqlalchemy import Column, Delete, Update, bindparam, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from gateway.store import Case, CaseStep, CodeFailures

log = structlog.get_logger("govhub.gateway")
T = TypeVar("T")

TTL = 1.0  # seconds a view may be served after the database last showed it current
SIZE = 2_000  # views kept at most (least recently read forgotten first)
CHECKED = 250  # views checked by one statement (the loop is free between statements)
READ_TOGETHER = 32  # case numbers missed together read by one statement
READERS = 2  # such statements under way at once (the read pool serves the rest of the gateway too)

# An execution option a bulk UPDATE of cases sets when it changes only what no public view shows (the
# notifier's bookkeeping: notify_due, notified_state); such a statement forgets no view.
NOT_PUBLIC = "changes_no_public_view"
INFO_KEY = "case_views"  # the session's info entry naming the replica's CaseViews
_TOUCHED = "case_views_touched"  # case ids changed in the session's transaction; ALL for every case
ALL = "*"

# A case's versions as the public view depends on them: the case's, its steps' number and their sum (every
# ORM write of a row raises its version; steps are added or removed only with their case).
Versions = tuple[int, int, int]
# Every view's case at once: its versions, and whether wrong codes are on record for its number.
_CURRENT = (
    select(
        Case.id,
        Case.version,
        func.count(CaseStep.id).label("steps"),
        func.coalesce(func.sum(CaseStep.version), 0).label("steps_version"),
        func.count(CodeFailures.case_no).label("wrong_codes"),
    )
    .outerjoin(CaseStep, CaseStep.case_id == Case.id)
    .outerjoin(CodeFailures, CodeFailures.case_no == Case.case_no)
    .where(Case.id.in_(bindparam("ids", expanding=True)))
    .group_by(Case.id, Case.version)
)


@dataclass(slots=True)
class CaseView:
    """A case as its public progress answer needs it: the code hash to check, the encoded answer."""

    case_id: str
    case_no: str
    query_code_hash: str
    body: bytes  # the JSON answer
    today: Any  # the date the view was rendered on (a view says which steps are overdue)
    versions: Versions
    step_ids: tuple[str, ...]
    current_at: float  # monotonic: when the database last showed it current


@dataclass(frozen=True)
class Reading:
    """Taken before reading a case from the database; given to ``put`` with what was read."""

    generation: int
    at: float


class CaseViews:
    """Public case views by case number, each for at most `ttl` seconds after the database last showed
    it current, forgotten on this replica's own writes of the case (``forget``)."""

    def __init__(
        self, ttl: float = TTL, size: int = SIZE, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._monotonic = monotonic
        self._views: OrderedDict[str, CaseView] = OrderedDict()
        self._by_id: dict[str, str] = {}  # case id -> case number, for the views kept
        self._by_step: dict[str, str] = {}  # step id -> case id, for the views kept
        self._generation = 0  # bumped by every invalidation
        self._all_changed = 0  # the generation of the last change of any case (ALL)
        # "case:<id>", "step:<id>", "number:<case number>" -> (generation, monotonic time) of its last
        # change here; kept for `ttl` (a view read before that would have run out anyway)
        self._changed: dict[str, tuple[int, float]] = {}
        self._loading: dict[str, asyncio.Future[Any]] = {}  # case number -> its read, waiting or under way
        self._queued: list[str] = []  # case numbers waiting for a statement
        self._reading = 0  # statements under way (each in a task of `_readers` until no number waits)
        self._readers: set[asyncio.Future[None]] = set()

    def reading(self) -> Reading:
        return Reading(self._generation, self._monotonic())

    def get(self, case_no: str, today: Any) -> CaseView | None:
        view = self._views.get(case_no)
        if view is None:
            return None
        if view.current_at + self.ttl <= self._monotonic() or view.today != today:
            self._drop(case_no)
            return None
        self._views.move_to_end(case_no)
        return view

    def put(
        self,
        reading: Reading,
        case_id: str,
        case_no: str,
        code_hash: str,
        versions: Versions,
        step_ids: tuple[str, ...],
        body: bytes,
        today: Any,
    ) -> None:
        """Keep a view read from the database, unless a change of its case, its steps or its number was
        committed here since `reading` began (a change of other cases does not matter)."""
        since = reading.generation
        if self._all_changed > since or any(
            self._changed.get(key, (0, 0.0))[0] > since
            for key in (f"case:{case_id}", f"number:{case_no}", *(f"step:{s}" for s in step_ids))
        ):
            return
        self._drop(case_no)
        self._views[case_no] = CaseView(
            case_id, case_no, code_hash, body, today, versions, step_ids, reading.at
        )
        self._by_id[case_id] = case_no
        for step_id in step_ids:
            self._by_step[step_id] = case_id
        while len(self._views) > self.size:
            self._drop(next(iter(self._views)))

    async def revalidate(self, reads: AsyncEngine) -> None:
        """Check every view kept, CHECKED at a time, one statement each: a view whose case is unchanged
        is current as of its statement's start; any other (changed, gone, wrong codes on record) is
        forgotten."""
        kept = list(self._views.values())
        for start in range(0, len(kept), CHECKED):
            chunk = kept[start : start + CHECKED]
            at = self._monotonic()
            async with reads.connect() as conn:
                rows = (await conn.execute(_CURRENT, {"ids": [v.case_id for v in chunk]})).all()
            current = {row.id: ((row.version, row.steps, row.steps_version), row.wrong_codes) for row in rows}
            for view in chunk:
                if self._views.get(view.case_no) is not view:
                    continue  # forgotten or read again meanwhile
                versions, wrong_codes = current.get(view.case_id, (None, 1))
                if versions != view.versions or wrong_codes:
                    self._drop(view.case_no)
                else:
                    view.current_at = max(view.current_at, at)

    async def run_forever(self, reads: AsyncEngine) -> None:
        """``revalidate`` every half of `ttl`, so that a view kept does not run out while its case does not
        change (lookups after a quiet spell find their views still there)."""
        while True:
            await asyncio.sleep(self.ttl / 2)
            try:
                await self.revalidate(reads)
            except Exception as exc:  # the database busy: the views run out and are read again
                log.warning("case views not checked", error=type(exc).__name__)

    async def load(self, case_no: str, read: Callable[[list[str]], Awaitable[dict[str, T]]]) -> T | None:
        """What `read` finds of a case number (None: nothing), read in one statement with the other
        numbers missed meanwhile: `read(numbers)` answers what it found by number. A number is read once
        however many lookups of it arrive while it waits or is being read; at most ``READERS`` statements
        are under way at once, and the misses that arrive meanwhile wait and go together in the next (up
        to ``READ_TOGETHER`` numbers a statement). Every `read` given must read the same way."""
        pending = self._loading.get(case_no)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[case_no] = pending
            self._queued.append(case_no)
            if self._reading < READERS:
                self._reading += 1
                reader = asyncio.ensure_future(self._read_queued(read))
                self._readers.add(reader)
                reader.add_done_callback(self._readers.discard)
        return cast("T | None", await asyncio.shield(pending))

    async def _read_queued(self, read: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> None:
        numbers: list[str] = []
        try:
            while self._queued:
                numbers = self._queued[:READ_TOGETHER]
                del self._queued[:READ_TOGETHER]
                try:
                    found = await read(numbers)
                except Exception as exc:
                    for case_no in numbers:
                        done = self._loading.pop(case_no)
                        done.set_exception(exc)
                        done.exception()  # retrieved here too: every lookup waiting for it may have gone
                else:
                    for case_no in numbers:
                        self._loading.pop(case_no).set_result(found.get(case_no))
                numbers = []
        except BaseException:  # cancelled (the loop closing): nobody is left to read what waits
            for case_no in (*numbers, *self._queued):
                self._loading.pop(case_no).cancel()
            self._queued.clear()
            raise
        finally:
            self._reading -= 1  # with no await since the queue was last seen empty: nothing is left behind

    def forget(self, case_ids: Iterable[str], step_ids: Iterable[str] = ()) -> None:
        """This replica changed these cases (``ALL`` among them: any case) or these steps."""
        ids = set(case_ids)
        steps = set(step_ids)
        self._changes([f"case:{i}" for i in ids] + [f"step:{i}" for i in steps])
        if ALL in ids:
            self._all_changed = self._generation
            self._views.clear()
            self._by_id.clear()
            self._by_step.clear()
            return
        ids.update(self._by_step.get(step_id, "") for step_id in steps)
        for case_id in ids:
            case_no = self._by_id.get(case_id)
            if case_no is not None:
                self._drop(case_no)

    def forget_number(self, case_no: str) -> None:
        """Wrong codes were counted for this case number here, or read on record for it: answer it from
        the database (where the lock is checked) until a view is read again."""
        self._changes([f"number:{case_no}"])
        self._drop(case_no)

    def _changes(self, keys: list[str]) -> None:
        self._generation += 1
        now = self._monotonic()
        if len(self._changed) > self.size:
            self._changed = {k: v for k, v in self._changed.items() if v[1] + self.ttl > now}
        for key in keys:
            self._changed[key] = (self._generation, now)

    def __len__(self) -> int:
        return len(self._views)

    def _drop(self, case_no: str) -> None:
        view = self._views.pop(case_no, None)
        if view is not None:
            self._by_id.pop(view.case_id, None)
            for step_id in view.step_ids:
                self._by_step.pop(step_id, None)


class TrackingSession(Session):
    """The gateway's ORM session: notes which cases its transaction changed and, once it commits, has
    the replica's ``CaseViews`` (``info[INFO_KEY]``) forget them."""


def tracking_sessions(engine: AsyncEngine, views: CaseViews) -> async_sessionmaker[AsyncSession]:
    """The gateway's unit-of-work factory: every write of its database goes through these sessions."""
    return async_sessionmaker(
        engine, expire_on_commit=False, sync_session_class=TrackingSession, info={INFO_KEY: views}
    )


views_key = web.AppKey("case_views", CaseViews)
reads_key = web.AppKey("reads", AsyncEngine)  # the read-only engine (SQLite: beside the one writer)


_CASE_TABLES = frozenset({Case.__table__, CaseStep.__table__})
_STEPS = "case_views_touched_steps"  # step ids changed in the session's transaction


def _touched(session: Session, key: str = _TOUCHED) -> set[str]:
    touched: set[str] = session.info.setdefault(key, set())
    return touched


@event.listens_for(TrackingSession, "after_flush")
def _note_flushed(session: Session, _flush: UOWTransaction) -> None:
    if INFO_KEY not in session.info:
        return
    touched = None
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Case | CaseStep):
            touched = touched if touched is not None else _touched(session)
            touched.add(obj.id if isinstance(obj, Case) else obj.case_id)


@event.listens_for(TrackingSession, "do_orm_execute")
def _note_bulk(state: ORMExecuteState) -> None:
    statement = state.statement
    if (
        INFO_KEY in state.session.info
        and isinstance(statement, Update | Delete)
        and statement.table in _CASE_TABLES
        and not state.execution_options.get(NOT_PUBLIC, False)
    ):
        pinned = _pinned(statement)
        if pinned is None:
            _touched(state.session).add(ALL)
        else:
            key, values = pinned
            _touched(state.session, key).update(values)


def _pinned(statement: Update | Delete) -> tuple[str, list[str]] | None:
    """The rows a bulk statement's ``WHERE`` pins down, when one of its ANDed conditions is ``cases.id =
    :x`` or ``case_steps.case_id = :x`` (_TOUCHED, the case id) or ``case_steps.id = :x`` (_STEPS, the step
    id), or the same column ``IN`` a list of them; None for anything else (then every view is
    forgotten)."""
    where = statement.whereclause
    if where is None:
        return None
    conditions = (
        where.clauses
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else (where,)
    )
    for condition in conditions:
        if not (
            isinstance(condition, BinaryExpression)
            and isinstance(condition.left, Column)
            and isinstance(condition.right, BindParameter)
        ):
            continue
        value = condition.right.value
        if condition.operator is operators.eq and isinstance(value, str):
            values = [value]
        elif (
            condition.operator is operators.in_op
            and isinstance(value, list | tuple)
            and all(isinstance(v, str) for v in value)
        ):
            values = list(value)
        else:
            continue
        column = condition.left
        if column.table is Case.__table__ and column.key == "id":
            return _TOUCHED, values
        if column.table is CaseStep.__table__ and column.key == "case_id":
            return _TOUCHED, values
        if column.table is CaseStep.__table__ and column.key == "id":
            return _STEPS, values
    return None


@event.listens_for(TrackingSession, "after_commit")
def _forget_committed(session: Session) -> None:
    touched = session.info.pop(_TOUCHED, None)
    steps = session.info.pop(_STEPS, None)
    views = session.info.get(INFO_KEY)
    if (touched or steps) and views is not None:
        views.forget(touched or (), steps or ())


@event.listens_for(TrackingSession, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
    session.info.pop(_STEPS, None)
