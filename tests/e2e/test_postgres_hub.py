"""The whole hub on PostgreSQL: every department and the gateway on a database of their own on the
server CI provides (GOVHUB_TEST_POSTGRES_URL), migrated at start, seeded, and the foundation's case run
end to end — the same code as on the embedded default."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import aiohttp
import grpc
import pytest

from govhub.identity.v1 import identity_pb2 as ipb
from govhub.identity.v1 import identity_pb2_grpc
from tests.e2e.conftest import Hub, start_hub, stop_hub
from tests.e2e.test_cross_province_renewal import TIANJIN, application, wait_for_state

POSTGRES_URL = os.environ.get("GOVHUB_TEST_POSTGRES_URL", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs GOVHUB_TEST_POSTGRES_URL"),
]
PROCESSES = ("identity", "residence", "permits", "gateway")


def _admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    suffix = uuid.uuid4().hex[:10]
    names = {p: f"govhub_{p}_{suffix}" for p in PROCESSES}
    base = POSTGRES_URL.rsplit("/", 1)[0]
    for name in names.values():
        _admin(f'CREATE DATABASE "{name}"')
    env = {f"GOVHUB_{p.upper()}_DATABASE_URL": f"{base}/{names[p]}" for p in PROCESSES}
    hub = start_hub(tmp_path_factory.mktemp("pg-hub"), extra_env=env)
    try:
        yield hub
    finally:
        code = stop_hub(hub.process)
        assert hub.process.stdout is not None
        hub.process.stdout.close()
        hub.log_file.close()
        for name in names.values():
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        assert code == 0, hub.log()[-4000:]


async def test_the_foundation_case_on_postgresql(pg_hub: Hub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{pg_hub.base_url}/api/v1/cases",
            json=application(TIANJIN),
            headers=pg_hub.citizen(TIANJIN["id_number"]),
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        async with grpc.aio.insecure_channel(pg_hub.targets["identity"]) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            listed = await stub.ListCardApplications(
                ipb.ListCardApplicationsRequest(id_number=TIANJIN["id_number"])
            )
            [app] = listed.card_applications
            await stub.ApproveCardApplication(
                ipb.ApproveCardApplicationRequest(request_id=str(uuid.uuid4()), id=app.id)
            )
        view = await wait_for_state(
            http, f"{pg_hub.base_url}/api/v1/cases/{body['case_no']}", body["query_code"], "APPROVED"
        )
        assert view["state"] == "APPROVED", view
