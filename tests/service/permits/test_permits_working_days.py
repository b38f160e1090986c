"""CountWorkingDays over a real server: the department's calendar answers for others (the gateway's
statistics); a year without a published notice is counted on the provisional calendar and says so (answers,
events, alarm); a year past the horizon is refused naming the year, counted and logged."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
import structlog

from govhub.permits.v1 import permits_pb2 as pb
from govhub.permits.v1 import permits_pb2_grpc
from services.common.clock import Clock
from services.common.metrics import ServiceMetrics, collecting
from services.common.settings import ServiceSettings
from services.permits.server import build_server
from tests.service.permits.conftest import (
    NOTICE_KINDS,
    Permits,
    date,
    reason,
    refs,
    violations,
    work_permit_request,
)

D = dt.date


def span(start: dt.date, end: dt.date) -> pb.DateSpan:
    return pb.DateSpan(start_date=date(start), end_date=date(end))


async def test_counts_each_span_with_holidays_and_adjusted_working_days(permits: Permits) -> None:
    reply = await permits.stub.CountWorkingDays(
        pb.CountWorkingDaysRequest(
            spans=[
                span(D(2016, 9, 30), D(2016, 10, 9)),  # 国庆 1–7 Oct off, Sat 8 and Sun 9 Oct worked
                span(D(2016, 2, 5), D(2016, 2, 15)),  # 春节: Sat 6 and Sun 14 worked, 8–12 off, 15 worked
                span(D(2026, 11, 30), D(2026, 12, 4)),
                span(D(2017, 1, 1), D(2016, 1, 1)),  # end before start
            ]
        )
    )
    assert list(reply.working_days) == [2, 3, 4, 0]
    assert reply.last_covered_year >= 2026


async def test_bad_spans_are_refused_with_every_field(permits: Permits) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await permits.stub.CountWorkingDays(
            pb.CountWorkingDaysRequest(
                spans=[pb.DateSpan(start_date=date(D(2016, 1, 1))), span(D(2016, 1, 1), D(2016, 1, 2))]
            )
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(info.value) == {"spans[0].end_date": "REQUIRED"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await permits.stub.CountWorkingDays(pb.CountWorkingDaysRequest())
    assert violations(info.value) == {"spans": "OUT_OF_RANGE"}


@asynccontextmanager
async def _server(db_url: str, today: dt.date) -> AsyncIterator[tuple[Permits, ServiceMetrics]]:
    """A permits server whose clock reads `today`, with its own metrics registry."""
    settings = ServiceSettings(service="permits", host="127.0.0.1", port=0, database_url=db_url)
    with collecting(ServiceMetrics("permits")) as metrics:
        service = await build_server(settings, clock=Clock(today))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Permits(permits_pb2_grpc.PermitsServiceStub(channel), service), metrics
    finally:
        await channel.close()
        await service.stop(0)


async def test_a_year_past_the_horizon_is_refused_counted_and_logged(db_url: str) -> None:
    async with _server(db_url, D(2026, 12, 1)) as (permits, metrics):
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await permits.stub.CountWorkingDays(
                pb.CountWorkingDaysRequest(spans=[span(D(2036, 12, 1), D(2037, 1, 8))])
            )
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason(info.value) == "CALENDAR_NOT_COVERED"
    assert "2037" in (info.value.details() or "")
    assert metrics.registry.get_sample_value("govhub_calendar_not_covered_total", {"year": "2037"}) == 1
    assert metrics.registry.get_sample_value("govhub_calendar_last_covered_year") == 2026
    alarms = [e for e in logs if e["event"] == "working-day calendar not covered"]
    assert alarms and alarms[0]["log_level"] == "error" and alarms[0]["year"] == 2037


async def test_a_span_into_a_year_without_a_notice_is_counted_provisionally(db_url: str) -> None:
    async with _server(db_url, D(2026, 12, 1)) as (permits, metrics):
        with structlog.testing.capture_logs() as logs:
            published = await permits.stub.CountWorkingDays(
                pb.CountWorkingDaysRequest(spans=[span(D(2026, 11, 30), D(2026, 12, 31))])
            )
            provisional = await permits.stub.CountWorkingDays(
                pb.CountWorkingDaysRequest(
                    spans=[span(D(2026, 12, 1), D(2027, 1, 8)), span(D(2027, 2, 4), D(2027, 2, 11))]
                )
            )
    assert not published.calendar_provisional and list(published.working_days) == [23]
    # Dec 2–31: 22; 2027: 1 Jan 元旦 off, 4–8 Jan 5. 5–10 Feb: 除夕–初三 and two 补假 off, 11 Feb worked.
    assert provisional.calendar_provisional and list(provisional.working_days) == [27, 1]
    assert provisional.last_covered_year == 2026
    assert metrics.registry.get_sample_value("govhub_calendar_provisional_total", {"year": "2027"}) == 1
    [warning] = [e for e in logs if e["event"] == "working-day calendar provisional"]
    assert warning["log_level"] == "warning" and warning["year"] == 2027
    assert "calendar_overrides.toml" in warning["action"]


def _work_permit_request(**overrides) -> pb.CreateWorkPermitApplicationRequest:
    return work_permit_request(
        materials=refs(*NOTICE_KINDS),
        contract=pb.Contract(start_date=date(D(2027, 2, 1)), end_date=date(D(2029, 1, 31))),
        **overrides,
    )


async def test_a_work_permit_deadline_in_a_year_without_a_notice_says_so(db_url: str) -> None:
    async with _server(db_url, D(2026, 12, 4)) as (permits, metrics):
        await permits.employer()
        app = (await permits.stub.CreateWorkPermitApplication(_work_permit_request())).work_permit_application
        again = (
            await permits.stub.GetWorkPermitApplication(pb.GetWorkPermitApplicationRequest(id=app.id))
        ).work_permit_application
        quote = await permits.stub.QuotePermits(pb.QuotePermitsRequest())
        events = await permits.events()
    assert app.state == pb.PERMIT_STATE_UNDER_REVIEW
    # Friday 2026-12-04 + 20 working days: 19 in December, 1 January 2027 (元旦) off, Monday 4 January.
    assert (app.decision_due_date.year, app.decision_due_date.month, app.decision_due_date.day) == (
        2027,
        1,
        4,
    )
    assert app.calendar_provisional and again.calendar_provisional
    assert quote.calendar_provisional
    [review] = [e for e in events if e.type == "WorkPermitUnderReview" and e.aggregate_id == app.id]
    assert review.data["decision_due"] == "2027-01-04" and review.data["calendar_provisional"] is True
    # the deadline and the quote each counted once
    assert metrics.registry.get_sample_value("govhub_calendar_provisional_total", {"year": "2027"}) == 2


async def test_a_work_permit_deadline_in_a_published_year_is_not_provisional(db_url: str) -> None:
    async with _server(db_url, D(2026, 11, 2)) as (permits, metrics):
        await permits.employer()
        app = (await permits.stub.CreateWorkPermitApplication(_work_permit_request())).work_permit_application
        quote = await permits.stub.QuotePermits(pb.QuotePermitsRequest())
        events = await permits.events()
    assert app.decision_due_date.year == 2026 and not app.calendar_provisional
    assert not quote.calendar_provisional
    [review] = [e for e in events if e.type == "WorkPermitUnderReview" and e.aggregate_id == app.id]
    assert "calendar_provisional" not in review.data
    assert metrics.registry.get_sample_value("govhub_calendar_provisional_total", {"year": "2027"}) is None


async def test_a_residence_permit_target_in_a_year_without_a_notice_says_so(db_url: str) -> None:
    async with _server(db_url, D(2026, 12, 24)) as (permits, metrics):
        await permits.employer()
        contract = pb.Contract(start_date=date(D(2027, 2, 1)), end_date=date(D(2029, 1, 31)))
        await permits.work_permit(state="ISSUED", contract=contract)
        app = await permits.residence_permit(entry_date=date(D(2026, 12, 20)))
        events = await permits.events()
    assert app.state == pb.PERMIT_STATE_UNDER_REVIEW
    # statutory: 15 calendar days; target: 7 working days from Thursday 2026-12-24, 元旦 2027 off
    assert (app.decision_due_date.year, app.decision_due_date.month, app.decision_due_date.day) == (
        2027,
        1,
        8,
    )
    target = app.decision_target_date
    assert (target.year, target.month, target.day) == (2027, 1, 5)
    assert app.calendar_provisional
    [review] = [e for e in events if e.type == "ResidencePermitUnderReview" and e.aggregate_id == app.id]
    assert review.data["calendar_provisional"] is True
    assert (
        metrics.registry.get_sample_value("govhub_calendar_provisional_total", {"year": "2027"}) == 2
    )  # work permit deadline, residence target
