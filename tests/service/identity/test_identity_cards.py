"""The card register, loss reports, lost-and-found and temporary cards through a real identity server."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as pb
from tests.service.identity.conftest import (
    ADULT,
    SHANGHAI_STATION,
    TIANJIN,
    YOUNG,
    Identity,
    Person,
    as_date,
    create_request,
    date,
    first_issue,
    reason,
    rid,
    violations,
)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def issued_card(identity: Identity, person: Person = YOUNG) -> pb.Card:
    app = await identity.to_state(await identity.create(first_issue(person)), "ISSUED")
    reply = await identity.stub.GetCurrentCard(
        pb.GetCurrentCardRequest(id_number=person.id_number), timeout=10
    )
    assert reply.card.application_id == app.id
    return reply.card


async def verify(identity: Identity, card: pb.Card, id_number: str | None = None) -> pb.VerifyCardResponse:
    request = pb.VerifyCardRequest(card_number=card.card_number, id_number=id_number or card.id_number)
    return await identity.stub.VerifyCard(request, timeout=10)


def loss(person: Person = YOUNG, **overrides: object) -> pb.ReportCardLostRequest:
    fields: dict[str, object] = {
        "request_id": rid(),
        "id_number": person.id_number,
        "name": person.name,
        "station_region_code": SHANGHAI_STATION,
    }
    fields.update(overrides)
    return pb.ReportCardLostRequest(**fields)  # type: ignore[arg-type]


def found(card: pb.Card, **overrides: object) -> pb.RegisterFoundCardRequest:
    fields: dict[str, object] = {
        "request_id": rid(),
        "card_number": card.card_number,
        "id_number": card.id_number,
        "station_region_code": "310115",
        "found_place": "地铁2号线陆家嘴站",
        "found_on": date(dt.date(2016, 9, 14)),
    }
    fields.update(overrides)
    return pb.RegisterFoundCardRequest(**fields)  # type: ignore[arg-type]


def replacement(person: Person = YOUNG) -> pb.CreateCardApplicationRequest:
    return first_issue(person, kind=pb.CARD_APPLICATION_KIND_REPLACEMENT)


# -- the register and VerifyCard ---------------------------------------------------------------------------


async def test_register_and_verify(identity: Identity) -> None:
    exc = await refused(
        identity.stub.GetCurrentCard(pb.GetCurrentCardRequest(id_number=YOUNG.id_number), timeout=10)
    )
    assert exc.code() is grpc.StatusCode.NOT_FOUND
    card = await issued_card(identity)
    assert card.status == pb.CARD_STATUS_VALID and as_date(card.valid_until) == dt.date(2026, 9, 15)
    answer = await verify(identity, card)
    assert answer.valid and answer.result == pb.CARD_VERIFICATION_RESULT_VALID
    assert [f.name for f, _ in answer.ListFields()] == ["valid", "result"]  # nothing personal
    other = await verify(identity, card, id_number=ADULT.id_number)
    assert not other.valid and other.result == pb.CARD_VERIFICATION_RESULT_UNKNOWN_CARD
    exc = await refused(identity.stub.VerifyCard(pb.VerifyCardRequest(id_number="12345"), timeout=10))
    assert violations(exc) == {"card_number": "REQUIRED", "id_number": "BAD_LENGTH"}


async def test_long_term_card_and_list(identity: Identity) -> None:
    card = await issued_card(identity, ADULT)  # 46 on 2016-09-15: long-term
    assert card.long_term and not card.HasField("valid_until")
    listed = await identity.stub.ListCards(pb.ListCardsRequest(id_number=ADULT.id_number), timeout=10)
    assert [c.card_number for c in listed.cards] == [card.card_number] and not listed.next_page_token


# -- loss reports ------------------------------------------------------------------------------------------


async def test_loss_report_makes_the_card_reported_lost(identity: Identity) -> None:
    card = await issued_card(identity)
    exc = await refused(identity.stub.CreateCardApplication(replacement(), timeout=10))
    assert reason(exc) == "LOSS_NOT_REPORTED"
    reply = await identity.stub.ReportCardLost(loss(), timeout=10)
    assert reply.card.status == pb.CARD_STATUS_REPORTED_LOST and reply.loss_report.inside_hukou_area
    answer = await verify(identity, card)
    assert not answer.valid and answer.result == pb.CARD_VERIFICATION_RESULT_REPORTED_LOST
    exc = await refused(identity.stub.ReportCardLost(loss(), timeout=10))
    assert reason(exc) == "CARD_ALREADY_REPORTED_LOST"
    [event] = await identity.events(1, types=("CardReportedLost",))
    assert event.aggregate_id == card.card_number and event.data["inside_hukou_area"] is True

    app = await identity.create(replacement())
    assert app.fee_fen == 4000 and "LOSS_REPORT" in app.required_materials


async def test_loss_report_checks_the_reporter(identity: Identity) -> None:
    await issued_card(identity)
    exc = await refused(identity.stub.ReportCardLost(loss(name="别人"), timeout=10))
    assert reason(exc) == "HUKOU_NAME_MISMATCH"
    exc = await refused(identity.stub.ReportCardLost(loss(ADULT), timeout=10))
    assert exc.code() is grpc.StatusCode.NOT_FOUND  # no card in the register
    away = await identity.stub.ReportCardLost(loss(station_region_code="120101"), timeout=10)
    assert not away.loss_report.inside_hukou_area


# -- lost and found ----------------------------------------------------------------------------------------


async def test_found_card_waits_for_its_owner_and_is_claimed(identity: Identity) -> None:
    card = await issued_card(identity)
    await identity.stub.ReportCardLost(loss(), timeout=10)
    registered = (await identity.stub.RegisterFoundCard(found(card), timeout=10)).found_card
    assert registered.status == pb.FOUND_CARD_STATUS_AWAITING_OWNER and registered.owner_notified
    [event] = await identity.events(1, types=("FoundCardRegistered",))
    assert event.data["notify_owner"] is True and event.data["id_number"] == YOUNG.id_number

    search = await identity.stub.SearchFoundCards(pb.SearchFoundCardsRequest(id_number=YOUNG.id_number))
    assert [f.id for f in search.found_cards] == [registered.id]

    claim = pb.ClaimFoundCardRequest(
        request_id=rid(),
        id=registered.id,
        claimant_id_number=YOUNG.id_number,
        claimant_name="冒领者",
        photo_ref="sha256:claimant",
    )
    exc = await refused(identity.stub.ClaimFoundCard(claim, timeout=10))
    assert reason(exc) == "IDENTITY_NOT_CONFIRMED"
    claim.request_id, claim.claimant_name = rid(), YOUNG.name
    returned = (await identity.stub.ClaimFoundCard(claim, timeout=10)).found_card
    assert returned.status == pb.FOUND_CARD_STATUS_RETURNED and as_date(returned.closed_on) == dt.date(
        2016, 9, 15
    )
    claim.request_id = rid()
    exc = await refused(identity.stub.ClaimFoundCard(claim, timeout=10))
    assert reason(exc) == "FOUND_CARD_NOT_CLAIMABLE"


async def test_found_card_of_a_replaced_owner_is_destroyed(identity: Identity) -> None:
    old = await issued_card(identity)
    await identity.stub.ReportCardLost(loss(), timeout=10)
    new_app = await identity.to_state(await identity.create(replacement()), "ISSUED")
    assert new_app.card_number != old.card_number
    assert (await verify(identity, old)).result == pb.CARD_VERIFICATION_RESULT_REPORTED_LOST  # stays refused
    registered = (await identity.stub.RegisterFoundCard(found(old), timeout=10)).found_card
    assert registered.status == pb.FOUND_CARD_STATUS_DESTROYED and not registered.owner_notified
    events = await identity.events(2, types=("FoundCardRegistered", "FoundCardDestroyed"))
    assert [(e.type, e.aggregate_id) for e in events] == [
        ("FoundCardRegistered", registered.id),
        ("FoundCardDestroyed", registered.id),
    ]
    assert events[0].data["status"] == "DESTROYED" and events[0].data["notify_owner"] is False


async def test_found_card_refusals(identity: Identity) -> None:
    card = await issued_card(identity)
    exc = await refused(identity.stub.RegisterFoundCard(found(card, id_number=ADULT.id_number), timeout=10))
    assert exc.code() is grpc.StatusCode.NOT_FOUND
    exc = await refused(
        identity.stub.RegisterFoundCard(found(card, found_on=date(dt.date(2016, 9, 16))), timeout=10)
    )
    assert violations(exc) == {"found_on": "IN_THE_FUTURE"}
    exc = await refused(
        identity.stub.RegisterFoundCard(found(card, found_place="", found_on=None), timeout=10)
    )
    assert violations(exc) == {"found_place": "REQUIRED", "found_on": "REQUIRED"}


# -- temporary cards ---------------------------------------------------------------------------------------


def temporary(person: Person = YOUNG, **overrides: object) -> pb.IssueTemporaryCardRequest:
    fields: dict[str, object] = {
        "request_id": rid(),
        "id_number": person.id_number,
        "name": person.name,
        "station_region_code": person.region_code,
        "urgent_need": True,
    }
    fields.update(overrides)
    return pb.IssueTemporaryCardRequest(**fields)  # type: ignore[arg-type]


async def test_temporary_card(identity: Identity) -> None:
    exc = await refused(identity.stub.IssueTemporaryCard(temporary(), timeout=10))
    assert reason(exc) == "NO_APPLICATION_IN_PROGRESS"
    app = await identity.create(first_issue(YOUNG))
    exc = await refused(identity.stub.IssueTemporaryCard(temporary(urgent_need=False), timeout=10))
    assert reason(exc) == "URGENT_NEED_NOT_STATED"
    exc = await refused(identity.stub.IssueTemporaryCard(temporary(station_region_code="310115"), timeout=10))
    assert reason(exc) == "NOT_AT_HUKOU_STATION"

    card = (await identity.stub.IssueTemporaryCard(temporary(), timeout=10)).temporary_card
    assert card.application_id == app.id and card.fee_fen == 1000
    assert as_date(card.issued_on) == dt.date(2016, 9, 15)
    assert as_date(card.issue_by) == dt.date(2016, 9, 18)
    assert as_date(card.valid_until) == dt.date(2016, 12, 15)
    got = await identity.stub.GetTemporaryCard(pb.GetTemporaryCardRequest(id=card.id), timeout=10)
    assert got.temporary_card == card
    exc = await refused(identity.stub.IssueTemporaryCard(temporary(), timeout=10))
    assert exc.code() is grpc.StatusCode.ALREADY_EXISTS
    [event] = await identity.events(1, types=("TemporaryCardIssued",))
    assert event.aggregate_id == card.id


async def test_temporary_card_only_for_hukou_holders(identity: Identity) -> None:
    await identity.create(create_request(TIANJIN))
    exc = await refused(identity.stub.IssueTemporaryCard(temporary(TIANJIN, station_region_code="310104")))
    assert reason(exc) == "NOT_AT_HUKOU_STATION"
