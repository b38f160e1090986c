"""The public case views a gateway replica keeps in memory (``CaseViews``), and the session class through
which every write of the gateway's database goes (``TrackingSession``), which tells them what changed.

A public progress answer may be served from memory for at most ``TTL`` seconds after it was read (each
view for a part of it drawn at random between ``TTL * (1 - SPREAD)`` and ``TTL``, so that views read
together do not all run out in the same instant and send their re-reads to the database in one burst).
Each replica forgets a case's view as soon as it commits a change to that case or its steps (the ORM's
own writes name the case; a bulk ``UPDATE``/``DELETE`` of cases or steps, whose rows are not known,
forgets every view), so a replica never serves its own stale writes; a change made by another replica
(on a shared PostgreSQL) is seen once the view it replaces has run out, at most ``TTL`` after it was
read. A view read while a change was being committed is not kept (``put`` refuses a read begun before
the last invalidation).

Only what passed the query-code check is ever answered from here: a wrong code is always checked against
the database and counted (gateway/ratelimit.py), never answered from memory. A view is kept only when
its case number was not locked when it was read, and is forgotten (``forget_number``) as soon as this
replica counts a wrong code for it or reads it locked; so a lock made by another replica is seen here
within ``TTL`` too (docs/security.md, "Query codes").
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import Delete, Update, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from gateway.store import Case, CaseStep

TTL = 1.0  # seconds a view may be served after it was read, at most
SPREAD = 0.5  # the part of TTL a view's own lifetime is shortened by, at random
SIZE = 2_000  # views kept at most (least recently read forgotten first): a second of distinct cases

INFO_KEY = "case_views"  # the session's info entry naming the replica's CaseViews
_TOUCHED = "case_views_touched"  # case ids changed in the session's transaction; ALL for every case
ALL = "*"


@dataclass(frozen=True)
class CaseView:
    """A case as its public progress answer needs it: the code hash to check, the encoded answer."""

    case_id: str
    case_no: str
    query_code_hash: str
    body: bytes  # the JSON answer
    today: Any  # the date the view was rendered on (a view says which steps are overdue)
    expires: float


class CaseViews:
    """Public case views by case number, each for at most `ttl` seconds, forgotten on this replica's
    own writes of the case (``forget``)."""

    def __init__(
        self,
        ttl: float = TTL,
        size: int = SIZE,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._monotonic = monotonic
        self._jitter = jitter  # in [0, 1): how much of SPREAD a view's lifetime is shortened by
        self._views: OrderedDict[str, CaseView] = OrderedDict()
        self._by_id: dict[str, str] = {}  # case id -> case number, for the views kept
        self._generation = 0  # bumped by every invalidation

    @property
    def generation(self) -> int:
        """Take it before reading a case from the database; give it to ``put`` with what was read."""
        return self._generation

    def get(self, case_no: str, today: Any) -> CaseView | None:
        view = self._views.get(case_no)
        if view is None:
            return None
        if view.expires <= self._monotonic() or view.today != today:
            self._drop(case_no)
            return None
        self._views.move_to_end(case_no)
        return view

    def put(
        self, generation: int, case_id: str, case_no: str, code_hash: str, body: bytes, today: Any
    ) -> None:
        """Keep a view read from the database, unless a change was committed since `generation`."""
        if generation != self._generation:
            return
        self._drop(case_no)
        expires = self._monotonic() + self.ttl * (1 - SPREAD * self._jitter())
        self._views[case_no] = CaseView(case_id, case_no, code_hash, body, today, expires)
        self._by_id[case_id] = case_no
        while len(self._views) > self.size:
            self._drop(next(iter(self._views)))

    def forget(self, case_ids: Iterable[str]) -> None:
        """This replica changed these cases (``ALL`` among them: any case)."""
        self._generation += 1
        ids = set(case_ids)
        if ALL in ids:
            self._views.clear()
            self._by_id.clear()
            return
        for case_id in ids:
            case_no = self._by_id.get(case_id)
            if case_no is not None:
                self._drop(case_no)

    def forget_number(self, case_no: str) -> None:
        """Wrong codes were counted for this case number here, or it was read locked: answer it from the
        database (where the lock is checked) until a view is read again."""
        self._generation += 1
        self._drop(case_no)

    def __len__(self) -> int:
        return len(self._views)

    def _drop(self, case_no: str) -> None:
        view = self._views.pop(case_no, None)
        if view is not None:
            self._by_id.pop(view.case_id, None)


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


def _touched(session: Session) -> set[str]:
    touched: set[str] = session.info.setdefault(_TOUCHED, set())
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
    ):
        _touched(state.session).add(ALL)


@event.listens_for(TrackingSession, "after_commit")
def _forget_committed(session: Session) -> None:
    touched = session.info.pop(_TOUCHED, None)
    views = session.info.get(INFO_KEY)
    if touched and views is not None:
        views.forget(touched)


@event.listens_for(TrackingSession, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop(_TOUCHED, None)
