"""Domain events: the one pattern the three departments' domains share.

An operation on an aggregate is pure: it takes the current state (and the policy and the day) and returns
the new state together with the events it caused, in order. It stores and sends nothing. The department's
service layer (`handlers.py`) writes the new state and its events to the outbox in one unit of work, so an
event is published exactly when its change is committed.

    changed = domain.approve(application, today, policy)      # -> Changed[CardApplication]
    await uow.applications.save(changed.state)
    uow.emit(changed.events)

Operations that change several aggregates at once return their own frozen result type with an `events`
field (see `HasEvents`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

T = TypeVar("T")


def jsonable(value: Any) -> Any:
    """An event field as JSON: enums by value, dates in ISO 8601, collections as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Base of every department's events. `type` is the name on the outbox and in `WatchEvents`;
    the dataclass fields are the payload. Events carry facts, never more personal data than the
    subscribers of the stream are granted."""

    type: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        """The JSON-ready payload (enums by value, dates in ISO 8601)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Changed(Generic[T]):
    """What an operation on one aggregate returns: its new state and the events, in order."""

    state: T
    events: tuple[DomainEvent, ...] = ()


class HasEvents(Protocol):
    """Any operation's result: the events it caused, in the order they are to be published."""

    @property
    def events(self) -> tuple[DomainEvent, ...]: ...
