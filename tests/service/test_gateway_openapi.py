"""The HTTP surface: the OpenAPI document matches the routes exactly, and schemathesis, driving every
documented operation against a live gateway (fake departments, on each database backend), finds no 5xx
and no response outside the document."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import GatewayRunner, create_app
from gateway.openapi import OPERATIONS
from gateway.saga.model import BLOCKER_REASONS
from gateway.typedefs import catalogue_key
from gateway.web import is_page
from services.common.clock import Clock
from tests.conftest import BACKENDS, POSTGRES_URL, _asyncpg_dsn, examples
from tests.fakes import FakeDepartment, accepting_identity, accepting_permits
from tests.service.gateway_fakes import deciding_identity, deciding_permits, household_residence
from tests.service.gateway_support import TODAY, bearer, citizen, counter, department
from tests.service.test_gateway_cases import VALID
from tests.service.test_gateway_foreigner import DATA as FOREIGNER

EXAMPLES = 12  # per operation: bounded, so the whole suite stays quick


async def test_the_document_and_the_routes_are_the_same_set(client: TestClient) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routed = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.method != "HEAD" and not is_page(r.resource.canonical)  # the web pages are not the API
    }
    assert documented - routed == set(), "documented but not routed"
    assert routed - documented == set(), "routed but not documented"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["x-govhub-roles"], f"{method} {path} declares nobody"
            assert "500" in op["responses"] and "401" in op["responses"]


async def test_each_matter_s_data_has_a_schema_that_takes_a_good_form_and_refuses_a_bad_one(
    client: TestClient,
) -> None:
    """A client can check a form before sending it: ``Data.<matter>`` from the matter's declared fields,
    and the submission's body names it for its matter."""
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert {f"Data.{m}" for m in client.app[catalogue_key]} <= set(schemas)
    resolver = {"components": {"schemas": schemas}}

    def errors(matter: str, data: dict[str, Any]) -> list[str]:
        schema = {**schemas[f"Data.{matter}"], **resolver}
        return [e.json_path for e in Draft202012Validator(schema).iter_errors(data)]

    assert errors(VALID["matter"], VALID["data"]) == []
    assert errors("foreigner-employment", FOREIGNER) == []
    bad = {**VALID["data"], "accepting_region_code": "31010", "renewal_reason": "BORED"}
    assert sorted(errors(VALID["matter"], bad)) == ["$.accepting_region_code", "$.renewal_reason"]
    missing = {k: v for k, v in VALID["data"].items() if k != "applicant"}
    assert errors(VALID["matter"], missing) == ["$"]  # 'applicant' is a required property
    body = doc["paths"]["/api/v1/cases"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = {v["allOf"][1]["properties"]["matter"]["const"]: v for v in body["oneOf"]}
    assert variants.keys() == set(client.app[catalogue_key])
    assert variants[VALID["matter"]]["allOf"][1]["properties"]["data"] == {
        "$ref": f"#/components/schemas/Data.{VALID['matter']}"
    }


async def test_the_withdrawal_refusal_and_a_rejection_are_documented(client: TestClient) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    refused = doc["paths"]["/api/v1/cases/{case_no}/withdraw"]["post"]["responses"]["409"]
    assert {"$ref": "#/components/schemas/WithdrawalRefused"} in refused["content"][
        "application/problem+json"
    ]["schema"]["anyOf"]
    assert schemas["Blocker"]["properties"]["reason"]["enum"] == list(BLOCKER_REASONS)
    assert schemas["Case"]["properties"]["rejection"]["anyOf"][0] == {
        "$ref": "#/components/schemas/Rejection"
    }
    assert set(schemas["Rejection"]["required"]) == {"reasons", "codes"}
    assert "id_number" in schemas["StepResults"]["properties"]


# -- a live gateway in a thread of its own (schemathesis drives it over HTTP with requests) ------------


class LiveGateway:
    def __init__(self, db_url: str, var: Path) -> None:
        self.db_url = db_url
        self.var = var
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.base_url = ""
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        import dataclasses

        from tests.service.gateway_support import settings as gateway_settings

        departments = {
            "identity": deciding_identity(accepting_identity(FakeDepartment("identity"))),
            "residence": household_residence(FakeDepartment("residence")),
            "permits": deciding_permits(accepting_permits(FakeDepartment("permits"))),
        }
        config = dataclasses.replace(
            gateway_settings(self.db_url), materials_dir=self.var / "materials", submit_wait=0.5
        )
        app = create_app(config, departments=departments, clock=Clock(TODAY), background=False)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(30), "the gateway did not start"

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        self.loop.close()


def _postgres(action: str, name: str) -> None:
    import asyncpg

    async def run() -> None:
        admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
        try:
            sql = (
                f'CREATE DATABASE "{name}"'
                if action == "create"
                else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(run())


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    var = tmp_path_factory.mktemp("live")
    name = ""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{var / 'gateway.db'}"
    else:
        name = f"govhub_test_{uuid.uuid4().hex[:16]}"
        _postgres("create", name)
        url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    gateway = LiveGateway(url, var)
    gateway.start()
    yield gateway
    gateway.stop()
    if name:
        _postgres("drop", name)


@pytest.fixture(scope="module")
def api_schema(live: LiveGateway) -> Any:
    return schemathesis.openapi.from_url(f"{live.base_url}/api/v1/openapi.json")


TOKENS = {
    "citizen": lambda: citizen("11010519491231002X"),
    "counter": lambda: counter("310104"),
    "department": lambda: department("identity"),
    "admin": lambda: bearer("admin"),
}


def headers_for(roles: list[str]) -> dict[str, str]:
    """A token of the first role the operation admits (public operations are called without one)."""
    for role in roles:
        if role in TOKENS:
            return TOKENS[role]()
    return {}


@pytest.mark.parametrize(
    ("method", "path"), sorted(OPERATIONS), ids=[f"{m} {p}" for m, p in sorted(OPERATIONS)]
)
def test_no_server_errors_and_every_answer_is_documented(
    api_schema: Any, live: LiveGateway, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    roles = operation.definition.raw.get("x-govhub-roles", [])
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    @settings(max_examples=examples(EXAMPLES))
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        case.call_and_validate(base_url=live.base_url, headers=headers_for(roles), checks=checks, timeout=15)

    exercise()
