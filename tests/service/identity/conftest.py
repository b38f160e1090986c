"""A real identity server on port 0 per test, a grpc.aio channel made in the test's own loop, a fake
household register (synthetic people only), and the clock pinned to 2016-09-15 (after Shanghai accepted
天津 on 2016-07-01, before it accepted 河南 on 2016-12-26)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.idnumber import build_id_number
from services.common.settings import CommonSettings, ServiceSettings
from services.identity.residence import FakeHukouDirectory, HukouDirectory
from services.identity.server import build_server

TODAY = dt.date(2016, 9, 15)
SHANGHAI_STATION = "310104"  # 徐汇区


@dataclass(frozen=True)
class Person:
    id_number: str
    name: str
    region_code: str  # hukou


TIANJIN = Person("120101198503120115", "王津生", "120101")  # 天津: accepted from 2016-07-01
HENAN = Person("410105199007080221", "李豫华", "410105")  # 河南: accepted only from 2016-12-26
YOUNG = Person(build_id_number("310104", dt.date(2000, 5, 1), 11), "沪小明", "310104")  # 16, first card
ADULT = Person(build_id_number("310104", dt.date(1970, 3, 2), 22), "沪大芳", "310104")
MOVING = Person(build_id_number("420102", dt.date(1988, 1, 8), 31), "鄂迁出", "420102")
STRANGER = Person("11010519491231002X", "无此人", "110105")  # not in the register
PEOPLE = (TIANJIN, HENAN, YOUNG, ADULT)
PERMIT = pb.ResidencePermit(
    number="SH3101042016000123", valid_until=common_pb2.Date(year=2017, month=8, day=31)
)


def rid() -> str:
    return str(uuid.uuid4())


def date(value: dt.date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def as_date(msg: common_pb2.Date) -> dt.date | None:
    return dt.date(msg.year, msg.month, msg.day) if msg.year else None


def fake_register() -> FakeHukouDirectory:
    register = FakeHukouDirectory()
    for person in PEOPLE:
        register.add(person.id_number, person.name, person.region_code)
    register.add(MOVING.id_number, MOVING.name, MOVING.region_code, status="MOVING_OUT")
    return register


def status_details(exc: grpc.aio.AioRpcError) -> list[Any]:
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no status details on {exc.code()}: {exc.details()}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == exc.code().value[0]
    out: list[Any] = []
    for detail in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                out.append(msg)
    return out


def violations(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    """field -> reason of the BadRequest detail (the first reason of each field)."""
    assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT, exc
    out: dict[str, str] = {}
    for detail in status_details(exc):
        if isinstance(detail, error_details_pb2.BadRequest):
            for v in detail.field_violations:
                out.setdefault(v.field, v.reason)
    return out


def reason(exc: grpc.aio.AioRpcError) -> str:
    [info] = [d for d in status_details(exc) if isinstance(d, error_details_pb2.ErrorInfo)]
    return info.reason


def create_request(person: Person = TIANJIN, **overrides: Any) -> pb.CreateCardApplicationRequest:
    fields: dict[str, Any] = {
        "request_id": rid(),
        "id_number": person.id_number,
        "name": person.name,
        "kind": pb.CARD_APPLICATION_KIND_RENEWAL,
        "renewal_reason": pb.RENEWAL_REASON_EXPIRY,
        "accepting_region_code": SHANGHAI_STATION,
        "residence_permit": PERMIT,
    }
    fields.update(overrides)
    return pb.CreateCardApplicationRequest(**{k: v for k, v in fields.items() if v is not None})


def first_issue(person: Person = YOUNG, **overrides: Any) -> pb.CreateCardApplicationRequest:
    base: dict[str, Any] = {
        "kind": pb.CARD_APPLICATION_KIND_FIRST_ISSUE,
        "renewal_reason": None,
        "residence_permit": None,
    }
    return create_request(person, **{**base, **overrides})


@dataclass
class Identity:
    service: GrpcService
    channel: grpc.aio.Channel
    stub: identity_pb2_grpc.IdentityServiceStub
    register: FakeHukouDirectory

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    async def create(self, request: pb.CreateCardApplicationRequest | None = None) -> pb.CardApplication:
        reply = await self.stub.CreateCardApplication(request or create_request(), timeout=10)
        return reply.card_application

    async def to_state(self, app: pb.CardApplication, state: str) -> pb.CardApplication:
        """Walk an ACCEPTED application on to `state` (APPROVED … ISSUED) through the RPCs."""
        steps = [
            ("APPROVED", self.stub.ApproveCardApplication, pb.ApproveCardApplicationRequest, {}),
            ("CARD_PRODUCED", self.stub.MarkCardProduced, pb.MarkCardProducedRequest, {}),
            ("READY_FOR_PICKUP", self.stub.MarkCardReadyForPickup, pb.MarkCardReadyForPickupRequest, {}),
            ("ISSUED", self.stub.IssueCard, pb.IssueCardRequest, {"old_card_surrendered": True}),
        ]
        for name, rpc, request_type, extra in steps:
            app = (await rpc(request_type(request_id=rid(), id=app.id, **extra), timeout=10)).card_application
            if name == state:
                return app
        raise AssertionError(state)

    async def events(self, count: int, after: int = 0, types: tuple[str, ...] = ()) -> list[Any]:
        """The next `count` events after `after` (waiting for them as they are written)."""
        out: list[Any] = []
        call = self.stub.WatchEvents(
            pb.WatchEventsRequest(after_sequence=after, types=list(types)), timeout=10
        )
        async for reply in call:
            out.append(reply.event)
            if len(out) == count:
                break
        call.cancel()
        return out


async def events_through(identity: Identity, last_aggregate_id: str, after: int = 0) -> list[Any]:
    """Every event after `after` up to and including the first about `last_aggregate_id` (a marker
    written last): lets a test see that nothing else was written, without sleeping."""
    out: list[Any] = []
    call = identity.stub.WatchEvents(pb.WatchEventsRequest(after_sequence=after), timeout=10)
    async for reply in call:
        out.append(reply.event)
        if reply.event.aggregate_id == last_aggregate_id:
            break
    call.cancel()
    return out


def settings_for(db_url: str, **overrides: Any) -> ServiceSettings:
    fields: dict[str, Any] = {
        "service": "identity",
        "host": "127.0.0.1",
        "port": 0,
        "database_url": db_url,
        "common": CommonSettings(today=TODAY),
        "health_interval": 60.0,
    }
    fields.update(overrides)
    return ServiceSettings(**fields)


async def start_identity(settings: ServiceSettings, hukou: HukouDirectory | None) -> GrpcService:
    service = await build_server(settings, clock=Clock(settings.common.today), hukou=hukou)
    await service.start()
    return service


@pytest.fixture
async def identity(db_url: str) -> AsyncIterator[Identity]:
    register = fake_register()
    service = await start_identity(settings_for(db_url), register)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Identity(service, channel, identity_pb2_grpc.IdentityServiceStub(channel), register)
    finally:
        await channel.close()
        await service.stop(0)
