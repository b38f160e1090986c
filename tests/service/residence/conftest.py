"""A real residence server on port 0 per test over a database holding the seed's demo households (no
generated population), a grpc.aio channel made in the test's own loop, and the clock pinned to 2016-09-15.
Synthetic people only."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.clock import Clock
from services.common.db import make_engine
from services.common.grpcserver import GrpcService
from services.common.settings import ServiceSettings
from services.residence.seed import DEMO_HOUSEHOLDS, seed
from services.residence.server import build_server

TODAY = dt.date(2016, 9, 15)

# The seed's demo households (see services.residence.seed).
XUHUI_FAMILY = DEMO_HOUSEHOLDS[5]  # 张沪生 (head), 周丽华 (12), 张小明 (21)
PUDONG_FAMILY = DEMO_HOUSEHOLDS[6]  # 赵建国 (head), 钱秀英, 赵伟, 孙芳, 赵子涵
JINGAN_SIBLINGS = DEMO_HOUSEHOLDS[7]  # 吴静安 (head), 吴雅琴 (77)
TIANJIN = DEMO_HOUSEHOLDS[0]  # 王津生, alone


def rid() -> str:
    return str(uuid.uuid4())


def date(value: dt.date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def as_date(msg: common_pb2.Date) -> dt.date:
    return dt.date(msg.year, msg.month, msg.day)


def instant(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def status_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, "no status details"
    out: list[Any] = []
    for detail in status_pb2.Status.FromString(raw).details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                out.append(msg)
    return out


def violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
    (bad,) = [x for x in status_details(exc) if isinstance(x, error_details_pb2.BadRequest)]
    return {v.field: v.reason for v in bad.field_violations}


def reason(exc: grpc.aio.AioRpcError) -> str:
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
    (info,) = [x for x in status_details(exc) if isinstance(x, error_details_pb2.ErrorInfo)]
    return info.reason


def accommodation_request(**overrides: Any) -> pb.RegisterAccommodationRequest:
    fields: dict[str, Any] = {
        "request_id": rid(),
        "passport_number": "E1234567",
        "nationality": "GBR",
        "name": "Alex Testperson",
        "address": "上海市徐汇区漕溪北路1号酒店1201房",
        "police_station_code": "31010401",
        "host": pb.AccommodationHost(kind=pb.HOST_KIND_HOTEL, name="示例酒店", identifier="HOTEL-0001"),
        "arrive_time": instant(dt.datetime(2016, 9, 15, 1, 0, tzinfo=dt.UTC)),
        "from_date": date(TODAY),
        "to_date": date(TODAY + dt.timedelta(days=30)),
    }
    fields.update(overrides)
    return pb.RegisterAccommodationRequest(**fields)


@dataclass
class Residence:
    stub: residence_pb2_grpc.ResidenceServiceStub
    service: GrpcService
    db_url: str

    async def person(self, id_number: str) -> pb.Person:
        return (await self.stub.GetPerson(pb.GetPersonRequest(id_number=id_number))).person

    async def household(self, number: str) -> pb.Household:
        return (await self.stub.GetHousehold(pb.GetHouseholdRequest(number=number))).household

    async def members(self, number: str) -> list[tuple[str, str]]:
        """(name, relationship code) of every member, in register order, over every page."""
        out: list[tuple[str, str]] = []
        token = ""
        while True:
            page = await self.stub.ListMembers(
                pb.ListMembersRequest(household_number=number, page_size=2, page_token=token)
            )
            out += [(m.name, m.relationship_code) for m in page.members]
            token = page.next_page_token
            if not token:
                return out

    async def last_sequence(self) -> int:
        return (await self.events(0))[1]

    async def events(self, after: int) -> tuple[list[common_pb2.Event], int]:
        """Every event after `after`, in order, and the cursor to read on from. A marker event (an
        accommodation registration) is written last and the stream is read up to it: no sleeping, and
        nothing recorded before it can be missed. The marker is not returned; the cursor is its sequence."""
        marker = (
            await self.stub.RegisterAccommodation(accommodation_request(passport_number="MARKER01"))
        ).accommodation_registration
        call = self.stub.WatchEvents(pb.WatchEventsRequest(after_sequence=after))
        out: list[common_pb2.Event] = []
        try:
            async for response in call:
                if response.event.aggregate_id == marker.id:
                    return out, response.event.sequence
                out.append(response.event)
        finally:
            call.cancel()
        raise AssertionError("the event stream ended before the marker")


async def seed_demo(db_url: str, households: int = 0) -> Any:
    engine = make_engine(db_url, pool_size=1)
    try:
        return await seed(engine, households)
    finally:
        await engine.dispose()


@pytest.fixture
async def residence(db_url: str) -> AsyncIterator[Residence]:
    await seed_demo(db_url)
    settings = ServiceSettings(service="residence", host="127.0.0.1", port=0, database_url=db_url)
    service = await build_server(settings, clock=Clock(TODAY))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Residence(residence_pb2_grpc.ResidenceServiceStub(channel), service, db_url)
    finally:
        await channel.close()
        await service.stop(0)
        await settle()


async def settle() -> None:
    """Let the stopped server's leftover tasks finish before the test's loop closes: a WatchEvents handler
    the client cancelled may still be closing its database session (cancelled again by the loop's shutdown,
    such a task can hang it), and a shielded write (the audit trail) may still be running."""
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=5)
