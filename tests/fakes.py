"""In-memory stand-ins for the department clients (the gateway's Department protocol)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.clients import CallContext, Refused, Unavailable
from govhub.audit.v1 import audit_pb2
from govhub.common.v1 import common_pb2
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2


def _weekdays_only(request: permits_pb2.CountWorkingDaysRequest) -> permits_pb2.CountWorkingDaysResponse:
    """Permits' CountWorkingDays with Monday to Friday as the only rule (no holiday data in the fake)."""
    counts = []
    for span in request.spans:
        start = dt.date(span.start_date.year, span.start_date.month, span.start_date.day)
        end = dt.date(span.end_date.year, span.end_date.month, span.end_date.day)
        days = (start + dt.timedelta(days=k) for k in range(1, (end - start).days + 1))
        counts.append(sum(day.weekday() < 5 for day in days))
    return permits_pb2.CountWorkingDaysResponse(working_days=counts)


def quote_card(
    request: identity_pb2.QuoteCardApplicationRequest,
) -> identity_pb2.QuoteCardApplicationResponse:
    """Identity's QuoteCardApplication with the 2016 fees: 20 yuan, 40 for a replacement or a seriously
    damaged card; 10 yuan for a temporary card; 60 days."""
    dear = request.kind == identity_pb2.CARD_APPLICATION_KIND_REPLACEMENT or (
        request.renewal_reason == identity_pb2.RENEWAL_REASON_SERIOUS_DAMAGE
    )
    return identity_pb2.QuoteCardApplicationResponse(
        fee_fen=4000 if dear else 2000, statutory_days=60, temporary_card_fee_fen=1000, on=request.on
    )


def quote_permits(request: permits_pb2.QuotePermitsRequest) -> permits_pb2.QuotePermitsResponse:
    """Permits' QuotePermits: 20 working days for the work permit, 15 days for the residence permit, 30
    days from entry, fees 400 / 800 / 1000 yuan from 0 / 12 / 36 months."""
    return permits_pb2.QuotePermitsResponse(
        on=request.on,
        work_permit_working_days=20,
        residence_permit_decision_days=15,
        residence_permit_apply_within_days_of_entry=30,
        residence_permit_fee_tiers=[
            permits_pb2.ResidencePermitFeeTier(min_months=0, fee_fen=40000),
            permits_pb2.ResidencePermitFeeTier(min_months=12, fee_fen=80000),
            permits_pb2.ResidencePermitFeeTier(min_months=36, fee_fen=100000),
        ],
    )


class FakeDepartment:
    """Answers calls from `handlers` (method -> function(request) -> response, or raising), remembers
    the first answer per request_id like a real department, and streams events pushed with `emit`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any, CallContext]] = []
        self.handlers: dict[str, Callable[[Any], Any]] = {
            "ListAccessEntries": lambda _request: audit_pb2.ListAccessEntriesResponse(),
            "CountWorkingDays": _weekdays_only,
            "QuoteCardApplication": quote_card,
            "QuotePermits": quote_permits,
        }
        self.answers: dict[str, Any] = {}
        self.down = False
        self.events: list[common_pb2.Event] = []
        self.metadata: list[tuple[str, dict[str, str]]] = []
        self._new_event = asyncio.Event()

    async def call(self, method: str, request: Any, ctx: CallContext) -> Any:
        self.calls.append((method, request, ctx))
        if self.down:
            raise Unavailable(self.name, f"{self.name} unavailable")
        if ctx.request_id in self.answers:
            return self.answers[ctx.request_id]
        answer = self.handlers[method](request)
        self.answers[ctx.request_id] = answer
        return answer

    async def call_as(self, method: str, request: Any, ctx: CallContext, metadata: dict[str, str]) -> Any:
        """A call made on a person's behalf (gateway.calls.call_as): the actor metadata is remembered."""
        self.metadata.append((method, metadata))
        return await self.call(method, request, ctx)

    def emit(self, event_type: str, aggregate_id: str, data: dict[str, Any] | None = None) -> None:
        event = common_pb2.Event(sequence=len(self.events) + 1, type=event_type, aggregate_id=aggregate_id)
        if data is not None:
            event.data.update(data)
        self.events.append(event)
        self._new_event.set()

    async def watch(self, after_sequence: int) -> AsyncIterator[common_pb2.Event]:
        cursor = after_sequence
        while True:
            self._new_event.clear()
            for event in self.events[cursor:]:
                cursor = event.sequence
                yield event
            await self._new_event.wait()

    async def ready(self, timeout: float) -> bool:
        return not self.down

    async def close(self) -> None:
        return None

    def calls_to(self, method: str) -> list[tuple[Any, CallContext]]:
        return [(r, c) for m, r, c in self.calls if m == method]


def accepting_identity(fake: FakeDepartment, *, refuse: str | None = None) -> FakeDepartment:
    """Identity that records card applications (or refuses them with `refuse` as the reason)."""

    def create(
        request: identity_pb2.CreateCardApplicationRequest,
    ) -> identity_pb2.CreateCardApplicationResponse:
        if refuse:
            raise Refused("identity", refuse, "refused by the rules", "FAILED_PRECONDITION")
        return identity_pb2.CreateCardApplicationResponse(
            card_application=identity_pb2.CardApplication(
                id=str(uuid.uuid4()),
                id_number=request.id_number,
                state=identity_pb2.CARD_APPLICATION_STATE_ACCEPTED,
                fee_fen=2000,
                statutory_deadline=common_pb2.Date(year=2016, month=11, day=14),
            )
        )

    def cancel(
        request: identity_pb2.CancelCardApplicationRequest,
    ) -> identity_pb2.CancelCardApplicationResponse:
        return identity_pb2.CancelCardApplicationResponse(
            card_application=identity_pb2.CardApplication(
                id=request.id, state=identity_pb2.CARD_APPLICATION_STATE_CANCELLED
            )
        )

    def report_lost(request: identity_pb2.ReportCardLostRequest) -> identity_pb2.ReportCardLostResponse:
        return identity_pb2.ReportCardLostResponse(
            loss_report=identity_pb2.LossReport(id=str(uuid.uuid4()), inside_hukou_area=True)
        )

    def temporary(request: identity_pb2.IssueTemporaryCardRequest) -> identity_pb2.IssueTemporaryCardResponse:
        return identity_pb2.IssueTemporaryCardResponse(
            temporary_card=identity_pb2.TemporaryCard(
                id=str(uuid.uuid4()),
                fee_fen=1000,
                issued_on=common_pb2.Date(year=2016, month=9, day=15),
                issue_by=common_pb2.Date(year=2016, month=9, day=18),
            )
        )

    fake.handlers["CreateCardApplication"] = create
    fake.handlers["CancelCardApplication"] = cancel
    fake.handlers["ReportCardLost"] = report_lost
    fake.handlers["IssueTemporaryCard"] = temporary
    return fake


def accepting_permits(fake: FakeDepartment, *, refuse_residence: str | None = None) -> FakeDepartment:
    """Permits that take both applications under review (or refuses the residence permit)."""
    from govhub.permits.v1 import permits_pb2

    def create_wp(request: permits_pb2.CreateWorkPermitApplicationRequest) -> Any:
        return permits_pb2.CreateWorkPermitApplicationResponse(
            work_permit_application=permits_pb2.WorkPermitApplication(
                id=str(uuid.uuid4()),
                state=permits_pb2.PERMIT_STATE_UNDER_REVIEW,
                category=permits_pb2.CATEGORY_B,
                decision_due_date=common_pb2.Date(year=2016, month=10, day=20),
                materials=request.materials,
            )
        )

    def create_rp(request: permits_pb2.CreateResidencePermitApplicationRequest) -> Any:
        if refuse_residence:
            raise Refused("permits", refuse_residence, "refused", "FAILED_PRECONDITION")
        return permits_pb2.CreateResidencePermitApplicationResponse(
            residence_permit_application=permits_pb2.ResidencePermitApplication(
                id=str(uuid.uuid4()),
                work_permit_id=request.work_permit_id,
                state=permits_pb2.PERMIT_STATE_UNDER_REVIEW,
                decision_due_date=common_pb2.Date(year=2016, month=10, day=30),
            )
        )

    def cancel_wp(request: Any) -> Any:
        return permits_pb2.CancelWorkPermitApplicationResponse()

    def cancel_rp(request: Any) -> Any:
        return permits_pb2.CancelResidencePermitApplicationResponse()

    fake.handlers.update(
        CreateWorkPermitApplication=create_wp,
        CreateResidencePermitApplication=create_rp,
        CancelWorkPermitApplication=cancel_wp,
        CancelResidencePermitApplication=cancel_rp,
    )
    return fake


def accepting_residence(fake: FakeDepartment) -> FakeDepartment:
    """Residence that registers accommodation (and undoes it)."""
    from govhub.residence.v1 import residence_pb2

    def register(request: Any) -> Any:
        return residence_pb2.RegisterAccommodationResponse(
            accommodation_registration=residence_pb2.AccommodationRegistration(
                id=str(uuid.uuid4()), registration_number="ACC-1", passport_number=request.passport_number
            )
        )

    def cancel(request: Any) -> Any:
        return residence_pb2.CancelAccommodationRegistrationResponse()

    fake.handlers.update(RegisterAccommodation=register, CancelAccommodationRegistration=cancel)
    return fake
