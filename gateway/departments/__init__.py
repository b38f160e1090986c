"""The three departments as the saga sees them: one adapter module each (``identity``, ``residence``,
``permits``) holding every action a matter's step may name, with what it reads, sends, undoes, follows
and hands over. ``ACTIONS`` is the one registry, by action name."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.departments import identity, permits, residence
from gateway.departments.base import Action, Decision, Outcome, Rpc, StepInput, UndeclaredField

ACTIONS: Mapping[str, Action] = {
    a.name: a for module in (identity, residence, permits) for a in module.ACTIONS
}
EVENT_TYPES = frozenset(event for a in ACTIONS.values() for event in a.events)

__all__ = ["ACTIONS", "EVENT_TYPES", "Action", "Decision", "Outcome", "Rpc", "StepInput", "UndeclaredField"]
