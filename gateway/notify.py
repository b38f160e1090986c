"""Milestone messages to applicants: received, needs material, approved, rejected or cancelled by the
department, ready for pickup, completed. A message about a failed case names the records that stay in
force (an accommodation registration outlives a cancelled work permit).

The saga changes a case's state; the notifier notices afterwards, without any hook in the saga: every
``notify_interval`` it reads the cases whose ``state`` differs from their ``notified_state``, records the
message (masked recipient) and moves ``notified_state`` on, in one transaction guarded by the old value, so
each milestone is recorded once however many gateway replicas look. The message then goes out through the
pluggable sender (SMS, e-mail, ...); the default one only writes it to the log, with personal data masked.
"""

from __future__ import annotations

import asyncio
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

import structlog
from sqlalchemy import insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import saga
from gateway.cache import NOT_PUBLIC
from gateway.cases import expected_date, kept_in_force, rejection_view
from gateway.catalogue import Matter
from gateway.store import Case, CaseStep, Notification
from services.common.clock import Clock

log = structlog.get_logger("govhub.notify")

MILESTONES: dict[str, str] = {
    saga.RECEIVED: "received",
    saga.IN_REVIEW: "received",
    saga.AWAITING_APPLICANT: "needs_material",
    saga.APPROVED: "approved",
    saga.REJECTED: "rejected",
    saga.READY_FOR_PICKUP: "ready_for_pickup",
    saga.COMPLETED: "completed",
}
# A case a department ended after deciding it (a permit cancelled, an application cancelled on the
# holder's death) is not "not approved": it is told as cancelled.
CANCELLED = "cancelled"
BATCH = 200


def milestone_of(state: str, outcome: Mapping[str, Any]) -> str | None:
    """The milestone a case's new state is told as (none for a state the applicant is not told of)."""
    milestone = MILESTONES.get(state)
    if milestone == "rejected" and outcome.get("reason") == "CANCELLED_BY_DEPARTMENT":
        return CANCELLED
    return milestone


@lru_cache(maxsize=1)
def templates() -> dict[str, dict[str, str]]:
    text = resources.files("gateway").joinpath("notifications.toml").read_text("utf-8")
    loaded = tomllib.loads(text)
    for milestone in {*MILESTONES.values(), CANCELLED, "kept"}:
        if not {"zh", "en"} <= set(loaded.get(milestone, {})):
            raise ValueError(f"notifications.toml: {milestone} needs zh and en")
    return loaded


@dataclass(frozen=True)
class Message:
    case_no: str
    milestone: str
    language: str
    text: str
    channel: str  # sms | email | record
    recipient: str  # the phone number or address (personal data: never logged)
    masked_recipient: str


class Sender(Protocol):
    """SMS gateway, mail server, ...: sends one message (raise to have it logged as not sent)."""

    async def send(self, message: Message) -> None: ...


class LogSender:
    """The default: the message is recorded in the database by the notifier and written to the log."""

    async def send(self, message: Message) -> None:
        log.info(
            "notification",
            case_no=message.case_no,
            milestone=message.milestone,
            channel=message.channel,
            to=message.masked_recipient,
        )


def mask_phone(phone: str) -> str:
    digits = phone.replace(" ", "")
    return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:] if len(digits) > 7 else "*" * len(digits)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


def message_for(case: Case, steps: list[CaseStep], matter: Matter | None, milestone: str) -> Message:
    contact = case.contact or {}
    language = contact.get("language", "zh")
    title = (matter.title_zh if language == "zh" else matter.title) if matter else case.matter
    text = templates()[milestone][language].format(
        case_no=case.case_no,
        matter=title,
        expected_date=expected_date(steps) or "-",
        reason=case.outcome.get("reason", "-"),
        reasons=_reasons(steps, language),
        kept=_kept(case, steps, matter, language),
    )
    if contact.get("phone"):
        channel, recipient, masked = "sms", contact["phone"], mask_phone(contact["phone"])
    elif contact.get("email"):
        channel, recipient, masked = "email", contact["email"], mask_email(contact["email"])
    else:
        channel, recipient, masked = "record", "", "applicant"
    return Message(case.case_no, milestone, language, text, channel, recipient, masked)


def _reasons(steps: list[CaseStep], language: str) -> str:
    """The department's own words for a rejection (masked: a message carries no personal data)."""
    words = [r for s in steps for r in (rejection_view(s, personal=False) or {}).get("reasons", [])]
    return ("；" if language == "zh" else "; ").join(words) or "-"


def _kept(case: Case, steps: list[CaseStep], matter: Matter | None, language: str) -> str:
    """The sentence naming the steps a failed case leaves in force ("" when there are none)."""
    kept = kept_in_force(case, steps)
    if not kept:
        return ""
    specs = {s.key: s for s in matter.steps} if matter else {}
    titles = [
        (spec.title_zh if language == "zh" else spec.title) if (spec := specs.get(s.step_key)) else s.step_key
        for s in kept
    ]
    return str(templates()["kept"][language].format(steps=("、" if language == "zh" else ", ").join(titles)))


class Notifier:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalogue: Mapping[str, Matter],
        clock: Clock,
        sender: Sender | None = None,
        interval: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._catalogue = catalogue
        self._clock = clock
        self.sender: Sender = sender or LogSender()
        self._interval = interval

    async def run_once(self) -> int:
        """Record and send the milestone of every case whose state changed; returns how many were sent.
        One transaction a pass: the cases moved on by one guarded update for each (told before, state)
        pair among them, then the cases to be told and their steps read in two statements and their
        messages inserted together; the messages go out once that has committed."""
        async with self._sessions() as session:
            due = (
                await session.execute(
                    select(Case.id, Case.notified_state, Case.state, Case.outcome)
                    .where(Case.notify_due == true())
                    .order_by(Case.updated_at)
                    .limit(BATCH)
                )
            ).all()
            pairs: dict[tuple[str | None, str], list[str]] = {}
            for case_id, seen, state, _ in due:
                pairs.setdefault((seen, state), []).append(case_id)
            moved: set[str] = set()
            for (seen, state), ids in pairs.items():
                moved |= await self._move(session, ids, seen, state)
            told: dict[str, str] = {}  # case id -> the milestone it is told of, in the order read
            for case_id, seen, state, outcome in due:
                milestone = milestone_of(state, outcome or {}) if case_id in moved else None
                if milestone == "received" and seen is not None:
                    milestone = None  # told once
                if milestone is not None:
                    told[case_id] = milestone
            messages = await self._record(session, told) if told else []
            await session.commit()
        for message in messages:
            try:
                await self.sender.send(message)
            except Exception:
                log.exception("notification not sent", case_no=message.case_no, milestone=message.milestone)
        return len(messages)

    async def _move(self, session: AsyncSession, ids: list[str], seen: str | None, state: str) -> set[str]:
        """Move ``notified_state`` of the cases `ids` on from `seen` to `state`, guarded by both (a case
        another replica took, or whose state moved on again, is left to a later pass). Returns the ids
        moved (none when the state moved and came back: then the case is only no longer due)."""
        if seen == state:  # nothing new (the state moved and came back before this pass)
            await session.execute(
                update(Case)
                .where(Case.id.in_(ids), Case.state == state, Case.notified_state == state)
                .values(notify_due=False)
                .execution_options(synchronize_session=False, **{NOT_PUBLIC: True})
            )
            return set()
        guard = Case.notified_state.is_(None) if seen is None else Case.notified_state == seen
        moved = await session.scalars(
            update(Case)
            .where(Case.id.in_(ids), guard, Case.state == state)
            .values(notified_state=state, notify_due=False)
            .returning(Case.id)
            .execution_options(synchronize_session=False, **{NOT_PUBLIC: True})
        )
        return set(moved)

    async def _record(self, session: AsyncSession, told: Mapping[str, str]) -> list[Message]:
        """The messages of the cases `told` (as they stand after their updates), recorded."""
        cases = {c.id: c for c in await session.scalars(select(Case).where(Case.id.in_(told)))}
        steps: dict[str, list[CaseStep]] = {}
        for step in await session.scalars(
            select(CaseStep).where(CaseStep.case_id.in_(told)).order_by(CaseStep.case_id, CaseStep.position)
        ):
            steps.setdefault(step.case_id, []).append(step)
        messages, rows = [], []
        for case_id, milestone in told.items():
            case = cases[case_id]
            message = message_for(case, steps.get(case_id, []), self._catalogue.get(case.matter), milestone)
            messages.append(message)
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "case_id": case_id,
                    "milestone": milestone,
                    "channel": message.channel,
                    "recipient": message.masked_recipient,
                    "language": message.language,
                    "text": message.text,
                    "created_at": self._clock.now(),
                }
            )
        await session.execute(insert(Notification), rows)
        return messages

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("notifier pass failed")
            await asyncio.sleep(self._interval)
