"""Identity follows the household register: when residence deregisters a person with ``cancel_id_card``
(death, and the other reasons residence's policy lists), the person's card is cancelled (注销) from the
day it happened and every VerifyCard answers CANCELLED with that date; an application still open is
cancelled with it.

One consumer per identity process reads residence's WatchEvents (PersonDeregistered only) from the cursor
kept in identity's own ``event_cursors`` table. Each event is applied in one unit of work together with the
cursor's advance and the CardCancelled / CardApplicationCancelled events it causes, so an event is applied
once even when the stream breaks or the process restarts; applying one twice changes nothing anyway (a
cancelled card stays as it is). Several identity processes on one database may follow at once: the cursor
only moves forward and the changes are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import structlog

from services.common.errors import Unavailable
from services.common.service import ServiceContext
from services.identity import domain as d
from services.identity.residence import Deregistration, HukouDirectory
from services.identity.store import IdentityRepository

log = structlog.get_logger("govhub.identity.deaths")

SOURCE = "residence"
CANCELLATION_REASON = "持证人户口已注销（{reason}），申请随之撤销"


class RegisterFollower:
    def __init__(
        self, ctx: ServiceContext, directory: HukouDirectory, *, reconnect_max: float = 10.0
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.reconnect_max = reconnect_max

    async def cursor(self) -> int:
        async with self.ctx.uow() as uow:
            return await IdentityRepository(uow.session, self.ctx.clock.now()).cursor(SOURCE)

    async def apply(self, sequence: int, event: Deregistration | None) -> None:
        """One event, with the cursor, in one unit of work."""
        now = self.ctx.clock.now()
        async with self.ctx.uow() as uow:
            repo = IdentityRepository(uow.session, now)
            if sequence <= await repo.cursor(SOURCE):
                return
            if event is None:
                log.warning("unreadable register event skipped", sequence=sequence)
            elif event.cancel_id_card:
                await self._cancel(uow, repo, event)
            await repo.advance_cursor(SOURCE, sequence)
            await uow.commit()

    async def _cancel(self, uow: Any, repo: IdentityRepository, event: Deregistration) -> None:
        request_id = f"residence:{event.sequence}"
        for card in await repo.cards_of(event.id_number):
            cancelled = d.cancel_on_death(card, event.occurred_on)
            if cancelled is None:
                continue
            await repo.save_card(cancelled)
            payload = {
                "card_number": cancelled.card_number,
                "id_number": cancelled.id_number,
                "cancelled_on": event.occurred_on.isoformat(),
                "cause": event.reason,
            }
            await self._event(uow, "CardCancelled", cancelled.card_number, payload, request_id)
        app = await repo.get_open_application_for(event.id_number)
        if app is not None:
            today = self.ctx.clock.today()
            closed = app.cancel(CANCELLATION_REASON.format(reason=event.reason), today)
            card = await repo.get_card(closed.loss_report.card_number) if closed.loss_report else None
            closed, _restored, withdrawn = d.withdraw_loss_report(closed, card, today)
            if withdrawn is not None:  # the card itself stays cancelled
                await repo.withdraw_loss_report(withdrawn)
            await repo.save_application(closed)
            payload = {
                "application_id": closed.id,
                "id_number": closed.id_number,
                "kind": closed.kind.value,
                "state": closed.state.value,
                "cross_province": closed.cross_province,
                "fee_fen": closed.fee_fen,
                "cancellation_reason": closed.cancellation_reason,
                "loss_report_withdrawn": withdrawn is not None,
            }
            await self._event(uow, "CardApplicationCancelled", closed.id, payload, request_id)

    async def _event(
        self, uow: Any, event_type: str, aggregate_id: str, payload: dict[str, Any], request_id: str
    ) -> None:
        await self.ctx.feed.record(
            uow, event_type, aggregate_id, payload, occurred_at=self.ctx.clock.now(), request_id=request_id
        )

    async def run(self) -> None:
        """Follow the register until cancelled, reconnecting from the cursor with a growing pause."""
        pause = 0.2
        while True:
            try:
                async for sequence, event in self.directory.deregistrations(await self.cursor()):
                    await self.apply(sequence, event)
                    pause = 0.2
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, Unavailable, OSError) as exc:
                log.info("register stream broken; reconnecting", error=type(exc).__name__, pause=pause)
            except Exception:  # a bad row or a database hiccup: keep following, from the cursor
                log.exception("register event not applied; retrying from the cursor")
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.reconnect_max)


async def follow(follower: RegisterFollower) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await follower.run()


__all__ = ["RegisterFollower", "follow"]
