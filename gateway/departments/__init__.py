"""The three departments as the saga sees them: one adapter module each (``identity``, ``residence``,
``permits``) holding every action a matter's step may name, with what it reads, sends, undoes, follows
and hands over. ``ACTIONS`` is the one registry, by action name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.departments import identity, permits, residence
from gateway.departments.base import Action, Decision, FollowUp, Outcome, Rpc, StepInput, UndeclaredField

ACTIONS: Mapping[str, Action[Any, Any]] = {
    a.name: a for module in (identity, residence, permits) for a in module.ACTIONS
}
EVENT_TYPES = frozenset(event for a in ACTIONS.values() for event in a.events)
# the back office's decisions after an approval, by route word (each a route of its own), with a summary
FOLLOW_UPS: Mapping[str, str] = {
    word: follow_up.summary
    for a in ACTIONS.values()
    if a.decision is not None
    for word, follow_up in a.decision.follow_ups.items()
}

__all__ = [
    "ACTIONS",
    "EVENT_TYPES",
    "FOLLOW_UPS",
    "Action",
    "Decision",
    "FollowUp",
    "Outcome",
    "Rpc",
    "StepInput",
    "UndeclaredField",
]
