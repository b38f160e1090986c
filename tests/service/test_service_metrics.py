"""Prometheus metrics of a department service: a real residence server on port 0 with its metrics on
port 0, RPCs made over a real channel, and the counters, histograms and outbox gauges read back by
scraping ``/metrics`` as Prometheus would."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import grpc
import pytest
from google.protobuf import timestamp_pb2
from prometheus_client.parser import text_string_to_metric_families

from govhub.common.v1 import common_pb2
from govhub.residence.v1 import residence_pb2 as pb
from govhub.residence.v1 import residence_pb2_grpc
from services.common.clock import Clock
from services.common.grpcserver import GrpcService, PortInUse, build_grpc_server
from services.common.metrics import ServiceMetrics, collecting
from services.common.settings import ServiceSettings
from services.residence.server import SERVICE_NAME, build_server

TODAY = dt.date(2016, 9, 15)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    stub: residence_pb2_grpc.ResidenceServiceStub
    service: GrpcService

    async def scrape(self) -> Samples:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.service.metrics_port}/metrics") as resp,
        ):
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            text = await resp.text()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rpc(method: str, code: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_service": SERVICE_NAME, "grpc_method": method, "grpc_type": kind, "grpc_code": code}


def accommodation() -> pb.RegisterAccommodationRequest:
    arrive = timestamp_pb2.Timestamp()
    arrive.FromDatetime(dt.datetime(2016, 9, 15, 1, 0, tzinfo=dt.UTC))
    return pb.RegisterAccommodationRequest(
        request_id=str(uuid.uuid4()),
        passport_number="E7654321",
        nationality="GBR",
        name="Alex Testperson",
        address="上海市徐汇区漕溪北路1号酒店1201房",
        police_station_code="31010401",
        host=pb.AccommodationHost(kind=pb.HOST_KIND_HOTEL, name="示例酒店", identifier="HOTEL-0001"),
        arrive_time=arrive,
        from_date=common_pb2.Date(year=2016, month=9, day=15),
        to_date=common_pb2.Date(year=2016, month=10, day=15),
    )


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[Served]:
    settings = ServiceSettings(
        service="residence",
        host="127.0.0.1",
        port=0,
        database_url=db_url,
        metrics_listen=("127.0.0.1", 0),
    )
    # As service_main builds it: the outbox gauges read the service's own store.
    with collecting(ServiceMetrics("residence")):
        service = await build_server(settings, clock=Clock(TODAY))
    service.metrics_address = settings.metrics_listen
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Served(residence_pb2_grpc.ResidenceServiceStub(channel), service)
    finally:
        await channel.close()
        await service.stop(0)


async def test_rpcs_are_counted_and_timed_by_method_and_code(served: Served) -> None:
    assert served.service.metrics_port
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.GetPerson(pb.GetPersonRequest(id_number="120101198503120115"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    await served.stub.RegisterAccommodation(accommodation())

    samples = await served.scrape()
    not_found = rpc("GetPerson", "NOT_FOUND")
    assert sample(samples, "grpc_server_handled_total", **not_found) == 1
    assert sample(samples, "grpc_server_handling_seconds_count", **not_found) == 1
    assert 0 < sample(samples, "grpc_server_handling_seconds_sum", **not_found) < 5
    assert sample(samples, "grpc_server_handling_seconds_bucket", **not_found, le="+Inf") == 1
    assert sample(samples, "grpc_server_handled_total", **rpc("GetPerson", "OK")) == 0
    registered = rpc("RegisterAccommodation", "OK")
    assert sample(samples, "grpc_server_handled_total", **registered) == 1
    assert sample(samples, "grpc_server_handling_seconds_count", **registered) == 1
    started = {k: v for k, v in registered.items() if k != "grpc_code"}
    assert sample(samples, "grpc_server_started_total", **started) == 1

    # An invalid request is its mapped code, not an internal error.
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await served.stub.RegisterAccommodation(pb.RegisterAccommodationRequest(request_id=str(uuid.uuid4())))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    samples = await served.scrape()
    assert (
        sample(samples, "grpc_server_handled_total", **rpc("RegisterAccommodation", "INVALID_ARGUMENT")) == 1
    )


async def test_outbox_backlog_is_what_no_watcher_has_been_sent(served: Served) -> None:
    await served.stub.RegisterAccommodation(accommodation())
    samples = await served.scrape()
    head = sample(samples, "govhub_outbox_head_sequence")
    assert head >= 1
    # No watcher has connected to this process yet: nothing is known about the consumers.
    assert math.isnan(sample(samples, "govhub_outbox_backlog_events"))
    assert sample(samples, "govhub_outbox_watchers") == 0

    call = served.stub.WatchEvents(pb.WatchEventsRequest(after_sequence=0))
    try:
        seen = 0
        async for response in call:
            seen = response.event.sequence
            if seen >= head:
                break
        samples = await served.scrape()
        assert sample(samples, "govhub_outbox_watchers") == 1
        assert sample(samples, "govhub_outbox_streamed_sequence") == head
        assert sample(samples, "govhub_outbox_events_streamed_total") >= 1
        assert sample(samples, "govhub_outbox_backlog_events") == 0
        assert sample(samples, "govhub_outbox_oldest_unstreamed_age_seconds") == 0
    finally:
        call.cancel()

    # The stream ends CANCELLED; the event written after it is backlog until a watcher takes it.
    await served.stub.RegisterAccommodation(accommodation())
    for _ in range(100):
        samples = await served.scrape()
        if sample(samples, "govhub_outbox_watchers") == 0:
            break
        await asyncio.sleep(0.02)
    assert sample(samples, "govhub_outbox_watchers") == 0
    assert sample(samples, "govhub_outbox_head_sequence") == head + 1
    assert sample(samples, "govhub_outbox_backlog_events") == 1
    assert sample(samples, "govhub_outbox_oldest_unstreamed_age_seconds") >= 0
    watch = rpc("WatchEvents", "CANCELLED", "server_stream")
    assert sample(samples, "grpc_server_handled_total", **watch) == 1


def _server(name: str) -> GrpcService:
    async def healthy() -> bool:
        return True

    return build_grpc_server(
        name=name,
        host="127.0.0.1",
        port=0,
        listen_setting="GOVHUB_TEST_LISTEN",
        register=[],
        service_names=[],
        is_healthy=healthy,
    )


async def test_each_server_has_its_own_registry_and_a_taken_port_names_the_setting() -> None:
    first, second = _server("identity"), _server("identity")
    assert first.metrics is not None and second.metrics is not None
    assert first.metrics.registry is not second.metrics.registry
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        second.metrics_address = ("127.0.0.1", blocker.getsockname()[1])
        second.metrics_listen_setting = "GOVHUB_IDENTITY_METRICS_LISTEN"
        with pytest.raises(PortInUse, match="GOVHUB_IDENTITY_METRICS_LISTEN"):
            await second.start()
    await second.server.stop(0)
    first.metrics_address = ("127.0.0.1", 0)
    await first.start()
    try:
        assert first.metrics_port
    finally:
        await first.stop(0)
    assert first.metrics_port is not None  # the port it had; the listener is closed


def test_metrics_listen_setting() -> None:
    env = {"GOVHUB_VAR_DIR": "/tmp/govhub-metrics-settings"}
    assert ServiceSettings.from_env("identity", env).metrics_listen == ("127.0.0.1", 9151)
    assert ServiceSettings.from_env("residence", env).metrics_listen == ("127.0.0.1", 9152)
    assert ServiceSettings.from_env("permits", env).metrics_listen == ("127.0.0.1", 9153)
    moved = {**env, "GOVHUB_PERMITS_METRICS_LISTEN": "0.0.0.0:9000"}
    assert ServiceSettings.from_env("permits", moved).metrics_listen == ("0.0.0.0", 9000)
    off = {**env, "GOVHUB_PERMITS_METRICS_LISTEN": "off"}
    assert ServiceSettings.from_env("permits", off).metrics_listen is None


async def test_a_hung_database_makes_the_service_not_serving() -> None:
    """Issue 16: the health monitor pings the database with a timeout (a hung one reported SERVING)."""
    import asyncio

    from grpc_health.v1 import health_pb2

    from services.common.grpcserver import build_grpc_server

    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    service = build_grpc_server(
        name="hung",
        host="127.0.0.1",
        port=0,
        listen_setting="GOVHUB_TEST_LISTEN",
        register=[],
        service_names=[],
        is_healthy=hangs,
        health_interval=0.05,
    )
    service.health_timeout = 0.1
    await service.start()
    try:
        await service.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for _ in range(50):
            await asyncio.sleep(0.05)
            reply = await service.health.Check(health_pb2.HealthCheckRequest(service=""), None)
            if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await service.stop(0)


async def test_stop_ends_the_health_monitor_even_if_a_ping_swallows_its_cancellation() -> None:
    """A stop while the health ping is under way, with a database driver that answers the cancellation
    instead of raising it: the monitor still ends, told by ``stop`` itself and not only by the cancellation
    (a monitor whose cancellation was consumed during the ping once slept out its whole interval while
    ``stop`` waited for it: 60 s in the service tests on PostgreSQL)."""
    import asyncio

    from services.common.grpcserver import build_grpc_server

    pinging = asyncio.Event()

    async def swallows() -> bool:
        pinging.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return False
        return True

    service = build_grpc_server(
        name="swallowing",
        host="127.0.0.1",
        port=0,
        listen_setting="GOVHUB_TEST_LISTEN",
        register=[],
        service_names=[],
        is_healthy=swallows,
        health_interval=3600,
    )
    await service.start()
    await pinging.wait()
    async with asyncio.timeout(60):  # a guard against hanging, not a measure: the interval is an hour
        await service.stop(0)
    assert all(task.done() for task in service._tasks)
