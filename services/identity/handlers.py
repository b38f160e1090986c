"""The identity service layer: one method per use case, in the cosmicpython sense.

A change takes plain values and domain values (no protobuf) and a `Work`: the repository of one unit of
work and its outbox. It loads what the rule needs, runs the pure operation of `services.identity.domain`,
saves the new state and writes the operation's events to the outbox in the same unit of work, so an event
is on the feed exactly when its change is committed. The caller owns the transaction: the servicer runs
every change through ``run_idempotent`` (the stored answer of a ``request_id`` is the response message
itself, so that one layer is the servicer's); the register follower commits each event with its cursor.
Queries take the repository of a read-only session.

Hukou facts come from the household register as a `Hukou`: a call the use case makes when it needs the
answer (``HukouAnswer`` asks at most once, so the servicer may ask before opening the unit of work).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from services.common.clock import Clock
from services.common.db import new_id
from services.common.errors import AlreadyExists, NotFound
from services.common.events import Changed, DomainEvent
from services.common.idnumber import IdNumber, check_id_number
from services.identity import domain as d

# The follower of residence's register (services.identity.deaths): the source name of its cursor, and
# the reason an application still open is cancelled with.
REGISTER = "residence"
CANCELLATION_REASON = "持证人户口已注销（{reason}），申请随之撤销"

Hukou = Callable[[], Awaitable[d.HukouRecord]]


class Records(Protocol):
    """The department's records in one session (store.IdentityRepository; a fake in the unit tests)."""

    async def get_application(self, application_id: str) -> d.CardApplication | None: ...
    async def get_open_application_for(self, id_number: str) -> d.CardApplication | None: ...
    async def application_times(self, application_id: str) -> tuple[dt.datetime, dt.datetime] | None: ...
    async def applicant(self, id_number: str) -> tuple[d.CardApplication | None, d.Card | None]:
        """The person's open application and current card, read together."""
        ...

    async def add_application(self, app: d.CardApplication) -> tuple[dt.datetime, dt.datetime]: ...
    async def save_application(self, app: d.CardApplication) -> tuple[dt.datetime, dt.datetime]: ...
    async def list_applications(
        self, id_number: str | None, size: int, token: str
    ) -> tuple[list[tuple[d.CardApplication, dt.datetime, dt.datetime]], str]: ...
    async def get_card(self, card_number: str) -> d.Card | None: ...
    async def current_card(self, id_number: str) -> d.Card | None: ...
    async def cards_of(self, id_number: str) -> list[d.Card]: ...
    async def save_card(self, card: d.Card) -> None: ...
    async def list_cards(self, id_number: str, size: int, token: str) -> tuple[list[d.Card], str]: ...
    async def add_loss_report(self, report_id: str, report: d.LossReport) -> None: ...
    async def withdraw_loss_report(self, report: d.LossReport) -> None: ...
    async def standing_loss_report(self, card_number: str) -> d.LossReport | None: ...
    async def get_found_card(self, found_id: str) -> d.FoundCard | None: ...
    async def save_found_card(self, found: d.FoundCard) -> None: ...
    async def found_cards_of(
        self, id_number: str, size: int, token: str
    ) -> tuple[list[d.FoundCard], str]: ...
    async def get_temporary_card(self, temporary_id: str) -> tuple[d.TemporaryCard, str] | None: ...
    async def temporary_card_for_application(self, application_id: str) -> str | None: ...
    async def add_temporary_card(
        self, temporary_id: str, card: d.TemporaryCard, station_region_code: str
    ) -> None: ...
    async def cursor(self, source: str) -> int: ...
    async def advance_cursor(self, source: str, sequence: int) -> None: ...


class Work(Protocol):
    """One unit of work as a use case sees it (store.IdentityWork; a fake in the unit tests)."""

    @property
    def records(self) -> Records: ...

    async def emit(self, events: Iterable[DomainEvent]) -> None:
        """Write the events to this unit of work's outbox, in order."""
        ...


class HukouAnswer:
    """The register's answer for one person, asked at most once (a failed question may be asked again)."""

    def __init__(self, ask: Hukou) -> None:
        self._ask = ask
        self._answer: d.HukouRecord | None = None

    @property
    def asked(self) -> bool:
        """Whether the register has answered already."""
        return self._answer is not None

    async def __call__(self) -> d.HukouRecord:
        if self._answer is None:
            self._answer = await self._ask()
        return self._answer


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    """An application as stored: with the times it was created and last changed."""

    application: d.CardApplication
    created: dt.datetime
    updated: dt.datetime


@dataclass(frozen=True, slots=True)
class TemporaryCardRecord:
    id: str
    card: d.TemporaryCard
    station_region_code: str


def new_card_number() -> str:
    """The chip serial the production centre gives a card (here: 16 random hex digits)."""
    return secrets.token_hex(8).upper()


async def _application(records: Records, application_id: str) -> d.CardApplication:
    app = await records.get_application(application_id)
    if app is None:
        raise NotFound("No such card application.")
    return app


async def _stored(records: Records, app: d.CardApplication) -> ApplicationRecord:
    times = await records.application_times(app.id)
    assert times is not None
    return ApplicationRecord(app, *times)


class IdentityHandlers:
    """The department's use cases under one policy and one clock ("today" for the rules). `ids` and
    `card_numbers` make the ids and card numbers (tests pass predictable ones)."""

    def __init__(
        self,
        policy: d.IdentityPolicy,
        clock: Clock,
        *,
        ids: Callable[[], str] = new_id,
        card_numbers: Callable[[], str] = new_card_number,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.ids = ids
        self.card_numbers = card_numbers

    # -- queries -------------------------------------------------------------------------------------------

    async def get_application(self, records: Records, application_id: str) -> ApplicationRecord:
        return await _stored(records, await _application(records, application_id))

    async def list_applications(
        self, records: Records, id_number: str | None, size: int, token: str
    ) -> tuple[list[ApplicationRecord], str]:
        items, next_token = await records.list_applications(id_number, size, token)
        return [ApplicationRecord(*item) for item in items], next_token

    async def current_card(self, records: Records, id_number: str) -> d.Card:
        card = await records.current_card(id_number)
        if card is None:
            raise NotFound("The register holds no card for this person.")
        return d.mark_expired(card, self.clock.today())

    async def list_cards(
        self, records: Records, id_number: str, size: int, token: str
    ) -> tuple[list[d.Card], str]:
        cards, next_token = await records.list_cards(id_number, size, token)
        today = self.clock.today()
        return [d.mark_expired(c, today) for c in cards], next_token

    async def verify_card(
        self, records: Records, card_number: str, id_number: str
    ) -> d.CardVerification | None:
        """What a checker may learn of a card; None when the register holds no such card of this person."""
        card = await records.get_card(card_number)
        if card is None or card.id_number != id_number:
            return None
        return d.verify(card, self.clock.today())

    async def found_cards(
        self, records: Records, id_number: str, size: int, token: str
    ) -> tuple[list[d.FoundCard], str]:
        return await records.found_cards_of(id_number, size, token)

    async def get_temporary_card(self, records: Records, temporary_id: str) -> TemporaryCardRecord:
        found = await records.get_temporary_card(temporary_id)
        if found is None:
            raise NotFound("No such temporary card.")
        return TemporaryCardRecord(temporary_id, *found)

    def quote(
        self,
        kind: d.ApplicationKind,
        reason: d.RenewalReason | None,
        reduction: d.FeeReduction,
        on: dt.date,
        *,
        cross_province: bool,
        under_16: bool,
    ) -> d.Quote:
        return d.quote(
            kind, reason, reduction, on, self.policy, cross_province=cross_province, under_16=under_16
        )

    # -- applications --------------------------------------------------------------------------------------

    async def create_application(
        self,
        work: Work,
        *,
        id_number: IdNumber,
        name: str,
        kind: d.ApplicationKind,
        renewal_reason: d.RenewalReason | None,
        accepting_region_code: str,
        fee_reduction: d.FeeReduction,
        residence_permit: d.ResidencePermit | None,
        report_loss: bool,
        require_cross_province: bool,
        hukou: Hukou,
    ) -> ApplicationRecord:
        """A new application, accepted at once, by a person the register knows as a resident; a
        replacement takes its loss report (filed with it under `report_loss`)."""
        person = d.require_hukou(await hukou())
        today = self.clock.today()
        records = work.records
        open_app, current = await records.applicant(id_number.value)
        application = d.new_application(
            id=self.ids(),
            id_number=id_number.value,
            name=name,
            birth_date=id_number.birth_date,
            kind=kind,
            renewal_reason=renewal_reason,
            hukou_province_code=person.province_code,
            hukou_region_code=person.region_code,
            accepting_region_code=accepting_region_code,
            accepting_province_code=accepting_region_code[:2],
            application_date=today,
            fee_reduction=fee_reduction,
            policy=self.policy,
            residence_permit=residence_permit,
            current_card=current,
            existing=[open_app] if open_app else [],
            report_loss=report_loss,
            require_cross_province=require_cross_province,
        )
        # only a replacement takes over a card's standing loss report (``take_loss_report``)
        replacing = current is not None and kind is d.ApplicationKind.REPLACEMENT
        standing = await records.standing_loss_report(current.card_number) if replacing and current else None
        submitted = d.submit_application(
            application, current, standing, report_loss=report_loss, report_id=self.ids(), on=today
        )
        created, updated = await records.add_application(submitted.application)
        if submitted.lost_card is not None and submitted.loss_report is not None:
            await records.save_card(submitted.lost_card)
            await records.add_loss_report(submitted.loss_report.id, submitted.loss_report)
        await work.emit(submitted.events)
        return ApplicationRecord(submitted.application, created, updated)

    async def _transition(
        self,
        work: Work,
        application_id: str,
        change: Callable[[d.CardApplication, dt.date], Changed[d.CardApplication]],
    ) -> ApplicationRecord:
        records = work.records
        changed = change(await _application(records, application_id), self.clock.today())
        created, updated = await records.save_application(changed.state)
        await work.emit(changed.events)
        return ApplicationRecord(changed.state, created, updated)

    async def approve(self, work: Work, application_id: str) -> ApplicationRecord:
        return await self._transition(work, application_id, d.approve_application)

    async def mark_produced(self, work: Work, application_id: str) -> ApplicationRecord:
        """The production centre made the card: it gets its number now."""
        number = self.card_numbers()
        return await self._transition(
            work, application_id, lambda app, today: d.mark_card_produced(app, number, today)
        )

    async def mark_ready(self, work: Work, application_id: str) -> ApplicationRecord:
        return await self._transition(work, application_id, d.mark_card_ready)

    async def _close(
        self,
        work: Work,
        app: d.CardApplication,
        close: Callable[[d.CardApplication, d.Card | None, dt.date], d.Closed],
    ) -> ApplicationRecord:
        """Reject or cancel: the application closes, and a loss report filed with it is withdrawn in the
        same unit of work (the card VALID again)."""
        records = work.records
        card = await records.get_card(app.loss_report.card_number) if app.loss_report else None
        closed = close(app, card, self.clock.today())
        if closed.withdrawn_report is not None:
            await records.withdraw_loss_report(closed.withdrawn_report)
            if closed.restored_card is not None:
                await records.save_card(closed.restored_card)
        created, updated = await records.save_application(closed.application)
        await work.emit(closed.events)
        return ApplicationRecord(closed.application, created, updated)

    async def reject(self, work: Work, application_id: str, reason: str, code: str) -> ApplicationRecord:
        """`code`: one of the policy's rejection codes (``domain.rejection_code``)."""
        return await self._close(
            work,
            await _application(work.records, application_id),
            lambda app, card, today: d.reject_application(app, card, reason.strip(), code, today),
        )

    async def cancel(self, work: Work, application_id: str, reason: str) -> ApplicationRecord:
        return await self._close(
            work,
            await _application(work.records, application_id),
            lambda app, card, today: d.cancel_application(app, card, reason.strip(), today),
        )

    async def issue_card(
        self, work: Work, application_id: str, *, old_card_surrendered: bool
    ) -> tuple[ApplicationRecord, d.Card]:
        """Hand the card over: it is VALID from today, and the person's previous card is superseded."""
        records = work.records
        app = await _application(records, application_id)
        birth = check_id_number(app.id_number).birth_date
        assert birth is not None
        issued = d.hand_over_card(
            app,
            birth,
            self.clock.today(),
            self.policy,
            previous_card=await records.current_card(app.id_number),
            old_card_surrendered=old_card_surrendered,
        )
        if issued.previous_card is not None:
            await records.save_card(issued.previous_card)
        await records.save_card(issued.card)
        created, updated = await records.save_application(issued.application)
        await work.emit(issued.events)
        return ApplicationRecord(issued.application, created, updated), issued.card

    # -- the card register ---------------------------------------------------------------------------------

    async def update_card_address(self, work: Work, id_number: str, region_code: str, address: str) -> d.Card:
        records = work.records
        changed = d.update_card_address(
            await records.current_card(id_number), region_code, address, self.clock.today()
        )
        await records.save_card(changed.state)
        await work.emit(changed.events)
        return changed.state

    async def report_card_lost(
        self, work: Work, id_number: str, station_region_code: str, card_number: str, hukou: Hukou
    ) -> d.LossReported:
        """A loss report at a station, of the card named (or the person's current card when "")."""
        person = d.require_hukou(await hukou(), active=False)
        records = work.records
        card = await records.get_card(card_number) if card_number else await records.current_card(id_number)
        if card is None or card.id_number != id_number:
            raise NotFound("The register holds no such card for this person.")
        reported = d.report_card_lost(
            card, station_region_code, person.region_code, self.clock.today(), report_id=self.ids()
        )
        await records.save_card(reported.card)
        await records.add_loss_report(reported.report.id, reported.report)
        await work.emit(reported.events)
        return reported

    # -- lost and found ------------------------------------------------------------------------------------

    async def register_found_card(
        self,
        work: Work,
        *,
        card_number: str,
        id_number: str,
        station_region_code: str,
        found_place: str,
        found_on: dt.date,
    ) -> d.FoundCard:
        records = work.records
        card = await records.get_card(card_number)
        if card is None or card.id_number != id_number:
            raise NotFound("The register holds no such card for this ID number.")
        changed = d.enter_found_card(
            id=self.ids(),
            card=card,
            owner_current_card=await records.current_card(card.id_number),
            station_region_code=station_region_code,
            found_place=found_place,
            found_on=found_on,
            registered_on=self.clock.today(),
        )
        await records.save_found_card(changed.state)
        await work.emit(changed.events)
        return changed.state

    async def claim_found_card(
        self, work: Work, found_id: str, claimant_id_number: str, photo_ref: str, hukou: Hukou
    ) -> d.FoundCard:
        """The owner collects a found card: identity confirmed by the register, a photo kept."""
        person = await hukou()
        records = work.records
        found = await records.get_found_card(found_id)
        if found is None:
            raise NotFound("No such found card.")
        changed = d.return_found_card(
            found,
            claimant_id_number,
            identity_confirmed=person.confirms_identity,
            photo_ref=photo_ref,
            on=self.clock.today(),
        )
        await records.save_found_card(changed.state)
        await work.emit(changed.events)
        return changed.state

    # -- temporary cards -----------------------------------------------------------------------------------

    async def issue_temporary_card(
        self, work: Work, id_number: str, station_region_code: str, urgent_need: bool, hukou: Hukou
    ) -> TemporaryCardRecord:
        """One temporary card per application in progress, issued the day it is asked for."""
        person = d.require_hukou(await hukou(), active=True)
        records = work.records
        temporary_id = self.ids()
        changed = d.issue_temporary_card(
            id=temporary_id,
            id_number=id_number,
            open_application=await records.get_open_application_for(id_number),
            station_region_code=station_region_code,
            hukou_region_code=person.region_code,
            urgent_need=urgent_need,
            on=self.clock.today(),
            policy=self.policy,
        )
        if await records.temporary_card_for_application(changed.state.application_id) is not None:
            raise AlreadyExists("The application in progress already has a temporary card.")
        await records.add_temporary_card(temporary_id, changed.state, station_region_code)
        await work.emit(changed.events)
        return TemporaryCardRecord(temporary_id, changed.state, station_region_code)

    # -- following the household register ------------------------------------------------------------------

    async def follow_register(self, work: Work, sequence: int, event: d.Deregistration | None) -> bool:
        """Apply residence's register event at `sequence` and advance the cursor; False (nothing done)
        for an event already applied. A deregistration that cancels the ID card cancels every card of the
        person from the day it happened, and an application still open (a loss report filed with it is
        withdrawn; the card stays cancelled). `event` None: unreadable, skipped."""
        records = work.records
        if sequence <= await records.cursor(REGISTER):
            return False
        if event is not None and event.cancel_id_card:
            for card in await records.cards_of(event.id_number):
                cancelled = d.cancel_card(card, event.occurred_on, event.reason)
                if cancelled is not None:
                    await records.save_card(cancelled.state)
                    await work.emit(cancelled.events)
            open_app = await records.get_open_application_for(event.id_number)
            if open_app is not None:
                reason = CANCELLATION_REASON.format(reason=event.reason)
                await self._close(
                    work,
                    open_app,
                    lambda app, _card, today: d.cancel_for_deregistered_holder(app, reason, today),
                )
        await records.advance_cursor(REGISTER, sequence)
        return True


__all__ = [
    "CANCELLATION_REASON",
    "REGISTER",
    "ApplicationRecord",
    "Hukou",
    "HukouAnswer",
    "IdentityHandlers",
    "Records",
    "TemporaryCardRecord",
    "Work",
    "new_card_number",
]
