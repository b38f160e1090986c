"""CountWorkingDays over a real server: the department's calendar answers for others (the gateway's
statistics), and a year no holiday notice covers is refused naming the year, counted and logged."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
import structlog

from govhub.permits.v1 import permits_pb2 as pb
from govhub.permits.v1 import permits_pb2_grpc
from services.common.clock import Clock
from services.common.metrics import ServiceMetrics, collecting
from services.common.settings import ServiceSettings
from services.permits.server import build_server
from tests.service.permits.conftest import Permits, date, reason, violations

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


async def test_an_uncovered_year_is_refused_counted_and_logged(db_url: str) -> None:
    settings = ServiceSettings(service="permits", host="127.0.0.1", port=0, database_url=db_url)
    with collecting(ServiceMetrics("permits")) as metrics:
        service = await build_server(settings, clock=Clock(D(2026, 12, 1)))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        stub = permits_pb2_grpc.PermitsServiceStub(channel)
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CountWorkingDays(
                pb.CountWorkingDaysRequest(spans=[span(D(2026, 12, 1), D(2027, 1, 8))])
            )
    finally:
        await channel.close()
        await service.stop(0)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason(info.value) == "CALENDAR_NOT_COVERED"
    assert "2027" in (info.value.details() or "")
    assert metrics.registry.get_sample_value("govhub_calendar_not_covered_total", {"year": "2027"}) == 1
    assert metrics.registry.get_sample_value("govhub_calendar_last_covered_year") == 2026
    alarms = [e for e in logs if e["event"] == "working-day calendar not covered"]
    assert alarms and alarms[0]["log_level"] == "error" and alarms[0]["year"] == 2027
