"""A death in the household register cancels the ID card, over real processes: a residence server (its own
SQLite database, the seed's demo people) and an identity server that asks it for hukou facts and follows
its event stream with identity's own cursor — also across a restart of identity."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from govhub.residence.v1 import residence_pb2 as rpb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.clock import Clock
from services.common.grpcserver import GrpcService
from services.common.idnumber import build_id_number
from services.common.settings import ServiceSettings
from services.residence.seed import DEMO_HOUSEHOLDS
from services.residence.server import build_server as build_residence
from tests.service.identity.conftest import (
    TODAY,
    Person,
    as_date,
    date,
    first_issue,
    rid,
    settings_for,
    start_identity,
)
from tests.service.residence.conftest import seed_demo

XUHUI = DEMO_HOUSEHOLDS[5]  # 张沪生 (head), 周丽华, 张小明: all 徐汇 310104
HEAD, SPOUSE = XUHUI.members[0], XUHUI.members[1]
GRANDMOTHER = build_id_number("310104", dt.date(1955, 4, 5), 24)


@asynccontextmanager
async def residence_server(path: Path) -> AsyncIterator[GrpcService]:
    url = f"sqlite+aiosqlite:///{path}"
    await seed_demo(url)
    settings = ServiceSettings(service="residence", host="127.0.0.1", port=0, database_url=url)
    service = await build_residence(settings, clock=Clock(TODAY))
    await service.start()
    try:
        yield service
    finally:
        await service.stop(0)


@asynccontextmanager
async def identity_server(
    db_url: str, residence: GrpcService
) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    settings = settings_for(db_url, residence_target=f"127.0.0.1:{residence.port}")
    service = await start_identity(settings, None)  # the real household register over gRPC
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    finally:
        await channel.close()
        await service.stop(0)


async def issue_card(identity: identity_pb2_grpc.IdentityServiceStub, person: object) -> pb.Card:
    request = first_issue(Person(person.id_number, person.name, "310104"))  # type: ignore[attr-defined]
    app = (await identity.CreateCardApplication(request, timeout=10)).card_application
    for rpc, message, extra in (
        (identity.ApproveCardApplication, pb.ApproveCardApplicationRequest, {}),
        (identity.MarkCardProduced, pb.MarkCardProducedRequest, {}),
        (identity.MarkCardReadyForPickup, pb.MarkCardReadyForPickupRequest, {}),
        (identity.IssueCard, pb.IssueCardRequest, {"old_card_surrendered": True}),
    ):
        await rpc(message(request_id=rid(), id=app.id, **extra), timeout=10)
    reply = await identity.GetCurrentCard(pb.GetCurrentCardRequest(id_number=person.id_number), timeout=10)  # type: ignore[attr-defined]
    return reply.card


async def verify(identity: identity_pb2_grpc.IdentityServiceStub, card: pb.Card) -> pb.VerifyCardResponse:
    request = pb.VerifyCardRequest(card_number=card.card_number, id_number=card.id_number)
    return await identity.VerifyCard(request, timeout=10)


async def until_cancelled(
    identity: identity_pb2_grpc.IdentityServiceStub, card: pb.Card
) -> pb.VerifyCardResponse:
    for _ in range(200):
        answer = await verify(identity, card)
        if answer.result == pb.CARD_VERIFICATION_RESULT_CANCELLED:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError("the card was not cancelled")


async def deregister(residence: GrpcService, request: rpb.DeregisterRequest) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{residence.port}") as channel:
        await residence_pb2_grpc.ResidenceServiceStub(channel).Deregister(request, timeout=10)


async def test_a_death_registered_by_residence_cancels_the_card(db_url: str, tmp_path: Path) -> None:
    died = TODAY - dt.timedelta(days=1)
    async with residence_server(tmp_path / "residence.db") as residence:
        async with identity_server(db_url, residence) as identity:
            head_card = await issue_card(identity, HEAD)
            spouse_card = await issue_card(identity, SPOUSE)
            assert (await verify(identity, head_card)).valid
            await deregister(
                residence,
                rpb.DeregisterRequest(
                    request_id=rid(),
                    id_number=HEAD.id_number,
                    reason=rpb.DEREGISTRATION_REASON_DEATH,
                    occurred_on=date(died),
                    new_head_id_number=SPOUSE.id_number,
                ),
            )
            answer = await until_cancelled(identity, head_card)
            assert not answer.valid and as_date(answer.cancelled_on) == died
            assert (await verify(identity, spouse_card)).valid

        # Identity is down while the register records the mother's death, leaving a four-year-old (the
        # grandmother becomes the household's contact); identity resumes from its cursor.
        await deregister(
            residence,
            rpb.DeregisterRequest(
                request_id=rid(),
                id_number=SPOUSE.id_number,
                reason=rpb.DEREGISTRATION_REASON_DEATH,
                occurred_on=date(TODAY),
                guardian=rpb.Guardian(id_number=GRANDMOTHER, name="周老太", relationship="外祖母"),
            ),
        )
        async with identity_server(db_url, residence) as identity:
            answer = await until_cancelled(identity, spouse_card)
            assert as_date(answer.cancelled_on) == TODAY
            again = await verify(identity, head_card)
            assert as_date(again.cancelled_on) == died  # applied once, not moved by a replay
