"""Where identity gets hukou facts: the household register of the residence service, over gRPC.

`HukouDirectory` is the question identity asks (VerifyHukou: does this ID number and name match a
register entry, and where is that hukou) and the register's deregistrations it follows (WatchEvents,
PersonDeregistered: the card is cancelled, see ``services.identity.deaths``). `GrpcHukouDirectory` asks the
residence service; `FakeHukouDirectory` answers from memory for tests. Identity never keeps hukou facts in
its own tables.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf import json_format
from opentelemetry.trace import TracerProvider

from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from services.common.errors import Unavailable
from services.common.settings import TlsFiles
from services.common.tls import aio_channel
from services.identity.domain import Deregistration, HukouRecord

# Status codes that mean "the register did not answer": the caller may retry later.
_NOT_ANSWERED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


def deregistration(sequence: int, data: dict[str, Any]) -> Deregistration | None:
    """The event's facts, or None when they are not readable (logged and skipped by the consumer)."""
    try:
        return Deregistration(
            sequence=sequence,
            id_number=str(data["id_number"]),
            reason=str(data["reason"]),
            occurred_on=dt.date.fromisoformat(str(data["occurred_on"])),
            cancel_id_card=bool(data.get("cancel_id_card")),
        )
    except (KeyError, ValueError):
        return None


class HukouDirectory(Protocol):
    async def verify(self, id_number: str, name: str, *, timeout: float) -> HukouRecord:
        """The register's answer for this person; `Unavailable` when it does not answer in `timeout` s."""
        ...

    def deregistrations(self, after_sequence: int) -> AsyncIterator[tuple[int, Deregistration | None]]:
        """The register's PersonDeregistered events after `after_sequence`, then new ones as they come:
        (sequence, facts or None when unreadable). Ends or raises when the stream breaks."""
        ...

    async def close(self) -> None: ...


class GrpcHukouDirectory:
    """The residence service's VerifyHukou. Create it inside the running event loop (grpc.aio channels
    belong to the loop they were made in) and close it on shutdown."""

    def __init__(
        self, target: str, *, tracer_provider: TracerProvider | None = None, tls: TlsFiles | None = None
    ) -> None:
        interceptors = []
        if tracer_provider is not None:
            from opentelemetry.instrumentation.grpc import aio_client_interceptors

            interceptors = aio_client_interceptors(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
        # Mutual TLS with identity's client certificate when `tls` is given (GOVHUB_TLS=on).
        self._channel = aio_channel(target, tls, interceptors=interceptors)
        self._stub = residence_pb2_grpc.ResidenceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def verify(self, id_number: str, name: str, *, timeout: float) -> HukouRecord:
        try:
            reply = await self._stub.VerifyHukou(
                residence_pb2.VerifyHukouRequest(id_number=id_number, name=name),
                timeout=timeout,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _NOT_ANSWERED:
                raise Unavailable("The household register did not answer; try again later.") from None
            raise
        status = residence_pb2.PersonStatus.Name(reply.status).removeprefix("PERSON_STATUS_")
        return HukouRecord(
            found=reply.found,
            name_matches=reply.name_matches,
            status="" if status == "UNSPECIFIED" else status,
            province_code=reply.hukou_province_code,
            region_code=reply.hukou_region_code,
        )

    async def deregistrations(self, after_sequence: int) -> AsyncIterator[tuple[int, Deregistration | None]]:
        call = self._stub.WatchEvents(
            residence_pb2.WatchEventsRequest(after_sequence=after_sequence, types=["PersonDeregistered"]),
            wait_for_ready=True,
        )
        try:
            async for reply in call:
                event = reply.event
                yield event.sequence, deregistration(event.sequence, json_format.MessageToDict(event.data))
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close(None)


@dataclass
class FakeHukouDirectory:
    """An in-memory register: `add` people, set `down` to make it not answer, read `calls`."""

    people: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> (name, region, status)
    down: bool = False
    calls: list[tuple[str, float]] = field(default_factory=list)
    events: list[Deregistration] = field(default_factory=list)
    _published: asyncio.Event = field(default_factory=asyncio.Event)

    def deregister(self, id_number: str, reason: str, occurred_on: dt.date, *, cancel_id_card: bool) -> None:
        """The register deregisters a person: the person's status changes and the event is published."""
        name, region, _ = self.people[id_number]
        self.people[id_number] = (name, region, "DEREGISTERED")
        sequence = len(self.events) + 1
        self.events.append(Deregistration(sequence, id_number, reason, occurred_on, cancel_id_card))
        self._published.set()

    async def deregistrations(self, after_sequence: int) -> AsyncIterator[tuple[int, Deregistration | None]]:
        position = after_sequence
        while True:
            for event in self.events[position:]:
                position = event.sequence
                yield event.sequence, event
            self._published.clear()
            if len(self.events) > position:
                continue
            await self._published.wait()

    def add(self, id_number: str, name: str, region_code: str, status: str = "REGISTERED") -> None:
        self.people[id_number] = (name, region_code, status)

    async def verify(self, id_number: str, name: str, *, timeout: float) -> HukouRecord:
        self.calls.append((id_number, timeout))
        if self.down:
            raise Unavailable("The household register did not answer; try again later.")
        entry = self.people.get(id_number)
        if entry is None:
            return HukouRecord(found=False, name_matches=False)
        registered_name, region, status = entry
        if registered_name != name:
            return HukouRecord(found=True, name_matches=False, status=status)
        return HukouRecord(True, True, status, region[:2], region)

    async def close(self) -> None:
        return None
