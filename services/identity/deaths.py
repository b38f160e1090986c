"""Identity follows the household register: when residence deregisters a person with ``cancel_id_card``
(death, and the other reasons residence's policy lists), the person's card is cancelled (注销) from the
day it happened and every VerifyCard answers CANCELLED with that date; an application still open is
cancelled with it.

One consumer per identity process reads residence's WatchEvents (PersonDeregistered only) from the cursor
kept in identity's own ``event_cursors`` table. Each event is applied in one unit of work together with the
cursor's advance and the CardCancelled / CardApplicationCancelled events it causes, so an event is applied
once even when the stream breaks or the process restarts; applying one twice changes nothing anyway (a
cancelled card stays as it is). Several identity processes on one database may follow at once: the cursor
only moves forward and the changes are idempotent. The rule and its orchestration are the use case
``IdentityHandlers.follow_register``; this module reads the stream and keeps following it.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog

from services.common.errors import Unavailable
from services.common.service import ServiceContext
from services.identity.domain import Deregistration
from services.identity.handlers import REGISTER, IdentityHandlers
from services.identity.residence import HukouDirectory
from services.identity.store import IdentityRepository, IdentityWork

log = structlog.get_logger("govhub.identity.deaths")


class RegisterFollower:
    def __init__(
        self,
        ctx: ServiceContext,
        directory: HukouDirectory,
        handlers: IdentityHandlers,
        *,
        reconnect_max: float = 10.0,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.handlers = handlers
        self.reconnect_max = reconnect_max

    async def cursor(self) -> int:
        async with self.ctx.uow() as uow:
            return await IdentityRepository(uow.session, self.ctx.clock.now()).cursor(REGISTER)

    async def apply(self, sequence: int, event: Deregistration | None) -> None:
        """One event, with the cursor, in one unit of work (its events carry ``residence:<sequence>`` as
        their request_id)."""
        async with self.ctx.uow() as uow:
            work = IdentityWork(uow, self.ctx.feed, self.ctx.clock.now(), f"{REGISTER}:{sequence}")
            if not await self.handlers.follow_register(work, sequence, event):
                return
            await uow.commit()
        if event is None:
            log.warning("unreadable register event skipped", sequence=sequence)

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
