"""``request_id`` idempotency for mutating RPCs (docs/architecture.md, "Contracts").

The first result for a request_id is stored, in the same transaction as the state change; the same
request_id again returns that result and changes nothing. The same request_id with a different
request is refused, naming the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import LargeBinary, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UnitOfWork, UTCDateTime
from services.common.errors import DomainError, InvalidArgument

R = TypeVar("R", bound=Message)


class IdempotencyMixin:
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(80))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


def check_request_id(value: str, field: str = "request_id") -> str:
    if not value:
        raise InvalidArgument.one(field, "REQUIRED", "a client-chosen UUID is required on every change")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument.one(field, "NOT_A_UUID", "request_id must be a UUID") from None


def fingerprint(method: str, request: Message) -> str:
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(method.encode() + b"\0" + copy.SerializeToString(deterministic=True)).hexdigest()


def _table(model: type[IdempotencyMixin]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


async def run_idempotent(
    uow_factory: Callable[[], UnitOfWork],
    model: type[IdempotencyMixin],
    method: str,
    request: Message,
    response_type: type[R],
    handler: Callable[[UnitOfWork], Awaitable[R]],
    now: Callable[[], dt.datetime],
    *,
    unanswered: bool = False,
) -> R:
    """Run `handler` in one unit of work at most once per request_id and commit it with its stored
    response. A concurrent duplicate loses the insert race and returns the winner's response.

    `unanswered`: the caller has just read that no answer is stored for the request_id (beside the
    writer), so the first attempt does not read it again in the unit of work. An answer committed since
    then is found as before: the insert of this answer (or the unique rule the duplicate's change holds)
    fails, or the handler is refused, and the next attempt reads and returns it."""
    request_id = check_request_id(getattr(request, "request_id", ""))
    fp = fingerprint(method, request)
    table = _table(model)  # Core statements: a few columns, no ORM objects
    for attempt in range(2):
        refused: DomainError | None = None
        async with uow_factory() as uow:
            stored = None
            if attempt > 0 or not unanswered:
                stored = (
                    await uow.session.execute(
                        select(table.c.method, table.c.fingerprint, table.c.response).where(
                            table.c.request_id == request_id
                        )
                    )
                ).first()
            if stored is not None:
                if stored.method != method or stored.fingerprint != fp:
                    raise InvalidArgument.one(
                        "request_id",
                        "REUSED_WITH_DIFFERENT_REQUEST",
                        "this request_id was already used for a different request",
                    )
                return response_type.FromString(stored.response)
            try:
                response = await handler(uow)
            except IntegrityError:
                continue  # a unique rule raced with a concurrent change (flushed early): look again
            except DomainError as exc:
                refused = exc
            else:
                try:
                    await uow.session.execute(
                        insert(table).values(
                            request_id=request_id,
                            method=method,
                            fingerprint=fp,
                            response=response.SerializeToString(),
                            created_at=now(),
                        )
                    )
                    await uow.commit()
                except IntegrityError:
                    continue  # lost a race with the same request_id (or another unique rule): look again
                return response
        # Refused, and this unit of work is closed (SQLite has one writer). A duplicate of this very request
        # may have committed meanwhile, its change being what refuses this one (an application already
        # open): then its answer is the answer.
        if await _answered(uow_factory, table, request_id):
            continue
        raise refused
    raise InvalidArgument.one("request_id", "CONFLICT", "the request conflicted with a concurrent change")


async def _answered(uow_factory: Callable[[], UnitOfWork], table: Table, request_id: str) -> bool:
    """Whether an answer to `request_id` is stored (committed by another transaction)."""
    async with uow_factory() as uow:
        found = await uow.session.scalar(select(table.c.request_id).where(table.c.request_id == request_id))
    return found is not None
