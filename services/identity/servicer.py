"""govhub.identity.v1.IdentityService over grpc.aio: proto in, a use case of ``handlers``, proto out.

The servicer only translates: a request into plain and domain values (every ID number through
``require_id_number`` under the request field's name, every bad field reported at once), the use case's
answer into the response; domain errors become gRPC status codes in the error interceptor. Every change
runs in one unit of work through ``run_idempotent`` (its request_id, whose stored answer is the response),
with the state change and its outbox events committed together. Hukou facts come from the household
register through a `HukouDirectory` (one call per request, made before the unit of work and not repeated
for a request_id already answered).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2 as pb
from govhub.identity.v1 import identity_pb2_grpc
from services.common.db import UnitOfWork
from services.common.errors import InvalidArgument, ValidationCollector
from services.common.grpcserver import remaining
from services.common.idempotency import check_request_id, run_idempotent
from services.common.idnumber import IdNumber, address_code_periods, check_id_number, require_id_number
from services.common.pages import page_size
from services.common.protoconv import date_from_proto, date_to_proto, event_to_proto, timestamp
from services.common.service import ServiceContext
from services.identity import domain as d
from services.identity.handlers import (
    ApplicationRecord,
    Hukou,
    HukouAnswer,
    IdentityHandlers,
    TemporaryCardRecord,
    Work,
)
from services.identity.residence import HukouDirectory
from services.identity.store import IdempotencyRecord, IdentityRepository, IdentityWork

R = TypeVar("R", bound=Message)
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

# Proto enums in by number, out by name (the generated constructors take either).
_KIND_FROM_PROTO: dict[int, d.ApplicationKind] = {
    pb.CardApplicationKind.Value(f"CARD_APPLICATION_KIND_{k.value}"): k for k in d.ApplicationKind
}
_REASON_FROM_PROTO: dict[int, d.RenewalReason] = {
    pb.RenewalReason.Value(f"RENEWAL_REASON_{r.value}"): r for r in d.RenewalReason
}
_REDUCTION_FROM_PROTO: dict[int, d.FeeReduction] = {
    pb.FeeReduction.Value(f"FEE_REDUCTION_{r.value}"): r for r in d.FeeReduction
}


def _name(prefix: str, value: enum.Enum | None) -> str | None:
    """The proto enum name of a domain value (None: left unset)."""
    return f"{prefix}_{value.value}" if value is not None else None


# -- proto out --------------------------------------------------------------------------------------------


def application_proto(stored: ApplicationRecord) -> pb.CardApplication:
    app = stored.application
    msg = pb.CardApplication(
        id=app.id,
        id_number=app.id_number,
        name=app.name,
        kind=_name("CARD_APPLICATION_KIND", app.kind),
        renewal_reason=_name("RENEWAL_REASON", app.renewal_reason),
        cross_province=app.cross_province,
        hukou_province_code=app.hukou_province_code,
        accepting_region_code=app.accepting_region_code,
        state=_name("CARD_APPLICATION_STATE", app.state),
        fee_reduction=_name("FEE_REDUCTION", app.fee_reduction),
        fee_fen=app.fee_fen,
        application_date=date_to_proto(app.application_date),
        statutory_deadline=date_to_proto(app.statutory_deadline),
        required_materials=list(app.required_materials),
        rejection_reason=app.rejection_reason,
        create_time=timestamp(stored.created),
        update_time=timestamp(stored.updated),
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


def card_proto(card: d.Card) -> pb.Card:
    return pb.Card(
        card_number=card.card_number,
        id_number=card.id_number,
        valid_from=date_to_proto(card.valid_from),
        valid_until=date_to_proto(card.valid_until),
        long_term=card.long_term,
        status=_name("CARD_STATUS", card.status),
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
        status=_name("FOUND_CARD_STATUS", found.status),
        owner_notified=found.notify_owner,
        closed_on=date_to_proto(found.closed_on),
    )


def temporary_card_proto(issued: TemporaryCardRecord) -> pb.TemporaryCard:
    card = issued.card
    return pb.TemporaryCard(
        id=issued.id,
        id_number=card.id_number,
        application_id=card.application_id,
        applied_on=date_to_proto(card.applied_on),
        issue_by=date_to_proto(card.issue_by),
        issued_on=date_to_proto(card.issued_on),
        valid_until=date_to_proto(card.valid_until),
        fee_fen=card.fee_fen,
        station_region_code=issued.station_region_code,
    )


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


def _collect_kind(
    v: ValidationCollector, raw_kind: int, raw_reason: int
) -> tuple[d.ApplicationKind | None, d.RenewalReason | None]:
    kind = _KIND_FROM_PROTO.get(raw_kind)
    if kind is None:
        v.add("kind", "REQUIRED", "kind is one of FIRST_ISSUE, RENEWAL, REPLACEMENT")
    reason = _REASON_FROM_PROTO.get(raw_reason)
    if kind is d.ApplicationKind.RENEWAL and reason is None:
        v.add("renewal_reason", "REQUIRED", "a renewal states its reason")
    if kind is not None and kind is not d.ApplicationKind.RENEWAL and raw_reason:
        v.add("renewal_reason", "NOT_A_RENEWAL", "only a renewal has a renewal reason")
    return kind, reason


def _required_id(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument.one(field, "REQUIRED", f"{field} is required")
    return value


def _page_size(raw: int) -> int:
    errors = ValidationCollector()
    size = page_size(raw, errors)
    errors.raise_if_any()
    return size


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    """Each RPC: the request into plain and domain values (field violations named by the request's field
    paths), one use case of `IdentityHandlers`, the answer into the response."""

    def __init__(self, ctx: ServiceContext, hukou: HukouDirectory, handlers: IdentityHandlers) -> None:
        self.ctx = ctx
        self.hukou = hukou
        self.handlers = handlers
        self.policy = handlers.policy

    # -- plumbing -----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _records(self) -> AsyncIterator[IdentityRepository]:
        """The repository over a read-only session (``ctx.read()``)."""
        async with self.ctx.read() as session:
            yield IdentityRepository(session, self.ctx.clock.now())

    async def _change(
        self,
        method: str,
        request: Any,
        use_case: Callable[[Work], Awaitable[R]],
        response_type: type[R],
        *,
        unanswered: bool = False,
    ) -> R:
        """One unit of work, at most once per request_id. A unique-constraint race (one open application
        per person, one temporary card per application, a duplicate request_id), at an insert or at
        commit, is caught by ``run_idempotent`` and the request re-evaluated. `unanswered`: the caller has
        just read that the request_id has no stored answer (``run_idempotent``)."""
        request_id = check_request_id(request.request_id)

        async def run(uow: UnitOfWork) -> R:
            with uow.session.no_autoflush:
                return await use_case(IdentityWork(uow, self.ctx.feed, self.ctx.clock.now(), request_id))

        return await run_idempotent(
            self.ctx.uow,
            IdempotencyRecord,
            method,
            request,
            response_type,
            run,
            self.ctx.clock.now,
            unanswered=unanswered,
        )

    async def _hukou(self, request_id: str, context: Context, id_number: str, name: str) -> HukouAnswer:
        """The register's answer for the person, asked now (outside the unit of work) unless the
        request_id was already answered, and at the latest when the use case needs it. Asked now
        (``asked``): no answer to the request_id was stored when this looked."""
        answer = HukouAnswer(
            lambda: self.hukou.verify(
                id_number, name, timeout=remaining(context, self.ctx.settings.call_timeout)
            )
        )
        async with self._records() as records:
            answered = await records.answered(request_id)
        if not answered:
            await answer()
        return answer

    # -- ID numbers ---------------------------------------------------------------------------------------

    async def ValidateIdNumber(
        self, request: pb.ValidateIdNumberRequest, context: Context
    ) -> pb.ValidateIdNumberResponse:
        check = check_id_number(request.id_number, self.ctx.clock.today())
        return pb.ValidateIdNumberResponse(
            valid=check.valid,
            id_number=check.normalised,
            birth_date=date_to_proto(check.birth_date),
            sex=_name("SEX", check.sex),
            region_code=check.region_code,
            region_name=check.region_name,
            problems=[f"ID_NUMBER_PROBLEM_{p}" for p in check.problems],
        )

    # -- applications -------------------------------------------------------------------------------------

    async def CreateCardApplication(
        self, request: pb.CreateCardApplicationRequest, context: Context
    ) -> pb.CreateCardApplicationResponse:
        request_id = check_request_id(request.request_id)
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", self.ctx.clock.today())
        name = _collect_text(v, request.name, "name")
        kind, reason = _collect_kind(v, request.kind, request.renewal_reason)
        accepting = _collect_region(v, request.accepting_region_code, "accepting_region_code")
        permit = None
        if request.residence_permit.number.strip():
            until = _collect_date(v, request.residence_permit.valid_until, "residence_permit.valid_until")
            if until is not None:
                permit = d.ResidencePermit(request.residence_permit.number.strip(), until)
        reduction = _REDUCTION_FROM_PROTO.get(request.fee_reduction, d.FeeReduction.NONE)
        v.raise_if_any()
        assert id_number is not None and kind is not None
        hukou = await self._hukou(request_id, context, id_number.value, name)

        async def create(work: Work) -> pb.CreateCardApplicationResponse:
            stored = await self.handlers.create_application(
                work,
                id_number=id_number,
                name=name,
                kind=kind,
                renewal_reason=reason,
                accepting_region_code=accepting,
                fee_reduction=reduction,
                residence_permit=permit,
                report_loss=request.report_loss,
                require_cross_province=request.require_cross_province,
                hukou=hukou,
            )
            return pb.CreateCardApplicationResponse(card_application=application_proto(stored))

        return await self._change(
            "CreateCardApplication", request, create, pb.CreateCardApplicationResponse, unanswered=hukou.asked
        )

    async def GetCardApplication(
        self, request: pb.GetCardApplicationRequest, context: Context
    ) -> pb.GetCardApplicationResponse:
        async with self._records() as records:
            stored = await self.handlers.get_application(records, _required_id(request.id))
        return pb.GetCardApplicationResponse(card_application=application_proto(stored))

    async def ListCardApplications(
        self, request: pb.ListCardApplicationsRequest, context: Context
    ) -> pb.ListCardApplicationsResponse:
        id_number = None
        if request.id_number:
            id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today()).value
        size = _page_size(request.page_size)
        async with self._records() as records:
            items, token = await self.handlers.list_applications(records, id_number, size, request.page_token)
        return pb.ListCardApplicationsResponse(
            card_applications=[application_proto(item) for item in items], next_page_token=token
        )

    async def _application_change(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        change: Callable[[Work, str], Awaitable[ApplicationRecord]],
    ) -> R:
        application_id = _required_id(request.id)

        async def respond(work: Work) -> R:
            return response_type(card_application=application_proto(await change(work, application_id)))

        return await self._change(method, request, respond, response_type)

    async def ApproveCardApplication(
        self, request: pb.ApproveCardApplicationRequest, context: Context
    ) -> pb.ApproveCardApplicationResponse:
        return await self._application_change(
            "ApproveCardApplication", request, pb.ApproveCardApplicationResponse, self.handlers.approve
        )

    async def RejectCardApplication(
        self, request: pb.RejectCardApplicationRequest, context: Context
    ) -> pb.RejectCardApplicationResponse:
        code = d.rejection_code(request.reason_code, self.policy)
        return await self._application_change(
            "RejectCardApplication",
            request,
            pb.RejectCardApplicationResponse,
            lambda work, id: self.handlers.reject(work, id, request.reason, code),
        )

    async def CancelCardApplication(
        self, request: pb.CancelCardApplicationRequest, context: Context
    ) -> pb.CancelCardApplicationResponse:
        return await self._application_change(
            "CancelCardApplication",
            request,
            pb.CancelCardApplicationResponse,
            lambda work, id: self.handlers.cancel(work, id, request.reason),
        )

    async def MarkCardProduced(
        self, request: pb.MarkCardProducedRequest, context: Context
    ) -> pb.MarkCardProducedResponse:
        return await self._application_change(
            "MarkCardProduced", request, pb.MarkCardProducedResponse, self.handlers.mark_produced
        )

    async def MarkCardReadyForPickup(
        self, request: pb.MarkCardReadyForPickupRequest, context: Context
    ) -> pb.MarkCardReadyForPickupResponse:
        return await self._application_change(
            "MarkCardReadyForPickup", request, pb.MarkCardReadyForPickupResponse, self.handlers.mark_ready
        )

    async def IssueCard(self, request: pb.IssueCardRequest, context: Context) -> pb.IssueCardResponse:
        application_id = _required_id(request.id)

        async def issue(work: Work) -> pb.IssueCardResponse:
            stored, card = await self.handlers.issue_card(
                work, application_id, old_card_surrendered=request.old_card_surrendered
            )
            return pb.IssueCardResponse(card_application=application_proto(stored), card=card_proto(card))

        return await self._change("IssueCard", request, issue, pb.IssueCardResponse)

    # -- the card register --------------------------------------------------------------------------------

    async def GetCurrentCard(
        self, request: pb.GetCurrentCardRequest, context: Context
    ) -> pb.GetCurrentCardResponse:
        id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today())
        async with self._records() as records:
            card = await self.handlers.current_card(records, id_number.value)
        return pb.GetCurrentCardResponse(card=card_proto(card))

    async def ListCards(self, request: pb.ListCardsRequest, context: Context) -> pb.ListCardsResponse:
        id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today())
        size = _page_size(request.page_size)
        async with self._records() as records:
            cards, token = await self.handlers.list_cards(records, id_number.value, size, request.page_token)
        return pb.ListCardsResponse(cards=[card_proto(c) for c in cards], next_page_token=token)

    async def VerifyCard(self, request: pb.VerifyCardRequest, context: Context) -> pb.VerifyCardResponse:
        v = ValidationCollector()
        card_number = _collect_text(v, request.card_number, "card_number").upper()
        id_number = _collect_id_number(v, request.id_number, "id_number", self.ctx.clock.today())
        v.raise_if_any()
        assert id_number is not None
        async with self._records() as records:
            answer = await self.handlers.verify_card(records, card_number, id_number.value)
        if answer is None:
            return pb.VerifyCardResponse(valid=False, result=pb.CARD_VERIFICATION_RESULT_UNKNOWN_CARD)
        return pb.VerifyCardResponse(
            valid=answer.valid,
            result=f"CARD_VERIFICATION_RESULT_{answer.reason}",
            cancelled_on=date_to_proto(answer.since),
        )

    async def UpdateCardAddress(
        self, request: pb.UpdateCardAddressRequest, context: Context
    ) -> pb.UpdateCardAddressResponse:
        check_request_id(request.request_id)
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", self.ctx.clock.today())
        try:
            d.check_card_address(request.region_code, request.address)
        except InvalidArgument as exc:
            v.violations.extend(exc.violations)
        v.raise_if_any()
        assert id_number is not None

        async def update(work: Work) -> pb.UpdateCardAddressResponse:
            card = await self.handlers.update_card_address(
                work, id_number.value, request.region_code, request.address
            )
            return pb.UpdateCardAddressResponse(card=card_proto(card))

        return await self._change("UpdateCardAddress", request, update, pb.UpdateCardAddressResponse)

    async def _at_station(self, request: Any, context: Context) -> tuple[str, str, Hukou]:
        """The checked ID number and station of a request made in person at a station, and the register's
        answer for the person."""
        request_id = check_request_id(request.request_id)
        v = ValidationCollector()
        id_number = _collect_id_number(v, request.id_number, "id_number", self.ctx.clock.today())
        name = _collect_text(v, request.name, "name")
        station = _collect_region(v, request.station_region_code, "station_region_code")
        v.raise_if_any()
        assert id_number is not None
        return id_number.value, station, await self._hukou(request_id, context, id_number.value, name)

    # -- loss and lost-and-found --------------------------------------------------------------------------

    async def ReportCardLost(
        self, request: pb.ReportCardLostRequest, context: Context
    ) -> pb.ReportCardLostResponse:
        id_number, station, hukou = await self._at_station(request, context)

        async def report(work: Work) -> pb.ReportCardLostResponse:
            reported = await self.handlers.report_card_lost(
                work, id_number, station, request.card_number.strip().upper(), hukou
            )
            return pb.ReportCardLostResponse(
                loss_report=loss_report_proto(reported.report), card=card_proto(reported.card)
            )

        return await self._change("ReportCardLost", request, report, pb.ReportCardLostResponse)

    async def RegisterFoundCard(
        self, request: pb.RegisterFoundCardRequest, context: Context
    ) -> pb.RegisterFoundCardResponse:
        check_request_id(request.request_id)
        v = ValidationCollector()
        card_number = _collect_text(v, request.card_number, "card_number").upper()
        id_number = _collect_id_number(v, request.id_number, "id_number", self.ctx.clock.today())
        station = _collect_region(v, request.station_region_code, "station_region_code")
        place = _collect_text(v, request.found_place, "found_place")
        found_on = _collect_date(v, request.found_on, "found_on")
        v.raise_if_any()
        assert id_number is not None and found_on is not None

        async def register(work: Work) -> pb.RegisterFoundCardResponse:
            found = await self.handlers.register_found_card(
                work,
                card_number=card_number,
                id_number=id_number.value,
                station_region_code=station,
                found_place=place,
                found_on=found_on,
            )
            return pb.RegisterFoundCardResponse(found_card=found_card_proto(found))

        return await self._change("RegisterFoundCard", request, register, pb.RegisterFoundCardResponse)

    async def SearchFoundCards(
        self, request: pb.SearchFoundCardsRequest, context: Context
    ) -> pb.SearchFoundCardsResponse:
        id_number = require_id_number(request.id_number, "id_number", self.ctx.clock.today())
        size = _page_size(request.page_size)
        async with self._records() as records:
            found, token = await self.handlers.found_cards(records, id_number.value, size, request.page_token)
        return pb.SearchFoundCardsResponse(
            found_cards=[found_card_proto(f) for f in found], next_page_token=token
        )

    async def ClaimFoundCard(
        self, request: pb.ClaimFoundCardRequest, context: Context
    ) -> pb.ClaimFoundCardResponse:
        request_id = check_request_id(request.request_id)
        v = ValidationCollector()
        if not request.id:
            v.add("id", "REQUIRED", "id is required")
        claimant = _collect_id_number(
            v, request.claimant_id_number, "claimant_id_number", self.ctx.clock.today()
        )
        name = _collect_text(v, request.claimant_name, "claimant_name")
        photo_ref = _collect_text(v, request.photo_ref, "photo_ref")
        v.raise_if_any()
        assert claimant is not None
        hukou = await self._hukou(request_id, context, claimant.value, name)

        async def claim(work: Work) -> pb.ClaimFoundCardResponse:
            found = await self.handlers.claim_found_card(work, request.id, claimant.value, photo_ref, hukou)
            return pb.ClaimFoundCardResponse(found_card=found_card_proto(found))

        return await self._change("ClaimFoundCard", request, claim, pb.ClaimFoundCardResponse)

    # -- temporary cards ----------------------------------------------------------------------------------

    async def IssueTemporaryCard(
        self, request: pb.IssueTemporaryCardRequest, context: Context
    ) -> pb.IssueTemporaryCardResponse:
        id_number, station, hukou = await self._at_station(request, context)

        async def issue(work: Work) -> pb.IssueTemporaryCardResponse:
            issued = await self.handlers.issue_temporary_card(
                work, id_number, station, request.urgent_need, hukou
            )
            return pb.IssueTemporaryCardResponse(temporary_card=temporary_card_proto(issued))

        return await self._change("IssueTemporaryCard", request, issue, pb.IssueTemporaryCardResponse)

    async def GetTemporaryCard(
        self, request: pb.GetTemporaryCardRequest, context: Context
    ) -> pb.GetTemporaryCardResponse:
        async with self._records() as records:
            issued = await self.handlers.get_temporary_card(records, _required_id(request.id))
        return pb.GetTemporaryCardResponse(temporary_card=temporary_card_proto(issued))

    # -- quotes -------------------------------------------------------------------------------------------

    async def QuoteCardApplication(
        self, request: pb.QuoteCardApplicationRequest, context: Context
    ) -> pb.QuoteCardApplicationResponse:
        v = ValidationCollector()
        kind, reason = _collect_kind(v, request.kind, request.renewal_reason)
        on = self.ctx.clock.today()
        if request.HasField("on"):
            on = _collect_date(v, request.on, "on") or on
        reduction = _REDUCTION_FROM_PROTO.get(request.fee_reduction, d.FeeReduction.NONE)
        v.raise_if_any()
        assert kind is not None
        quote = self.handlers.quote(
            kind, reason, reduction, on, cross_province=request.cross_province, under_16=request.under_16
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
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        async for row in self.ctx.feed.watch(request.after_sequence, list(request.types)):
            yield pb.WatchEventsResponse(event=event_to_proto(row))


__all__ = ["IdentityServicer"]
