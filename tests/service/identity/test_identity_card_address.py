"""UpdateCardAddress through a real identity server: a hukou move is recorded in the current card's
machine-readable data, without a new card (docs/domain.md §2.3, Law Art. 11)."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as pb
from tests.service.identity.conftest import (
    ADULT,
    SHANGHAI_STATION,
    YOUNG,
    Identity,
    Person,
    as_date,
    events_through,
    first_issue,
    reason,
    rid,
    violations,
)

NEW_ADDRESS = "上海市浦东新区世纪大道100号"


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def issued_card(identity: Identity, person: Person = YOUNG) -> pb.Card:
    await identity.to_state(await identity.create(first_issue(person)), "ISSUED")
    return await current_card(identity, person)


async def current_card(identity: Identity, person: Person = YOUNG) -> pb.Card:
    request = pb.GetCurrentCardRequest(id_number=person.id_number)
    return (await identity.stub.GetCurrentCard(request, timeout=10)).card


def move(person: Person = YOUNG, **overrides: object) -> pb.UpdateCardAddressRequest:
    fields: dict[str, object] = {
        "request_id": rid(),
        "id_number": person.id_number,
        "region_code": "310115",
        "address": NEW_ADDRESS,
    }
    fields.update(overrides)
    return pb.UpdateCardAddressRequest(**fields)  # type: ignore[arg-type]


async def test_a_hukou_move_is_recorded_on_the_current_card(identity: Identity) -> None:
    card = await issued_card(identity)
    assert card.address_region_code == "" and card.address == ""
    assert not card.HasField("address_recorded_on")

    updated = (await identity.stub.UpdateCardAddress(move(), timeout=10)).card
    assert updated.card_number == card.card_number and updated.status == pb.CARD_STATUS_VALID
    assert updated.address_region_code == "310115" and updated.address == NEW_ADDRESS
    assert as_date(updated.address_recorded_on) == dt.date(2016, 9, 15)
    # Nothing else about the card changes: no renewal.
    assert updated.valid_from == card.valid_from and updated.valid_until == card.valid_until
    assert updated.application_id == card.application_id

    assert await current_card(identity) == updated
    listed = await identity.stub.ListCards(pb.ListCardsRequest(id_number=YOUNG.id_number), timeout=10)
    assert list(listed.cards) == [updated]
    verified = await identity.stub.VerifyCard(
        pb.VerifyCardRequest(card_number=card.card_number, id_number=YOUNG.id_number), timeout=10
    )
    assert verified.valid

    [event] = await identity.events(1, types=("CardAddressUpdated",))
    assert event.aggregate_id == card.card_number
    assert dict(event.data) == {
        "id_number": YOUNG.id_number,
        "card_number": card.card_number,
        "region_code": "310115",
        "recorded_on": "2016-09-15",
    }

    again = (await identity.stub.UpdateCardAddress(move(region_code=SHANGHAI_STATION), timeout=10)).card
    assert again.address_region_code == SHANGHAI_STATION
    assert (await current_card(identity)).address_region_code == SHANGHAI_STATION


async def test_same_request_id_same_answer_one_event(identity: Identity) -> None:
    card = await issued_card(identity)
    request = move()
    first = await identity.stub.UpdateCardAddress(request, timeout=10)
    assert await identity.stub.UpdateCardAddress(request, timeout=10) == first

    other = move(request_id=request.request_id, address="上海市黄浦区1号")
    exc = await refused(identity.stub.UpdateCardAddress(other, timeout=10))
    assert violations(exc) == {"request_id": "REUSED_WITH_DIFFERENT_REQUEST"}
    assert (await current_card(identity)).address == NEW_ADDRESS

    marker = await identity.create(first_issue(ADULT))
    events = await events_through(identity, marker.id)
    updates = [e for e in events if e.type == "CardAddressUpdated"]
    assert [(e.aggregate_id, e.request_id) for e in updates] == [(card.card_number, request.request_id)]


async def test_no_current_card(identity: Identity) -> None:
    exc = await refused(identity.stub.UpdateCardAddress(move(ADULT), timeout=10))  # never issued one
    assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION and reason(exc) == "NO_CURRENT_CARD"

    await issued_card(identity)
    lost = pb.ReportCardLostRequest(
        request_id=rid(), id_number=YOUNG.id_number, name=YOUNG.name, station_region_code=SHANGHAI_STATION
    )
    await identity.stub.ReportCardLost(lost, timeout=10)
    exc = await refused(identity.stub.UpdateCardAddress(move(), timeout=10))
    assert reason(exc) == "NO_CURRENT_CARD"
    card = await current_card(identity)
    assert card.status == pb.CARD_STATUS_REPORTED_LOST and card.address == ""
    marker = await identity.create(first_issue(ADULT))
    events = await events_through(identity, marker.id)
    assert "CardAddressUpdated" not in [e.type for e in events]


async def test_bad_input(identity: Identity) -> None:
    await issued_card(identity)
    exc = await refused(identity.stub.UpdateCardAddress(move(region_code="31011"), timeout=10))
    assert violations(exc) == {"region_code": "BAD_REGION_CODE"}
    exc = await refused(identity.stub.UpdateCardAddress(move(region_code="31011A"), timeout=10))
    assert violations(exc) == {"region_code": "BAD_REGION_CODE"}
    exc = await refused(
        identity.stub.UpdateCardAddress(
            move(id_number="12345", region_code="", address="路" * 201), timeout=10
        )
    )
    assert violations(exc) == {"id_number": "BAD_LENGTH", "region_code": "REQUIRED", "address": "TOO_LONG"}
    exc = await refused(identity.stub.UpdateCardAddress(move(address=" "), timeout=10))
    assert violations(exc) == {"address": "REQUIRED"}
    exc = await refused(identity.stub.UpdateCardAddress(move(request_id="abc"), timeout=10))
    assert violations(exc) == {"request_id": "NOT_A_UUID"}
    assert (await current_card(identity)).address == ""
