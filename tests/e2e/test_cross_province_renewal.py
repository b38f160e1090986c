"""Foundation, end to end: four real processes started as ``make run`` starts them; a cross-province
ID card renewal submitted over HTTP, approved by a back-office client over gRPC, and the case moved on
by the department's event — no polling of the department by the gateway."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

TIANJIN = {"id_number": "120101198503120115", "name": "王津生"}  # accepted in Shanghai from 2016-07-01
HENAN = {"id_number": "410105199007080221", "name": "李豫华"}  # accepted only from 2016-12-26


def application(person: dict[str, str]) -> dict[str, object]:
    return {
        "matter": "id-card-renewal-cross-province",
        "data": {
            "applicant": person,
            "renewal_reason": "EXPIRY",
            "accepting_region_code": "310104",
            "residence_permit": {"number": "SH3101042016000123", "valid_until": "2017-08-31"},
        },
    }


async def wait_for_state(
    http: aiohttp.ClientSession, url: str, code: str, state: str, timeout: float = 20
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(url, params={"code": code}) as resp:
            view = await resp.json()
        if view["state"] == state or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.2)


class Reflective:
    """A gRPC client that knows nothing but what the server's reflection tells it."""

    def __init__(self, channel: grpc.aio.Channel, sync_channel: grpc.Channel) -> None:
        self.channel = channel
        self.db = ProtoReflectionDescriptorDatabase(sync_channel)
        self.pool = descriptor_pool.DescriptorPool(self.db)

    def services(self) -> list[str]:
        return self.db.get_services()

    def methods(self, service: str) -> list[str]:
        return [m.name for m in self.pool.FindServiceByName(service).methods]

    async def call(self, service: str, method: str, **fields: object) -> object:
        desc = self.pool.FindServiceByName(service).FindMethodByName(method)
        request_cls = message_factory.GetMessageClass(desc.input_type)
        response_cls = message_factory.GetMessageClass(desc.output_type)
        rpc = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return await rpc(request_cls(**fields), timeout=5)


async def test_cross_province_renewal_end_to_end(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{hub.base_url}/api/v1/cases",
            json=application(TIANJIN),
            headers=hub.citizen(TIANJIN["id_number"]),
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        case_url = f"{hub.base_url}/api/v1/cases/{body['case_no']}"
        code = body["query_code"]
        assert body["state"] == "IN_REVIEW"
        [step] = body["steps"]
        assert step["department"] == "identity"
        assert step["department_state"] == "ACCEPTED"
        assert step["statutory_deadline"] == "2016-11-14"  # 60 days after 2016-09-15
        assert body["fee_fen"] == 2000

        # The hukou PSB's back office approves over gRPC, knowing only what reflection tells it.
        with grpc.insecure_channel(hub.targets["identity"]) as sync_channel:
            async with grpc.aio.insecure_channel(hub.targets["identity"]) as channel:
                client = Reflective(channel, sync_channel)
                listed = await client.call(
                    "govhub.identity.v1.IdentityService",
                    "ListCardApplications",
                    id_number=TIANJIN["id_number"],
                )
                [app] = listed.card_applications
                assert app.cross_province and app.hukou_province_code == "12"
                await client.call(
                    "govhub.identity.v1.IdentityService",
                    "ApproveCardApplication",
                    request_id=str(uuid.uuid4()),
                    id=app.id,
                )
        view = await wait_for_state(http, case_url, code, "APPROVED")
        assert view["state"] == "APPROVED", view
        assert view["steps"][0]["department_state"] == "APPROVED"


async def test_refusals_follow_the_error_table(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{hub.base_url}/api/v1/cases", json=application(HENAN), headers=hub.citizen(HENAN["id_number"])
        ) as resp:
            problem = await resp.json()
            assert resp.status == 422, problem
            assert resp.content_type == "application/problem+json"
            assert problem["reason"] == "PROVINCE_NOT_YET_ACCEPTED"

        bad_digit = application({"id_number": "120101198503120116", "name": "王津生"})
        async with http.post(
            f"{hub.base_url}/api/v1/cases", json=bad_digit, headers=hub.citizen(TIANJIN["id_number"])
        ) as resp:
            problem = await resp.json()
            assert resp.status == 400
            assert {"field": "data.applicant.id_number", "reason": "BAD_CHECK_DIGIT"}.items() <= problem[
                "errors"
            ][0].items()

        stranger = application({"id_number": "11010519491231002X", "name": "无此人"})
        async with http.post(
            f"{hub.base_url}/api/v1/cases", json=stranger, headers=hub.citizen("11010519491231002X")
        ) as resp:
            problem = await resp.json()
            assert resp.status == 422, problem
            assert problem["reason"] == "HUKOU_RECORD_NOT_FOUND"
            text = str(problem)
            assert "Traceback" not in text and "SELECT" not in text and "127.0.0.1" not in text


async def test_services_are_discoverable_by_reflection_and_healthy(hub: Hub) -> None:
    for department, service in [
        ("identity", "govhub.identity.v1.IdentityService"),
        ("residence", "govhub.residence.v1.ResidenceService"),
        ("permits", "govhub.permits.v1.PermitsService"),
    ]:
        with grpc.insecure_channel(hub.targets[department]) as sync_channel:
            async with grpc.aio.insecure_channel(hub.targets[department]) as channel:
                client = Reflective(channel, sync_channel)
                assert service in client.services()
                assert "WatchEvents" in client.methods(service)
                health = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=5
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                if department == "identity":
                    reply = await client.call(service, "ValidateIdNumber", id_number="44011320141005001x")
                    assert reply.valid and reply.id_number == "44011320141005001X"
                if department == "residence":
                    reply = await client.call(service, "VerifyHukou", **TIANJIN)
                    assert reply.found and reply.name_matches and reply.hukou_province_code == "12"
