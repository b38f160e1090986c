"""The probe port (``GOVHUB_<SERVICE>_PROBE_LISTEN``): with mutual TLS on, a plaintext port that serves
the gRPC health service and nothing else, for probes that cannot present a client certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.grpcserver import GrpcService, PortInUse
from services.common.settings import ServiceSettings, SettingsError
from services.permits.server import build_server
from services.permits.servicer import PermitsServicer
from tests.service.security.conftest import Pki, count_handlers, service_settings
from tests.service.security.support import AUDIT, DESCRIPTORS, call

HEALTH = health_pb2.HealthCheckRequest


@pytest.fixture
async def permits(db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GrpcService]:
    service = await build_server(service_settings("permits", db_url, pki))
    service.probe_address = ("127.0.0.1", 0)
    await service.start()
    await service._set(True)  # what the health monitor does once the database answers
    try:
        yield service
    finally:
        await service.stop(0)


async def test_the_probe_port_answers_health_in_plaintext(permits: GrpcService) -> None:
    assert permits.probe_port and permits.probe_port != permits.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{permits.probe_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(HEALTH(), timeout=5)
        named = await health.Check(HEALTH(service=DESCRIPTORS["permits"].full_name), timeout=5)
        assert overall.status == named.status == health_pb2.HealthCheckResponse.SERVING

        # It follows the service's own state: a database away turns it NOT_SERVING at the monitor's next
        # look (taken here; a look still in flight from the start may land first, so it is awaited).
        async def away() -> bool:
            return False

        permits.is_healthy = away
        status = None
        for _ in range(50):
            await permits._set(await permits._healthy())
            status = (await health.Check(HEALTH(), timeout=5)).status
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.1)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_nothing_but_health_is_reachable_on_the_probe_port(
    db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_handlers(monkeypatch, PermitsServicer, DESCRIPTORS["permits"])
    service = await build_server(service_settings("permits", db_url, pki))
    service.probe_address = ("127.0.0.1", 0)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.probe_port}") as channel:
            for descriptor in (DESCRIPTORS["permits"], AUDIT):
                for method in descriptor.methods:
                    code, _ = await call(channel, descriptor, method)
                    assert code is grpc.StatusCode.UNIMPLEMENTED, method.full_name
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in reflection:
                    pass
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
        # The main port still demands a client certificate: a plaintext probe is not served there.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(channel).Check(HEALTH(), timeout=2)
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await service.stop(0)
    assert sum(calls.values()) == 0


async def test_a_taken_probe_port_stops_the_start_naming_the_setting(db_url: str, pki: Pki) -> None:
    service = await build_server(service_settings("permits", db_url, pki))
    service.probe_address = ("127.0.0.1", service.port)  # the main port: taken
    service.probe_listen_setting = "GOVHUB_PERMITS_PROBE_LISTEN"
    with pytest.raises(PortInUse, match="GOVHUB_PERMITS_PROBE_LISTEN"):
        await service.start()
    await service.stop(0)


def test_the_probe_port_setting() -> None:
    env = {"GOVHUB_PERMITS_PROBE_LISTEN": "0.0.0.0:9253"}
    assert ServiceSettings.from_env("permits", env).probe_listen == ("0.0.0.0", 9253)
    assert ServiceSettings.from_env("permits", {}).probe_listen is None
    assert ServiceSettings.from_env("permits", {"GOVHUB_PERMITS_PROBE_LISTEN": "off"}).probe_listen is None
    with pytest.raises(SettingsError, match="GOVHUB_PERMITS_PROBE_LISTEN"):
        ServiceSettings.from_env("permits", {"GOVHUB_PERMITS_PROBE_LISTEN": "9253"})
