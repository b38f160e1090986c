"""Gateway fixtures: the app with fake departments, on each database backend."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from services.common.clock import Clock
from tests.fakes import FakeDepartment, accepting_identity
from tests.service.gateway_support import TODAY, settings


@pytest.fixture
def departments() -> dict[str, FakeDepartment]:
    return {
        "identity": accepting_identity(FakeDepartment("identity")),
        "residence": FakeDepartment("residence"),
        "permits": FakeDepartment("permits"),
    }


@pytest.fixture
async def client(aiohttp_client: Any, db_url: str, departments: dict[str, FakeDepartment]) -> TestClient:
    app = create_app(settings(db_url), departments=departments, clock=Clock(TODAY), background=False)
    return await aiohttp_client(app)
