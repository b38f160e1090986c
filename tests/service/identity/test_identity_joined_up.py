"""Issue 13 on the identity side, through a real identity server: a replacement takes an earlier loss
report or files one with itself (and a refused or withdrawn application leaves none behind), rejections
carry a code, results reach the events, the cross-province choice is checked, fees and days are quoted
from the department's policy, and a death in the household register cancels the card."""

from __future__ import annotations

import asyncio
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
    as_date,
    create_request,
    date,
    events_through,
    first_issue,
    reason,
    rid,
    violations,
)
from tests.service.identity.test_identity_cards import issued_card, loss, refused, replacement, verify

TODAY = dt.date(2016, 9, 15)


def lost_card_application(person=YOUNG, **overrides: object) -> pb.CreateCardApplicationRequest:  # type: ignore[no-untyped-def]
    return first_issue(person, kind=pb.CARD_APPLICATION_KIND_REPLACEMENT, report_loss=True, **overrides)


async def tianjin_card(identity: Identity) -> pb.Card:
    """A card issued in Tianjin to a Tianjin hukou (a first card is issued at home)."""
    app = await identity.create(first_issue(TIANJIN, accepting_region_code=TIANJIN.region_code))
    await identity.to_state(app, "ISSUED")
    return await current(identity, TIANJIN)


async def current(identity: Identity, person=YOUNG) -> pb.Card:  # type: ignore[no-untyped-def]
    reply = await identity.stub.GetCurrentCard(
        pb.GetCurrentCardRequest(id_number=person.id_number), timeout=10
    )
    return reply.card


# -- 13.3 loss reporting joins up --------------------------------------------------------------------------


async def test_a_loss_reported_online_is_taken_into_the_replacement(identity: Identity) -> None:
    card = await issued_card(identity)
    reported = await identity.stub.ReportCardLost(loss(), timeout=10)
    app = await identity.create(lost_card_application())
    assert app.loss_already_reported
    assert app.loss_report.id == reported.loss_report.id
    assert as_date(app.loss_report.reported_on) == TODAY and not app.loss_report.application_id
    submitted = [e for e in await events_through(identity, app.id) if e.type == "CardApplicationSubmitted"][
        -1
    ]
    assert submitted.data["loss_already_reported"] is True
    assert submitted.data["loss_reported_on"] == TODAY.isoformat()
    # Withdrawn: the report the citizen filed on their own stays.
    await identity.stub.CancelCardApplication(
        pb.CancelCardApplicationRequest(request_id=rid(), id=app.id), timeout=10
    )
    answer = await verify(identity, card)
    assert answer.result == pb.CARD_VERIFICATION_RESULT_REPORTED_LOST


async def test_the_loss_is_reported_with_the_application_and_withdrawn_with_it(identity: Identity) -> None:
    card = await issued_card(identity)
    app = await identity.create(lost_card_application())
    assert not app.loss_already_reported and app.loss_report.application_id == app.id
    assert (await verify(identity, card)).result == pb.CARD_VERIFICATION_RESULT_REPORTED_LOST
    lost = [e for e in await events_through(identity, app.id) if e.type == "CardReportedLost"]
    assert [e.data["application_id"] for e in lost] == [app.id]

    reply = await identity.stub.RejectCardApplication(
        pb.RejectCardApplicationRequest(
            request_id=rid(), id=app.id, reason="相片不符合要求", reason_code="PHOTO_NOT_COMPLIANT"
        ),
        timeout=10,
    )
    rejected = reply.card_application
    assert rejected.rejection_code == "PHOTO_NOT_COMPLIANT" and rejected.rejection_reason == "相片不符合要求"
    assert as_date(rejected.loss_report.withdrawn_on) == TODAY
    assert (await verify(identity, card)).valid  # the report went with the application
    tail = await events_through(identity, card.card_number, after=lost[0].sequence)
    assert [e.type for e in tail] == [
        "CardApplicationSubmitted",
        "CardApplicationRejected",
        "CardLossReportWithdrawn",
    ]
    tail = tail[1:]
    assert tail[0].data["rejection_code"] == "PHOTO_NOT_COMPLIANT"
    assert tail[0].data["loss_report_withdrawn"] is True
    # A new attempt reports it again.
    again = await identity.create(lost_card_application())
    assert again.loss_report.id != app.loss_report.id and not again.loss_already_reported


async def test_a_refused_application_leaves_no_loss_report(identity: Identity) -> None:
    identity.register.add(TIANJIN.id_number, TIANJIN.name, TIANJIN.region_code)
    card = await tianjin_card(identity)
    exc = await refused(
        identity.stub.CreateCardApplication(
            create_request(
                TIANJIN,
                kind=pb.CARD_APPLICATION_KIND_REPLACEMENT,
                renewal_reason=None,
                residence_permit=None,
                report_loss=True,
            ),
            timeout=10,
        )
    )
    assert reason(exc) == "RESIDENCE_PERMIT_REQUIRED"
    assert (await verify(identity, card)).valid
    corrected = await identity.create(
        create_request(
            TIANJIN, kind=pb.CARD_APPLICATION_KIND_REPLACEMENT, renewal_reason=None, report_loss=True
        )
    )
    assert corrected.cross_province and corrected.loss_report.application_id == corrected.id


async def test_report_loss_only_on_a_replacement(identity: Identity) -> None:
    exc = await refused(identity.stub.CreateCardApplication(first_issue(report_loss=True), timeout=10))
    assert violations(exc) == {"report_loss": "NOT_A_REPLACEMENT"}
    await issued_card(identity)
    exc = await refused(identity.stub.CreateCardApplication(replacement(), timeout=10))
    assert reason(exc) == "LOSS_NOT_REPORTED"


# -- 13.4 / 13.7 reasons and results -----------------------------------------------------------------------


async def test_rejection_codes_are_the_departments(identity: Identity) -> None:
    app = await identity.create(first_issue())
    exc = await refused(
        identity.stub.RejectCardApplication(
            pb.RejectCardApplicationRequest(request_id=rid(), id=app.id, reason="x", reason_code="MADE_UP"),
            timeout=10,
        )
    )
    assert violations(exc) == {"reason_code": "UNKNOWN_REASON_CODE"}
    reply = await identity.stub.RejectCardApplication(
        pb.RejectCardApplicationRequest(request_id=rid(), id=app.id, reason="户籍信息待核实"), timeout=10
    )
    assert reply.card_application.rejection_code == "OTHER"


async def test_pickup_date_and_place_reach_the_event(identity: Identity) -> None:
    app = await identity.create(first_issue())
    ready = await identity.to_state(app, "READY_FOR_PICKUP")
    assert as_date(ready.ready_on) == TODAY
    [event] = await identity.events(1, types=("CardReadyForPickup",))
    assert event.data["ready_on"] == TODAY.isoformat()
    assert event.data["collect_at_region_code"] == SHANGHAI_STATION
    assert event.data["card_number"] == ready.card_number and event.data["fee_fen"] == 2000


# -- 13.6 the wrong matter ---------------------------------------------------------------------------------


async def test_cross_province_acceptance_is_refused_to_a_local_hukou(identity: Identity) -> None:
    exc = await refused(
        identity.stub.CreateCardApplication(
            create_request(
                ADULT,
                kind=pb.CARD_APPLICATION_KIND_RENEWAL,
                renewal_reason=pb.RENEWAL_REASON_NAME_CHANGE,
                require_cross_province=True,
            ),
            timeout=10,
        )
    )
    assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION and reason(exc) == "NOT_CROSS_PROVINCE"
    app = await identity.create(create_request(TIANJIN, require_cross_province=True))
    assert app.cross_province


# -- 13.12 one source: the quote ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "renewal", "fee"),
    [
        (pb.CARD_APPLICATION_KIND_FIRST_ISSUE, 0, 2000),
        (pb.CARD_APPLICATION_KIND_RENEWAL, pb.RENEWAL_REASON_EXPIRY, 2000),
        (pb.CARD_APPLICATION_KIND_RENEWAL, pb.RENEWAL_REASON_SERIOUS_DAMAGE, 4000),  # 损坏换领: 40 yuan
        (pb.CARD_APPLICATION_KIND_REPLACEMENT, 0, 4000),
    ],
)
async def test_quote_is_what_an_application_is_charged(
    identity: Identity, kind: int, renewal: int, fee: int
) -> None:
    quote = await identity.stub.QuoteCardApplication(
        pb.QuoteCardApplicationRequest(kind=kind, renewal_reason=renewal, on=date(dt.date(2016, 10, 1))),
        timeout=10,
    )
    assert quote.fee_fen == fee and quote.statutory_days == 60
    assert as_date(quote.statutory_deadline) == dt.date(2016, 11, 30)
    assert quote.temporary_card_fee_fen == 1000
    assert set(quote.required_materials) <= set(quote.material_names)
    assert {c.code for c in quote.rejection_codes} >= {"OTHER", "PHOTO_NOT_COMPLIANT"}


async def test_quote_matches_the_application_and_refuses_like_it(identity: Identity) -> None:
    app = await identity.create(create_request(TIANJIN))
    quote = await identity.stub.QuoteCardApplication(
        pb.QuoteCardApplicationRequest(
            kind=pb.CARD_APPLICATION_KIND_RENEWAL,
            renewal_reason=pb.RENEWAL_REASON_EXPIRY,
            cross_province=True,
        ),
        timeout=10,
    )
    assert quote.fee_fen == app.fee_fen and list(quote.required_materials) == list(app.required_materials)
    assert quote.statutory_deadline == app.statutory_deadline
    exc = await refused(
        identity.stub.QuoteCardApplication(
            pb.QuoteCardApplicationRequest(
                kind=pb.CARD_APPLICATION_KIND_RENEWAL,
                fee_reduction=pb.FEE_REDUCTION_HARDSHIP,
                renewal_reason=pb.RENEWAL_REASON_SERIOUS_DAMAGE,
            ),
            timeout=10,
        )
    )
    assert reason(exc) == "FEE_REDUCTION_NOT_APPLICABLE"
    exc = await refused(identity.stub.QuoteCardApplication(pb.QuoteCardApplicationRequest(), timeout=10))
    assert violations(exc) == {"kind": "REQUIRED"}


# -- 13.10 a death cancels the card ------------------------------------------------------------------------


async def wait_for(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def test_a_death_in_the_register_cancels_the_card(identity: Identity) -> None:
    card = await issued_card(identity, ADULT)
    open_app = await identity.create(lost_card_application(ADULT))
    died = dt.date(2016, 9, 12)
    identity.register.deregister(ADULT.id_number, "DEATH", died, cancel_id_card=True)

    async def cancelled() -> bool:
        return (await verify(identity, card)).result == pb.CARD_VERIFICATION_RESULT_CANCELLED

    assert await wait_for(cancelled)
    answer = await verify(identity, card)
    assert not answer.valid and as_date(answer.cancelled_on) == died
    now = await current(identity, ADULT)
    assert now.status == pb.CARD_STATUS_CANCELLED and as_date(now.cancelled_on) == died
    app = await identity.stub.GetCardApplication(pb.GetCardApplicationRequest(id=open_app.id), timeout=10)
    assert app.card_application.state == pb.CARD_APPLICATION_STATE_CANCELLED
    cancel_event, app_event = await identity.events(2, types=("CardCancelled", "CardApplicationCancelled"))
    assert cancel_event.type == "CardCancelled" and cancel_event.aggregate_id == card.card_number
    assert cancel_event.data["cancelled_on"] == died.isoformat() and cancel_event.data["cause"] == "DEATH"
    assert app_event.aggregate_id == open_app.id and app_event.data["loss_report_withdrawn"] is True
    # A deregistration that does not cancel cards leaves them alone (TIANJIN's death, after it, is the marker
    # that the follower has read past it).
    other = await issued_card(identity, YOUNG)
    marker = await tianjin_card(identity)
    identity.register.deregister(YOUNG.id_number, "OTHER", TODAY, cancel_id_card=False)
    identity.register.deregister(TIANJIN.id_number, "DEATH", TODAY, cancel_id_card=True)

    async def marker_cancelled() -> bool:
        return (await verify(identity, marker)).result == pb.CARD_VERIFICATION_RESULT_CANCELLED

    assert await wait_for(marker_cancelled)
    assert (await verify(identity, other)).valid
