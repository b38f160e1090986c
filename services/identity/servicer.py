"""govhub.identity.v1.IdentityService over grpc.aio: proto in, domain rules, proto out.

Every ID number that enters an RPC goes through ``require_id_number`` under the request field's name.
Every mutating RPC runs in one unit of work through ``run_idempotent`` (its request_id), with the state
change and its outbox event committed together. Hukou facts come from the household register through a
`HukouDirectory` (one call per request, made before the unit of work and not repeated for a request_id
already answered).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from services.common.db import UnitOfWork, new_id
from services.common.errors import AlreadyExists, InvalidArgument, NotFound, ValidationCollector
from services.common.grpcserver import remaining
from services.common.idempotency import check_request_id, run_idempotent
from services.common.idnumber import IdNumber, address_code_periods, check_id_number, require_id_number
from services.common.pages import page_size
from services.common.protoconv import date_from_proto, date_to_proto, event_to_proto, timestamp
from services.common.service import ServiceContext
from services.identity import domain as d
from services.identity.residence import HukouDirectory
from services.identity.store import IdempotencyRecord, IdentityRepository

R = TypeVar("R", bound=Message)

_KIND_FROM_PROTO = {
    pb.CARD_APPLICATION_KIND_FIRST_ISSUE: d.ApplicationKind.FIRST_ISSUE,
    pb.CARD_APPLICATION_KIND_RENEWAL: d.ApplicationKind.RENEWAL,
    pb.CARD_APPLICATION_KIND_REPLACEMENT: d.ApplicationKind.REPLACEMENT,
}
_KIND_TO_PROTO = {v: k for k, v in _KIND_FROM_PROTO.items()}
_REASON_FROM_PROTO = {pb.RenewalReason.Value(f"RENEWAL_REASON_{r.value}"): r for r in d.RenewalReason}
_REASON_TO_PROTO = {v: k for k, v in _REASON_FROM_PROTO.items()}
_REDUCTION_FROM_PROTO = {pb.FeeReduction.Value(f"FEE_REDUCTION_{r.value}"): r for r in d.FeeReduction}
_REDUCTION_TO_PROTO = {v: k for k, v in _REDUCTION_FROM_PROTO.items()}
_STATE_TO_PROTO = {
    s: pb.CardApplicationState.Value(f"CARD_APPLICATION_STATE_{s.value}") for s in d.ApplicationState
}
_CARD_STATUS_TO_PROTO = {s: pb.CardStatus.Value(f"CARD_STATUS_{s.value}") for s in d.CardStatus}
_FOUND_STATUS_TO_PROTO = {
    s: pb.FoundCardStatus.Value(f"FOUND_CARD_STATUS_{s.value}") for s in d.FoundCardStatus
}
_SEX_TO_PROTO = {"MALE": common_pb2.SEX_MALE, "FEMALE": common_pb2.SEX_FEMALE}


# -- proto out --------------------------------------------------------------------------------------------


def application_proto(
    app: d.CardApplication, created: dt.datetime, updated: dt.datetime
) -> pb.CardApplication:
    msg = pb.CardApplication(
        id=app.id,
        id_number=app.id_number,
        name=app.name,
        kind=_KIND_TO_PROTO[app.kind],
        renewal_reason=_REASON_TO_PROTO[app.renewal_reason] if app.renewal_reason else 0,
        cross_province=app.cross_province,
        hukou_province_code=app.hukou_province_code,
        accepting_region_code=app.accepting_region_code,
        state=_STATE_TO_PROTO[app.state],
        fee_reduction=_REDUCTION_TO_PROTO[app.fee_reduction],
        fee_fen=app.fee_fen,
        application_date=date_to_proto(app.application_date),
        statutory_deadline=date_to_proto(app.statutory_deadline),
        required_materials=list(app.required_materials),
        rejection_reason=app.rejection_reason,
        create_time=timestamp(created),
        update_time=timestamp(updated),
        card_number=app.card_number,
        cancellation_reason=app.cancellation_reason,
        loss_already_reported=app.loss_already_reported,
        rejection_code=app.rejection_code,
        ready_on=date_to_proto(app.ready_on),
    )
    if app.loss_report is not None:
        msg.loss_report.CopyFrom(loss_report_proto(app.loss_report))
    if app.residence_permit is not None:
        msg.residence_permit.CopyFrom(
            pb.ResidencePermit(
                number=app.residence_permit.number,
                valid_until=date_to_proto(app.residence_permit.valid_until),
            )
        )
    return msg


def loss_report_proto(report: d.LossReport) -> pb.LossReport:
    return pb.LossReport(
        id=report.id,
        card_number=report.card_number,
        id_number=report.id_number,
        station_region_code=report.station_region_code,
        reported_on=date_to_proto(report.reported_on),
        inside_hukou_area=report.inside_hukou_area,
        application_id=report.application_id,
        withdrawn_on=date_to_proto(report.withdrawn_on),
    )


def loss_report_event(report: d.LossReport) -> dict[str, Any]:
    return {
        "card_number": report.card_number,
        "id_number": report.id_number,
        "station_region_code": report.station_region_code,
        "inside_hukou_area": report.inside_hukou_area,
        "loss_report_id": report.id,
        "reported_on": report.reported_on.isoformat(),
        "application_id": report.application_id or None,
    }


def card_proto(card: d.Card) -> pb.Card:
    return pb.Card(
        card_number=card.card_number,
        id_number=card.id_number,
        valid_from=date_to_proto(card.valid_from),
        valid_until=date_to_proto(card.valid_until),
        long_term=card.long_term,
        status=_CARD_STATUS_TO_PROTO[card.status],
        application_id=card.application_id,
        address_region_code=card.address_region_code,
        address=card.address,
        address_recorded_on=date_to_proto(card.address_recorded_on),
        cancelled_on=date_to_proto(card.cancelled_on),
    )


def found_card_proto(found: d.FoundCard) -> pb.FoundCard:
    return pb.FoundCard(
        id=found.id,
        card_number=found.card_number,
        id_number=found.id_number,
        station_region_code=found.station_region_code,
        found_place=found.found_place,
        found_on=date_to_proto(found.found_on),
        registered_on=date_to_proto(found.registered_on),
        status=_FOUND_STATUS_TO_PROTO[found.status],
        owner_notified=found.notify_owner,
        closed_on=date_to_proto(found.closed_on),
    )


def temporary_card_proto(temporary_id: str, card: d.TemporaryCard, station: str) -> pb.TemporaryCard:
    return pb.TemporaryCard(
        id=temporary_id,
        id_number=card.id_number,
        application_id=card.application_id,
        applied_on=date_to_proto(card.applied_on),
        issue_by=date_to_proto(card.issue_by),
        issued_on=date_to_proto(card.issued_on),
        valid_until=date_to_proto(card.valid_until),
        fee_fen=card.fee_fen,
        station_region_code=station,
    )


def _application_event(app: d.CardApplication, **extra: Any) -> dict[str, Any]:
    return {
        "application_id": app.id,
        "id_number": app.id_number,
        "kind": app.kind.value,
        "state": app.state.value,
        "cross_province": app.cross_province,
        "fee_fen": app.fee_fen,
        **extra,
    }


def new_card_number() -> str:
    """The chip serial the production centre gives a card (here: 16 random hex digits)."""
    return secrets.token_hex(8).upper()


# -- proto in ---------------------------------------------------------------------------------------------


def _collect_id_number(v: ValidationCollector, raw: str, field: str, today: dt.date) -> IdNumber | None:
    if not raw.strip():
        v.add(field, "REQUIRED", f"{field} is required")
        return None
    try:
        return require_id_number(raw, field, today)
    except InvalidArgument as exc:
        v.violations.extend(exc.violations)
        return None


def _collect_text(v: ValidationCollector, raw: str, field: str) -> str:
    value = raw.strip()
    if not value:
        v.add(field, "REQUIRED", f"{field} is required")
    return value


def _collect_region(v: ValidationCollector, raw: str, field: str) -> str:
    value = raw.strip()
    if not value:
        v.add(field, "REQUIRED", f"{field} is required")
    elif len(value) != 6 or not value.isdigit() or not address_code_periods(value):
        v.add(field, "UNKNOWN_REGION_CODE", "not a six-digit mainland county code")
    return value


def _collect_date(v: ValidationCollector, msg: common_pb2.Date, field: str) -> dt.date | None:
    try:
        return date_from_proto(msg, field)
    except InvalidArgument as exc:
        v.violations.extend(exc.violations)
        return None


def _required_id(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument.one(field, "REQUIRED", f"{field} is required")
    return value


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, ctx: ServiceContext, hukou: HukouDirectory, policy: d.IdentityPolicy) -> None:
        self.ctx = ctx
        self.hukou = hukou
        self.policy = policy

    # -- plumbing -----------------------------------------------------------------------------------------

    def _repo(self, uow: UnitOfWork) -> IdentityRepository:
        return IdentityRepository(uow.session, self.ctx.clock.now())

    def _reader(self, session: AsyncSession) -> IdentityRepository:
        """The repository over a read-only session (``ctx.read()``)."""
        return IdentityRepository(session, self.ctx.clock.now())

    async def _mutate(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        handler: Callable[[UnitOfWork], Awaitable[R]],
    ) -> R:
        """One unit of work, at most once per request_id. Inserts are flushed only at commit, where a
        unique-constraint race (one open application per person, one temporary card per application, a
        duplicate request_id) is caught by ``run_idempotent`` and the request re-evaluated."""

        async def run(uow: UnitOfWork) -> R:
            with uow.session.no_autoflush:
                return await handler(uow)

        return await run_idempotent(
            self.ctx.uow, IdempotencyRecord, method, request, response_type, run, self.ctx.clock.now
        )

    async def _event(
        self, uow: UnitOfWork, event_type: str, aggregate_id: str, payload: dict[str, Any], request: Any
    ) -> None:
        await self.ctx.feed.record(
            uow,
            event_type,
            aggregate_id,
            payload,
            occurred_at=self.ctx.clock.now(),
            request_id=check_request_id(request.request_id),
        )

    async def _answered(self, request_id: str) -> bool:
        """Whether this request_id already has a stored answer (then nobody else need be asked)."""
        stmt = select(IdempotencyRecord.request_id).where(
            IdempotencyRecord.request_id == check_request_id(request_id)
        )
        async with self.ctx.read() as session:
            return await session.scalar(stmt) is not None

    async def _hukou(self, context: grpc.aio.ServicerContext, id_number: str, name: str) -> d.HukouRecord:
        return await self.hukou.verify(
            id_number, name, timeout=remaining(context, self.ctx.settings.call_timeout)
        )

    async def _get_application(self, repo: IdentityRepository, application_id: str) -> d.CardApplication:
        app = await repo.get_application(_required_id(application_id))
        if app is None:
            raise NotFound("No such card application.")
        return app

    async def _application_proto(
        self, repo: IdentityRepository, app: d.CardApplication
    ) -> pb.CardApplication:
        times = await repo.application_times(app.id)
        assert times is not None
        return application_proto(app, *times)

    # -- ID numbers ---------------------------------------------------------------------------------------

    async def ValidateIdNumber(
        self, request: pb.ValidateIdNumberRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateIdNumberResponse:
        check = check_id_number(request.id_number, self.ctx.clock.today())
        return pb.ValidateIdNumberResponse(
            valid=check.valid,
            id_number=check.normalised,
            birth_date=date_to_proto(check.birth_date),
            sex=_SEX_TO_PROTO[check.sex.value] if check.sex else 0,
            region_code=check.region_code,
            region_name=check.region_name,
            problems=[pb.IdNumberProblem.Value(f"ID_NUMBER_PROBLEM_{p}") for p in check.problems],
        )

    # -- applications -------------------------------------------------------------------------------------

    async def CreateCardApplication(
        self, request: pb.CreateCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCardApplicationResponse:
        check_request_id(request.request_id)
        today = self.ctx.clock.today()
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", today)
        name = _collect_text(v, request.name, "name")
        kind = _KIND_FROM_PROTO.get(request.kind)
        if kind is None:
            v.add("kind", "REQUIRED", "kind is one of FIRST_ISSUE, RENEWAL, REPLACEMENT")
        reason = _REASON_FROM_PROTO.get(request.renewal_reason)
        if kind is d.ApplicationKind.RENEWAL and reason is None:
            v.add("renewal_reason", "REQUIRED", "a renewal states its reason")
        if kind is not None and kind is not d.ApplicationKind.RENEWAL and request.renewal_reason:
            v.add("renewal_reason", "NOT_A_RENEWAL", "only a renewal has a renewal reason")
        accepting = _collect_region(v, request.accepting_region_code, "accepting_region_code")
        permit = None
        if request.residence_permit.number.strip():
            until = _collect_date(v, request.residence_permit.valid_until, "residence_permit.valid_until")
            if until is not None:
                permit = d.ResidencePermit(request.residence_permit.number.strip(), until)
        reduction = (
            _REDUCTION_FROM_PROTO.get(request.fee_reduction, d.FeeReduction.NONE)
            if request.fee_reduction
            else d.FeeReduction.NONE
        )
        v.raise_if_any()
        assert id_number is not None and kind is not None

        hukou: d.HukouRecord | None = None
        if not await self._answered(request.request_id):
            hukou = d.require_hukou(await self._hukou(context, id_number.value, name))

        async def handler(uow: UnitOfWork) -> pb.CreateCardApplicationResponse:
            nonlocal hukou
            if hukou is None:  # answered meanwhile by a concurrent duplicate that then rolled back
                hukou = d.require_hukou(await self._hukou(context, id_number.value, name))
            repo = self._repo(uow)
            open_app = await repo.get_open_application_for(id_number.value)
            current = await repo.current_card(id_number.value)
            app = d.new_application(
                id=new_id(),
                id_number=id_number.value,
                name=name,
                birth_date=id_number.birth_date,
                kind=kind,
                renewal_reason=reason,
                hukou_province_code=hukou.province_code,
                hukou_region_code=hukou.region_code,
                accepting_region_code=accepting,
                accepting_province_code=accepting[:2],
                application_date=today,
                fee_reduction=reduction,
                policy=self.policy,
                residence_permit=permit,
                current_card=current,
                existing=[open_app] if open_app else [],
                report_loss=request.report_loss,
                require_cross_province=request.require_cross_province,
            ).accept(today)
            standing = await repo.standing_loss_report(current.card_number) if current else None
            app, lost_card, report = d.take_loss_report(
                app, current, standing, report_loss=request.report_loss, report_id=new_id(), on=today
            )
            created, updated = repo.add_application(app)
            if lost_card is not None and report is not None:
                await repo.save_card(lost_card)
                await repo.add_loss_report(report.id, report)
                await self._event(
                    uow, "CardReportedLost", report.card_number, loss_report_event(report), request
                )
            extra: dict[str, Any] = {"statutory_deadline": app.statutory_deadline.isoformat()}
            if app.loss_report is not None:
                extra |= {
                    "loss_report_id": app.loss_report.id,
                    "loss_reported_on": app.loss_report.reported_on.isoformat(),
                    "loss_already_reported": app.loss_already_reported,
                }
            await self._event(
                uow, "CardApplicationSubmitted", app.id, _application_event(app, **extra), request
            )
            return pb.CreateCardApplicationResponse(card_application=application_proto(app, created, updated))

        return await self._mutate("CreateCardApplication", request, pb.CreateCardApplicationResponse, handler)

    async def GetCardApplication(
        self, request: pb.GetCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCardApplicationResponse:
        async with self.ctx.read() as session:
            repo = self._reader(session)
            app = await self._get_application(repo, request.id)
            return pb.GetCardApplicationResponse(card_application=await self._application_proto(repo, app))

    async def ListCardApplications(
        self, request: pb.ListCardApplicationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCardApplicationsResponse:
        id_number = None
        if request.id_number:
            id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today()).value
        errors = ValidationCollector()
        size = page_size(request.page_size, errors)
        errors.raise_if_any()
        async with self.ctx.read() as session:
            items, token = await self._reader(session).list_applications(id_number, size, request.page_token)
        return pb.ListCardApplicationsResponse(
            card_applications=[application_proto(*item) for item in items], next_page_token=token
        )

    async def _transition(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        event_type: str,
        change: Callable[[d.CardApplication, dt.date], d.CardApplication],
        **extra: Callable[[d.CardApplication], Any],
    ) -> R:
        _required_id(request.id)
        today = self.ctx.clock.today()

        async def handler(uow: UnitOfWork) -> R:
            repo = self._repo(uow)
            app = change(await self._get_application(repo, request.id), today)
            created, updated = await repo.save_application(app)
            payload = _application_event(app, **{k: f(app) for k, f in extra.items()})
            await self._event(uow, event_type, app.id, payload, request)
            return response_type(card_application=application_proto(app, created, updated))

        return await self._mutate(method, request, response_type, handler)

    async def ApproveCardApplication(
        self, request: pb.ApproveCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveCardApplicationResponse:
        return await self._transition(
            "ApproveCardApplication",
            request,
            pb.ApproveCardApplicationResponse,
            "CardApplicationApproved",
            lambda app, today: app.approve(today),
        )

    async def _close(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        event_type: str,
        change: Callable[[d.CardApplication, dt.date], d.CardApplication],
        **extra: Callable[[d.CardApplication], Any],
    ) -> R:
        """Reject or cancel: the application closes, and a loss report filed with it is withdrawn in the
        same unit of work (the card is valid again), announced by CardLossReportWithdrawn."""
        _required_id(request.id)
        today = self.ctx.clock.today()

        async def handler(uow: UnitOfWork) -> R:
            repo = self._repo(uow)
            app = change(await self._get_application(repo, request.id), today)
            card = await repo.get_card(app.loss_report.card_number) if app.loss_report else None
            app, restored, withdrawn = d.withdraw_loss_report(app, card, today)
            if withdrawn is not None:
                await repo.withdraw_loss_report(withdrawn)
                if restored is not None:
                    await repo.save_card(restored)
            created, updated = await repo.save_application(app)
            payload = _application_event(
                app, loss_report_withdrawn=withdrawn is not None, **{k: f(app) for k, f in extra.items()}
            )
            await self._event(uow, event_type, app.id, payload, request)
            if withdrawn is not None:
                brief = {
                    "card_number": withdrawn.card_number,
                    "id_number": withdrawn.id_number,
                    "loss_report_id": withdrawn.id,
                    "application_id": app.id,
                    "withdrawn_on": today.isoformat(),
                }
                await self._event(uow, "CardLossReportWithdrawn", withdrawn.card_number, brief, request)
            return response_type(card_application=application_proto(app, created, updated))

        return await self._mutate(method, request, response_type, handler)

    async def RejectCardApplication(
        self, request: pb.RejectCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectCardApplicationResponse:
        code = d.rejection_code(request.reason_code, self.policy)
        return await self._close(
            "RejectCardApplication",
            request,
            pb.RejectCardApplicationResponse,
            "CardApplicationRejected",
            lambda app, today: app.reject(request.reason.strip(), today, code),
            rejection_reason=lambda app: app.rejection_reason,
            rejection_code=lambda app: app.rejection_code,
        )

    async def CancelCardApplication(
        self, request: pb.CancelCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelCardApplicationResponse:
        return await self._close(
            "CancelCardApplication",
            request,
            pb.CancelCardApplicationResponse,
            "CardApplicationCancelled",
            lambda app, today: app.cancel(request.reason.strip(), today),
            cancellation_reason=lambda app: app.cancellation_reason,
        )

    async def MarkCardProduced(
        self, request: pb.MarkCardProducedRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkCardProducedResponse:
        return await self._transition(
            "MarkCardProduced",
            request,
            pb.MarkCardProducedResponse,
            "CardProduced",
            lambda app, today: app.mark_produced(new_card_number(), today),
            card_number=lambda app: app.card_number,
        )

    async def MarkCardReadyForPickup(
        self, request: pb.MarkCardReadyForPickupRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkCardReadyForPickupResponse:
        return await self._transition(
            "MarkCardReadyForPickup",
            request,
            pb.MarkCardReadyForPickupResponse,
            "CardReadyForPickup",
            lambda app, today: app.mark_ready(today),
            card_number=lambda app: app.card_number,
            ready_on=lambda app: app.ready_on.isoformat() if app.ready_on else None,
            collect_at_region_code=lambda app: app.accepting_region_code,
        )

    async def IssueCard(
        self, request: pb.IssueCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueCardResponse:
        _required_id(request.id)
        today = self.ctx.clock.today()

        async def handler(uow: UnitOfWork) -> pb.IssueCardResponse:
            repo = self._repo(uow)
            app = await self._get_application(repo, request.id)
            birth = check_id_number(app.id_number).birth_date
            assert birth is not None
            previous = await repo.current_card(app.id_number)
            issued, card, previous_after = d.issue_card(
                app,
                birth,
                today,
                self.policy,
                previous_card=previous,
                old_card_surrendered=request.old_card_surrendered,
            )
            if previous_after is not None and previous_after != previous:
                await repo.save_card(previous_after)
            await repo.save_card(card)
            created, updated = await repo.save_application(issued)
            payload = _application_event(
                issued,
                card_number=card.card_number,
                valid_until=card.valid_until.isoformat() if card.valid_until else None,
                previous_card_number=previous.card_number if previous else None,
            )
            await self._event(uow, "CardIssued", issued.id, payload, request)
            return pb.IssueCardResponse(
                card_application=application_proto(issued, created, updated), card=card_proto(card)
            )

        return await self._mutate("IssueCard", request, pb.IssueCardResponse, handler)

    # -- the card register --------------------------------------------------------------------------------

    async def GetCurrentCard(
        self, request: pb.GetCurrentCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCurrentCardResponse:
        today = self.ctx.clock.today()
        id_number = require_id_number(request.id_number, "id_number", today)
        async with self.ctx.read() as session:
            card = await self._reader(session).current_card(id_number.value)
        if card is None:
            raise NotFound("The register holds no card for this person.")
        return pb.GetCurrentCardResponse(card=card_proto(d.mark_expired(card, today)))

    async def ListCards(
        self, request: pb.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCardsResponse:
        today = self.ctx.clock.today()
        id_number = require_id_number(request.id_number, "id_number", today)
        errors = ValidationCollector()
        size = page_size(request.page_size, errors)
        errors.raise_if_any()
        async with self.ctx.read() as session:
            cards, token = await self._reader(session).list_cards(id_number.value, size, request.page_token)
        return pb.ListCardsResponse(
            cards=[card_proto(d.mark_expired(c, today)) for c in cards], next_page_token=token
        )

    async def VerifyCard(
        self, request: pb.VerifyCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyCardResponse:
        today = self.ctx.clock.today()
        v = ValidationCollector()
        card_number = _collect_text(v, request.card_number, "card_number").upper()
        id_number = _collect_id_number(v, request.id_number, "id_number", today)
        v.raise_if_any()
        assert id_number is not None
        async with self.ctx.read() as session:
            card = await self._reader(session).get_card(card_number)
        if card is None or card.id_number != id_number.value:
            return pb.VerifyCardResponse(valid=False, result=pb.CARD_VERIFICATION_RESULT_UNKNOWN_CARD)
        answer = d.verify(card, today)
        return pb.VerifyCardResponse(
            valid=answer.valid,
            result=pb.CardVerificationResult.Value(f"CARD_VERIFICATION_RESULT_{answer.reason}"),
            cancelled_on=date_to_proto(answer.since),
        )

    async def UpdateCardAddress(
        self, request: pb.UpdateCardAddressRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateCardAddressResponse:
        check_request_id(request.request_id)
        today = self.ctx.clock.today()
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", today)
        try:
            d.check_card_address(request.region_code, request.address)
        except InvalidArgument as exc:
            v.violations.extend(exc.violations)
        v.raise_if_any()
        assert id_number is not None

        async def handler(uow: UnitOfWork) -> pb.UpdateCardAddressResponse:
            repo = self._repo(uow)
            card = d.record_address(
                await repo.current_card(id_number.value), request.region_code, request.address, today
            )
            await repo.save_card(card)
            payload = {
                "id_number": card.id_number,
                "card_number": card.card_number,
                "region_code": card.address_region_code,
                "recorded_on": today.isoformat(),
            }
            await self._event(uow, "CardAddressUpdated", card.card_number, payload, request)
            return pb.UpdateCardAddressResponse(card=card_proto(card))

        return await self._mutate("UpdateCardAddress", request, pb.UpdateCardAddressResponse, handler)

    async def _person_at_station(
        self, request: Any, context: grpc.aio.ServicerContext, today: Any, *, active: bool
    ) -> tuple[Any, str, Callable[[], Awaitable[d.HukouRecord]]]:
        """The checked ID number and station of a request made in person at a station, and its hukou
        record: asked of residence now (outside the unit of work) unless the request_id was already
        answered, and at the latest when the handler needs it."""
        check_request_id(request.request_id)
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", today)
        name = _collect_text(v, request.name, "name")
        station = _collect_region(v, request.station_region_code, "station_region_code")
        v.raise_if_any()
        assert id_number is not None
        found: list[d.HukouRecord] = []

        async def hukou() -> d.HukouRecord:
            if not found:
                found.append(
                    d.require_hukou(await self._hukou(context, id_number.value, name), active=active)
                )
            return found[0]

        if not await self._answered(request.request_id):
            await hukou()
        return id_number, station, hukou

    # -- loss and lost-and-found --------------------------------------------------------------------------

    async def ReportCardLost(
        self, request: pb.ReportCardLostRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportCardLostResponse:
        today = self.ctx.clock.today()
        id_number, station, hukou_of = await self._person_at_station(request, context, today, active=False)

        async def handler(uow: UnitOfWork) -> pb.ReportCardLostResponse:
            hukou = await hukou_of()
            repo = self._repo(uow)
            wanted = request.card_number.strip().upper()
            card = await repo.get_card(wanted) if wanted else await repo.current_card(id_number.value)
            if card is None or card.id_number != id_number.value:
                raise NotFound("The register holds no such card for this person.")
            card, report = d.report_lost(d.mark_expired(card, today), station, hukou.region_code, today)
            report = replace(report, id=new_id())
            await repo.save_card(card)
            await repo.add_loss_report(report.id, report)
            await self._event(uow, "CardReportedLost", card.card_number, loss_report_event(report), request)
            return pb.ReportCardLostResponse(loss_report=loss_report_proto(report), card=card_proto(card))

        return await self._mutate("ReportCardLost", request, pb.ReportCardLostResponse, handler)

    async def RegisterFoundCard(
        self, request: pb.RegisterFoundCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterFoundCardResponse:
        check_request_id(request.request_id)
        today = self.ctx.clock.today()
        v = ValidationCollector()
        card_number = _collect_text(v, request.card_number, "card_number").upper()
        id_number = _collect_id_number(v, request.id_number, "id_number", today)
        station = _collect_region(v, request.station_region_code, "station_region_code")
        place = _collect_text(v, request.found_place, "found_place")
        found_on = _collect_date(v, request.found_on, "found_on")
        v.raise_if_any()
        assert id_number is not None and found_on is not None

        async def handler(uow: UnitOfWork) -> pb.RegisterFoundCardResponse:
            repo = self._repo(uow)
            card = await repo.get_card(card_number)
            if card is None or card.id_number != id_number.value:
                raise NotFound("The register holds no such card for this ID number.")
            found = d.register_found_card(
                id=new_id(),
                card=card,
                owner_current_card=await repo.current_card(card.id_number),
                station_region_code=station,
                found_place=place,
                found_on=found_on,
                registered_on=today,
            )
            await repo.save_found_card(found)
            payload = {
                "found_card_id": found.id,
                "card_number": found.card_number,
                "id_number": found.id_number,
                "status": found.status.value,
                "notify_owner": found.notify_owner,
                "station_region_code": station,
            }
            await self._event(uow, "FoundCardRegistered", found.id, payload, request)
            if found.status is d.FoundCardStatus.DESTROYED:
                brief = {k: payload[k] for k in ("found_card_id", "card_number", "id_number")}
                await self._event(uow, "FoundCardDestroyed", found.id, brief, request)
            return pb.RegisterFoundCardResponse(found_card=found_card_proto(found))

        return await self._mutate("RegisterFoundCard", request, pb.RegisterFoundCardResponse, handler)

    async def SearchFoundCards(
        self, request: pb.SearchFoundCardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchFoundCardsResponse:
        id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today())
        errors = ValidationCollector()
        size = page_size(request.page_size, errors)
        errors.raise_if_any()
        async with self.ctx.read() as session:
            repo = self._reader(session)
            found, token = await repo.found_cards_of(id_number.value, size, request.page_token)
        return pb.SearchFoundCardsResponse(
            found_cards=[found_card_proto(f) for f in found], next_page_token=token
        )

    async def ClaimFoundCard(
        self, request: pb.ClaimFoundCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClaimFoundCardResponse:
        check_request_id(request.request_id)
        today = self.ctx.clock.today()
        v = ValidationCollector()
        if not request.id:
            v.add("id", "REQUIRED", "id is required")
        claimant = _collect_id_number(v, request.claimant_id_number, "claimant_id_number", today)
        name = _collect_text(v, request.claimant_name, "claimant_name")
        photo_ref = _collect_text(v, request.photo_ref, "photo_ref")
        v.raise_if_any()
        assert claimant is not None

        hukou: d.HukouRecord | None = None
        if not await self._answered(request.request_id):
            hukou = await self._hukou(context, claimant.value, name)

        async def handler(uow: UnitOfWork) -> pb.ClaimFoundCardResponse:
            nonlocal hukou
            if hukou is None:
                hukou = await self._hukou(context, claimant.value, name)
            repo = self._repo(uow)
            found = await repo.get_found_card(request.id)
            if found is None:
                raise NotFound("No such found card.")
            claimed = d.claim_found_card(
                found,
                claimant.value,
                identity_confirmed=hukou.confirms_identity,
                photo_ref=photo_ref,
                on=today,
            )
            await repo.save_found_card(claimed)
            payload = {
                "found_card_id": claimed.id,
                "card_number": claimed.card_number,
                "id_number": claimed.id_number,
            }
            await self._event(uow, "FoundCardClaimed", claimed.id, payload, request)
            return pb.ClaimFoundCardResponse(found_card=found_card_proto(claimed))

        return await self._mutate("ClaimFoundCard", request, pb.ClaimFoundCardResponse, handler)

    # -- temporary cards ----------------------------------------------------------------------------------

    async def IssueTemporaryCard(
        self, request: pb.IssueTemporaryCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueTemporaryCardResponse:
        today = self.ctx.clock.today()
        id_number, station, hukou_of = await self._person_at_station(request, context, today, active=True)

        async def handler(uow: UnitOfWork) -> pb.IssueTemporaryCardResponse:
            hukou = await hukou_of()
            repo = self._repo(uow)
            open_app = await repo.get_open_application_for(id_number.value)
            card = d.apply_for_temporary_card(
                id_number=id_number.value,
                applications=[open_app] if open_app else [],
                station_region_code=station,
                hukou_region_code=hukou.region_code,
                urgent_need=request.urgent_need,
                applied_on=today,
                policy=self.policy,
            ).issue(today, self.policy)
            if await repo.temporary_card_for_application(card.application_id) is not None:
                raise AlreadyExists("The application in progress already has a temporary card.")
            temporary_id = new_id()
            await repo.add_temporary_card(temporary_id, card, station)
            payload = {
                "temporary_card_id": temporary_id,
                "application_id": card.application_id,
                "id_number": card.id_number,
                "valid_until": card.valid_until.isoformat() if card.valid_until else None,
            }
            await self._event(uow, "TemporaryCardIssued", temporary_id, payload, request)
            return pb.IssueTemporaryCardResponse(
                temporary_card=temporary_card_proto(temporary_id, card, station)
            )

        return await self._mutate("IssueTemporaryCard", request, pb.IssueTemporaryCardResponse, handler)

    async def GetTemporaryCard(
        self, request: pb.GetTemporaryCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTemporaryCardResponse:
        async with self.ctx.read() as session:
            found = await self._reader(session).get_temporary_card(_required_id(request.id))
        if found is None:
            raise NotFound("No such temporary card.")
        return pb.GetTemporaryCardResponse(temporary_card=temporary_card_proto(request.id, *found))

    # -- quotes -------------------------------------------------------------------------------------------

    async def QuoteCardApplication(
        self, request: pb.QuoteCardApplicationRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuoteCardApplicationResponse:
        v = ValidationCollector()
        kind = _KIND_FROM_PROTO.get(request.kind)
        if kind is None:
            v.add("kind", "REQUIRED", "kind is one of FIRST_ISSUE, RENEWAL, REPLACEMENT")
        reason = _REASON_FROM_PROTO.get(request.renewal_reason)
        if kind is d.ApplicationKind.RENEWAL and reason is None:
            v.add("renewal_reason", "REQUIRED", "a renewal states its reason")
        if kind is not None and kind is not d.ApplicationKind.RENEWAL and request.renewal_reason:
            v.add("renewal_reason", "NOT_A_RENEWAL", "only a renewal has a renewal reason")
        on = self.ctx.clock.today()
        if request.HasField("on"):
            on = _collect_date(v, request.on, "on") or on
        reduction = _REDUCTION_FROM_PROTO.get(request.fee_reduction, d.FeeReduction.NONE)
        v.raise_if_any()
        assert kind is not None
        quote = d.quote(
            kind,
            reason,
            reduction,
            on,
            self.policy,
            cross_province=request.cross_province,
            under_16=request.under_16,
        )
        return pb.QuoteCardApplicationResponse(
            fee_fen=quote.fee_fen,
            statutory_days=quote.statutory_days,
            statutory_deadline=date_to_proto(quote.statutory_deadline),
            required_materials=list(quote.required_materials),
            material_names={m: self.policy.material_names[m] for m in quote.required_materials},
            temporary_card_fee_fen=self.policy.temporary_card.fee_fen,
            on=date_to_proto(on),
            rejection_codes=[
                pb.RejectionCode(code=code, text=text) for code, text in self.policy.rejection_codes.items()
            ],
        )

    # -- events -------------------------------------------------------------------------------------------

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield pb.WatchEventsResponse(event=event_to_proto(row))


__all__ = ["IdentityServicer"]
