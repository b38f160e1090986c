"""Card applications through a real identity server: the cross-province decision, hukou refusals,
residence down, idempotency, one open application per person, every transition, events, field errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import grpc
import pytest

from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from govhub.residence.v1 import residence_pb2, residence_pb2_grpc
from tests.service.identity.conftest import (
    ADULT,
    HENAN,
    MOVING,
    PERMIT,
    STRANGER,
    TIANJIN,
    YOUNG,
    Identity,
    as_date,
    create_request,
    events_through,
    first_issue,
    reason,
    rid,
    settings_for,
    start_identity,
    violations,
)


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


# -- the cross-province decision ---------------------------------------------------------------------------


async def test_tianjin_renewal_is_accepted_cross_province_on_2016_09_15(identity: Identity) -> None:
    app = await identity.create(create_request(TIANJIN))
    assert app.state == pb.CARD_APPLICATION_STATE_ACCEPTED
    assert app.cross_province and app.hukou_province_code == "12"
    assert app.fee_fen == 2000
    assert as_date(app.application_date) == dt.date(2016, 9, 15)
    assert as_date(app.statutory_deadline) == dt.date(2016, 11, 14)
    assert list(app.required_materials) == [
        "CROSS_PROVINCE_FORM",
        "OLD_CARD",
        "RESIDENCE_PERMIT",
        "PHOTO_RECEIPT",
        "FINGERPRINTS",
    ]
    assert app.residence_permit.number == PERMIT.number
    assert identity.register.calls == [(TIANJIN.id_number, 5.0)]


async def test_local_first_issue_is_not_cross_province(identity: Identity) -> None:
    app = await identity.create(first_issue(YOUNG))
    assert not app.cross_province and app.hukou_province_code == "31"
    assert app.kind == pb.CARD_APPLICATION_KIND_FIRST_ISSUE
    assert list(app.required_materials) == ["APPLICATION_FORM", "HOUSEHOLD_REGISTER", "PHOTO", "FINGERPRINTS"]


async def test_fee_reduction_applies(identity: Identity) -> None:
    app = await identity.create(first_issue(YOUNG, fee_reduction=pb.FEE_REDUCTION_HARDSHIP))
    assert app.fee_fen == 1000 and app.fee_reduction == pb.FEE_REDUCTION_HARDSHIP


EXPIRED_PERMIT = pb.ResidencePermit(number="SH-OLD", valid_until=common_pb2.Date(year=2016, month=9, day=14))


@pytest.mark.parametrize(
    ("request_factory", "expected"),
    [
        (lambda: create_request(HENAN), "PROVINCE_NOT_YET_ACCEPTED"),
        (lambda: first_issue(TIANJIN), "FIRST_ISSUE_NOT_ACCEPTED_CROSS_PROVINCE"),
        (lambda: create_request(TIANJIN, residence_permit=None), "RESIDENCE_PERMIT_REQUIRED"),
        (lambda: create_request(TIANJIN, residence_permit=EXPIRED_PERMIT), "RESIDENCE_PERMIT_EXPIRED"),
        (lambda: create_request(STRANGER), "HUKOU_RECORD_NOT_FOUND"),
        (lambda: create_request(TIANJIN, name="王津"), "HUKOU_NAME_MISMATCH"),
        (lambda: create_request(MOVING), "HUKOU_NOT_ACTIVE"),
        (lambda: create_request(TIANJIN, accepting_region_code="110105"), "CROSS_PROVINCE_NOT_OFFERED_HERE"),
        (
            lambda: create_request(TIANJIN, fee_reduction=pb.FEE_REDUCTION_HARDSHIP, renewal_reason=3),
            "FEE_REDUCTION_NOT_APPLICABLE",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_refusals_through_the_rpc(identity: Identity, request_factory: object, expected: str) -> None:
    exc = await refused(identity.stub.CreateCardApplication(request_factory(), timeout=10))  # type: ignore[operator]
    assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason(exc) == expected
    listed = await identity.stub.ListCardApplications(pb.ListCardApplicationsRequest(), timeout=10)
    assert list(listed.card_applications) == []
    assert len(identity.register.calls) == 1


async def test_residence_down_is_unavailable(identity: Identity) -> None:
    identity.register.down = True
    exc = await refused(identity.stub.CreateCardApplication(create_request(TIANJIN), timeout=10))
    assert exc.code() is grpc.StatusCode.UNAVAILABLE
    assert reason(exc) == "DEPENDENCY_UNAVAILABLE"
    identity.register.down = False
    assert (await identity.create(create_request(TIANJIN))).state == pb.CARD_APPLICATION_STATE_ACCEPTED


# -- the real residence client -----------------------------------------------------------------------------


class _Residence(residence_pb2_grpc.ResidenceServiceServicer):
    """A stand-in residence service: knows 王津生 in 天津; never answers for the name 不应答."""

    def __init__(self) -> None:
        self.requests: list[residence_pb2.VerifyHukouRequest] = []
        self.never = asyncio.Event()

    async def VerifyHukou(
        self, request: residence_pb2.VerifyHukouRequest, context: grpc.aio.ServicerContext
    ) -> residence_pb2.VerifyHukouResponse:
        self.requests.append(request)
        if request.name == "不应答":
            await self.never.wait()
        if request.id_number != TIANJIN.id_number:
            return residence_pb2.VerifyHukouResponse(found=False)
        return residence_pb2.VerifyHukouResponse(
            found=True,
            name_matches=request.name == TIANJIN.name,
            status=residence_pb2.PERSON_STATUS_REGISTERED,
            hukou_province_code="12",
            hukou_region_code="120101",
        )


async def test_grpc_hukou_directory_asks_residence(db_url: str) -> None:
    residence = _Residence()
    server = grpc.aio.server()
    residence_pb2_grpc.add_ResidenceServiceServicer_to_server(residence, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # a deadline a loaded machine still meets for the answered calls; the unanswered one waits it out
    settings = settings_for(db_url, residence_target=f"127.0.0.1:{port}", call_timeout=2.0)
    service = await start_identity(settings, hukou=None)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            app = (await stub.CreateCardApplication(create_request(TIANJIN), timeout=10)).card_application
            assert app.cross_province and app.hukou_province_code == "12"
            assert [(r.id_number, r.name) for r in residence.requests] == [(TIANJIN.id_number, TIANJIN.name)]
            exc = await refused(stub.CreateCardApplication(create_request(STRANGER), timeout=10))
            assert reason(exc) == "HUKOU_RECORD_NOT_FOUND"
            exc = await refused(
                stub.CreateCardApplication(create_request(TIANJIN, name="不应答"), timeout=10)
            )
            assert exc.code() is grpc.StatusCode.UNAVAILABLE  # residence's DEADLINE_EXCEEDED
    finally:
        residence.never.set()
        await service.stop(0)
        await server.stop(0)


async def test_residence_not_listening_is_unavailable(db_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    service = await start_identity(settings_for(db_url, residence_target=f"127.0.0.1:{dead}"), hukou=None)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            exc = await refused(stub.CreateCardApplication(create_request(TIANJIN), timeout=10))
            assert exc.code() is grpc.StatusCode.UNAVAILABLE
            assert reason(exc) == "DEPENDENCY_UNAVAILABLE"
    finally:
        await service.stop(0)


# -- idempotency -------------------------------------------------------------------------------------------


async def test_same_request_id_same_answer_nothing_twice(identity: Identity) -> None:
    request = create_request(TIANJIN)
    first = await identity.create(request)
    again = await identity.create(request)
    assert again == first
    assert len(identity.register.calls) == 1  # the register is not asked again
    listed = await identity.stub.ListCardApplications(
        pb.ListCardApplicationsRequest(id_number=TIANJIN.id_number), timeout=10
    )
    assert [a.id for a in listed.card_applications] == [first.id]

    approve = pb.ApproveCardApplicationRequest(request_id=rid(), id=first.id)
    approved = await identity.stub.ApproveCardApplication(approve, timeout=10)
    assert await identity.stub.ApproveCardApplication(approve, timeout=10) == approved

    marker = await identity.create(first_issue(YOUNG))
    events = await events_through(identity, marker.id)
    assert [(e.type, e.aggregate_id) for e in events] == [
        ("CardApplicationSubmitted", first.id),
        ("CardApplicationApproved", first.id),
        ("CardApplicationSubmitted", marker.id),
    ]
    assert events[0].request_id == request.request_id


async def test_same_request_id_other_body_is_invalid(identity: Identity) -> None:
    request = create_request(TIANJIN)
    await identity.create(request)
    other = create_request(TIANJIN, request_id=request.request_id, accepting_region_code="310115")
    exc = await refused(identity.stub.CreateCardApplication(other, timeout=10))
    assert violations(exc) == {"request_id": "REUSED_WITH_DIFFERENT_REQUEST"}


async def test_request_id_must_be_a_uuid(identity: Identity) -> None:
    exc = await refused(identity.stub.CreateCardApplication(create_request(request_id="abc"), timeout=10))
    assert violations(exc) == {"request_id": "NOT_A_UUID"}
    assert identity.register.calls == []


# -- one open application per person -----------------------------------------------------------------------


async def test_one_open_application_per_person(identity: Identity) -> None:
    first = await identity.create(create_request(TIANJIN))
    exc = await refused(identity.stub.CreateCardApplication(create_request(TIANJIN), timeout=10))
    assert exc.code() is grpc.StatusCode.ALREADY_EXISTS
    await identity.stub.CancelCardApplication(
        pb.CancelCardApplicationRequest(request_id=rid(), id=first.id, reason="withdrawn"), timeout=10
    )
    second = await identity.create(create_request(TIANJIN))
    assert second.id != first.id


async def test_two_concurrent_applications_one_wins(identity: Identity) -> None:
    results = await asyncio.gather(
        *(identity.stub.CreateCardApplication(create_request(TIANJIN), timeout=10) for _ in range(4)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, pb.CreateCardApplicationResponse)]
    refused_ = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 1, results
    assert [r.code() for r in refused_] == [grpc.StatusCode.ALREADY_EXISTS] * 3
    listed = await identity.stub.ListCardApplications(
        pb.ListCardApplicationsRequest(id_number=TIANJIN.id_number), timeout=10
    )
    assert len(listed.card_applications) == 1


async def test_concurrent_duplicates_of_one_request(identity: Identity) -> None:
    request = create_request(TIANJIN)
    results = await asyncio.gather(
        *(identity.stub.CreateCardApplication(request, timeout=10) for _ in range(3))
    )
    assert len({r.card_application.id for r in results}) == 1


# -- transitions -------------------------------------------------------------------------------------------


async def test_the_whole_path_and_wrong_states(identity: Identity) -> None:
    app = await identity.create(first_issue(YOUNG))
    stub = identity.stub

    async def illegal(call: object) -> None:
        exc = await refused(call)
        assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert reason(exc) == "ILLEGAL_TRANSITION"

    await illegal(stub.MarkCardProduced(pb.MarkCardProducedRequest(request_id=rid(), id=app.id), timeout=10))
    await illegal(stub.IssueCard(pb.IssueCardRequest(request_id=rid(), id=app.id), timeout=10))
    approved = await identity.to_state(app, "APPROVED")
    assert approved.state == pb.CARD_APPLICATION_STATE_APPROVED
    await illegal(stub.ApproveCardApplication(pb.ApproveCardApplicationRequest(request_id=rid(), id=app.id)))
    await illegal(stub.CancelCardApplication(pb.CancelCardApplicationRequest(request_id=rid(), id=app.id)))
    await illegal(
        stub.RejectCardApplication(pb.RejectCardApplicationRequest(request_id=rid(), id=app.id, reason="x"))
    )
    produced = await stub.MarkCardProduced(
        pb.MarkCardProducedRequest(request_id=rid(), id=app.id), timeout=10
    )
    card_number = produced.card_application.card_number
    assert produced.card_application.state == pb.CARD_APPLICATION_STATE_CARD_PRODUCED and card_number
    await illegal(stub.IssueCard(pb.IssueCardRequest(request_id=rid(), id=app.id), timeout=10))
    ready = await stub.MarkCardReadyForPickup(pb.MarkCardReadyForPickupRequest(request_id=rid(), id=app.id))
    assert ready.card_application.state == pb.CARD_APPLICATION_STATE_READY_FOR_PICKUP
    issued = await stub.IssueCard(pb.IssueCardRequest(request_id=rid(), id=app.id), timeout=10)
    assert issued.card_application.state == pb.CARD_APPLICATION_STATE_ISSUED
    assert issued.card.card_number == card_number and issued.card.status == pb.CARD_STATUS_VALID
    assert as_date(issued.card.valid_from) == dt.date(2016, 9, 15)
    assert as_date(issued.card.valid_until) == dt.date(2026, 9, 15)  # 16 years old: 10 years
    await illegal(stub.IssueCard(pb.IssueCardRequest(request_id=rid(), id=app.id), timeout=10))
    got = await stub.GetCardApplication(pb.GetCardApplicationRequest(id=app.id), timeout=10)
    assert got.card_application == issued.card_application

    # The application is closed: the person may apply again.
    assert (await identity.create(first_issue(YOUNG))).state == pb.CARD_APPLICATION_STATE_ACCEPTED


async def test_reject_needs_a_reason_and_closes(identity: Identity) -> None:
    app = await identity.create(create_request(TIANJIN))
    request = pb.RejectCardApplicationRequest(request_id=rid(), id=app.id, reason="  ")
    exc = await refused(identity.stub.RejectCardApplication(request, timeout=10))
    assert violations(exc) == {"reason": "REQUIRED"}
    request = pb.RejectCardApplicationRequest(request_id=rid(), id=app.id, reason="照片不合格")
    rejected = (await identity.stub.RejectCardApplication(request, timeout=10)).card_application
    assert rejected.state == pb.CARD_APPLICATION_STATE_REJECTED and rejected.rejection_reason == "照片不合格"
    [event] = await identity.events(1, after=1)
    assert event.type == "CardApplicationRejected" and event.data["rejection_reason"] == "照片不合格"


async def test_renewal_issue_needs_the_old_card(identity: Identity) -> None:
    app = await identity.to_state(await identity.create(create_request(TIANJIN)), "READY_FOR_PICKUP")
    exc = await refused(identity.stub.IssueCard(pb.IssueCardRequest(request_id=rid(), id=app.id), timeout=10))
    assert reason(exc) == "OLD_CARD_NOT_SURRENDERED"
    issued = await identity.stub.IssueCard(
        pb.IssueCardRequest(request_id=rid(), id=app.id, old_card_surrendered=True), timeout=10
    )
    assert issued.card.long_term is False and as_date(issued.card.valid_until) == dt.date(2036, 9, 15)


async def test_unknown_application_is_not_found(identity: Identity) -> None:
    exc = await refused(identity.stub.GetCardApplication(pb.GetCardApplicationRequest(id=rid()), timeout=10))
    assert exc.code() is grpc.StatusCode.NOT_FOUND
    request = pb.ApproveCardApplicationRequest(request_id=rid(), id=rid())
    exc = await refused(identity.stub.ApproveCardApplication(request, timeout=10))
    assert exc.code() is grpc.StatusCode.NOT_FOUND


# -- events ------------------------------------------------------------------------------------------------


async def test_watch_events_in_order_from_a_cursor(identity: Identity) -> None:
    app = await identity.to_state(await identity.create(first_issue(YOUNG)), "ISSUED")
    events = await identity.events(5)
    assert [e.type for e in events] == [
        "CardApplicationSubmitted",
        "CardApplicationApproved",
        "CardProduced",
        "CardReadyForPickup",
        "CardIssued",
    ]
    assert {e.aggregate_id for e in events} == {app.id}
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert events[0].data["id_number"] == YOUNG.id_number and "name" not in events[0].data
    assert events[4].data["card_number"] == app.card_number

    tail = await identity.events(3, after=events[1].sequence)
    assert [e.sequence for e in tail] == [e.sequence for e in events[2:]]
    only = await identity.events(1, types=("CardIssued",))
    assert only[0].sequence == events[4].sequence

    # A live watcher receives a new event as it is written.
    call = identity.stub.WatchEvents(pb.WatchEventsRequest(after_sequence=events[4].sequence), timeout=10)
    other = await identity.create(create_request(TIANJIN))
    reply = await call.read()
    call.cancel()
    assert reply.event.type == "CardApplicationSubmitted" and reply.event.aggregate_id == other.id


# -- field violations and pages ----------------------------------------------------------------------------


async def test_bad_check_digit_names_the_field(identity: Identity) -> None:
    request = create_request(TIANJIN, id_number="120101198503120116")
    exc = await refused(identity.stub.CreateCardApplication(request, timeout=10))
    assert violations(exc) == {"id_number": "BAD_CHECK_DIGIT"}
    assert identity.register.calls == []


async def test_every_field_violation_at_once(identity: Identity) -> None:
    request = create_request(
        TIANJIN,
        name=" ",
        kind=pb.CARD_APPLICATION_KIND_RENEWAL,
        renewal_reason=0,
        accepting_region_code="999999",
        residence_permit=pb.ResidencePermit(
            number="SH1", valid_until=common_pb2.Date(year=2017, month=2, day=30)
        ),
    )
    exc = await refused(identity.stub.CreateCardApplication(request, timeout=10))
    assert violations(exc) == {
        "name": "REQUIRED",
        "renewal_reason": "REQUIRED",
        "accepting_region_code": "UNKNOWN_REGION_CODE",
        "residence_permit.valid_until": "IMPOSSIBLE_DATE",
    }
    exc = await refused(identity.stub.CreateCardApplication(first_issue(YOUNG, kind=0), timeout=10))
    assert violations(exc) == {"kind": "REQUIRED"}


async def test_validate_id_number(identity: Identity) -> None:
    ok = await identity.stub.ValidateIdNumber(pb.ValidateIdNumberRequest(id_number="44011320141005001x"))
    assert ok.valid and ok.id_number == "44011320141005001X" and ok.sex
    upgraded = await identity.stub.ValidateIdNumber(pb.ValidateIdNumberRequest(id_number="610104620927690"))
    assert upgraded.valid and upgraded.id_number == "610104196209276908"
    assert as_date(upgraded.birth_date) == dt.date(1962, 9, 27) and upgraded.region_code == "610104"
    bad = await identity.stub.ValidateIdNumber(pb.ValidateIdNumberRequest(id_number="440308199901101513"))
    assert not bad.valid and list(bad.problems) == [pb.ID_NUMBER_PROBLEM_BAD_CHECK_DIGIT]


async def test_list_pages(identity: Identity) -> None:
    created = [
        await identity.create(r) for r in (create_request(TIANJIN), first_issue(YOUNG), first_issue(ADULT))
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = await identity.stub.ListCardApplications(
            pb.ListCardApplicationsRequest(page_size=2, page_token=token), timeout=10
        )
        assert len(page.card_applications) <= 2
        seen += [a.id for a in page.card_applications]
        token = page.next_page_token
        if not token:
            break
    assert seen == [a.id for a in reversed(created)]  # newest first, each once
    exc = await refused(
        identity.stub.ListCardApplications(
            pb.ListCardApplicationsRequest(page_token="not-a-token"), timeout=10
        )
    )
    assert violations(exc) == {"page_token": "BAD_PAGE_TOKEN"}
    exc = await refused(identity.stub.ListCardApplications(pb.ListCardApplicationsRequest(page_size=-1)))
    assert violations(exc) == {"page_size": "OUT_OF_RANGE"}
    exc = await refused(identity.stub.ListCardApplications(pb.ListCardApplicationsRequest(id_number="1234")))
    assert violations(exc) == {"id_number": "BAD_LENGTH"}
