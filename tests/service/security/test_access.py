"""Mutual TLS and grants on real department servers: the four bad certificates are refused in the
handshake, a good certificate with no grant gets PERMISSION_DENIED, and the matrix of every (client ×
method) pair lets through exactly what the grants file names. Handler invocations are counted: a refused
call never reaches one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grants import Grants, GrantsError
from services.common.settings import DEFAULT_GRANTS_FILE
from tests.service.security.conftest import CLIENTS, Pki
from tests.service.security.support import AUDIT, DESCRIPTORS, Running, call, start


@pytest.fixture
async def permits(db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    running = await start("permits", db_url, pki, monkeypatch)
    try:
        yield running
    finally:
        await running.service.stop(0)


# -- the handshake -------------------------------------------------------------------------------------


@pytest.mark.parametrize("certificate", [None, "self-signed", "expired", "other-ca"])
async def test_a_bad_client_certificate_is_refused_in_the_handshake(
    permits: Running, pki: Pki, certificate: str | None
) -> None:
    verify = DESCRIPTORS["permits"].methods_by_name["VerifyPermit"]
    async with grpc.aio.secure_channel(permits.target, pki.credentials(certificate)) as channel:
        code, _ = await call(channel, DESCRIPTORS["permits"], verify)
        assert code is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert sum(permits.calls.values()) == 0
    assert await permits.audit_rows() == []  # nothing got as far as the access interceptor


async def test_a_plaintext_client_is_refused(permits: Running) -> None:
    async with grpc.aio.insecure_channel(permits.target) as channel:
        code, _ = await call(
            channel, DESCRIPTORS["permits"], DESCRIPTORS["permits"].methods_by_name["VerifyPermit"]
        )
    assert code is grpc.StatusCode.UNAVAILABLE
    assert sum(permits.calls.values()) == 0


async def test_a_good_certificate_without_a_grant_reaches_health_only(permits: Running, pki: Pki) -> None:
    async with grpc.aio.secure_channel(permits.target, pki.credentials("unknown-system")) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        for method in DESCRIPTORS["permits"].methods:
            code, reason = await call(channel, DESCRIPTORS["permits"], method)
            assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_GRANTED"), method.name
    assert sum(permits.calls.values()) == 0
    rows = await permits.audit_rows()
    assert len(rows) == len(DESCRIPTORS["permits"].methods)  # every denied attempt is recorded
    assert {(r.client, r.outcome, r.status) for r in rows} == {
        ("unknown-system", "denied", "PERMISSION_DENIED")
    }


# -- the matrix ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service_name", ["permits", "identity", "residence"])
async def test_matrix_only_granted_pairs_get_past_the_interceptor(
    service_name: str, db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every client × every method of the service and of AuditService, taken from the descriptors (so a
    method added later and not named in the grants file shows up here as denied)."""
    grants = Grants.load(DEFAULT_GRANTS_FILE)
    running = await start(service_name, db_url, pki, monkeypatch)
    allowed: set[tuple[str, str]] = set()
    expected: set[tuple[str, str]] = set()
    try:
        for client in CLIENTS:
            async with grpc.aio.secure_channel(running.target, pki.credentials(client)) as channel:
                for service in (DESCRIPTORS[service_name], AUDIT):
                    for method in service.methods:
                        path = f"/{service.full_name}/{method.name}"
                        before = running.calls[method.name]
                        code, reason = await call(channel, service, method)
                        reached = running.calls[method.name] - before
                        if grants.allows(client, path):
                            expected.add((client, path))
                        if code is not grpc.StatusCode.PERMISSION_DENIED:
                            assert reached == 1, (client, path, code)
                            allowed.add((client, path))
                        else:
                            assert (reached, reason) == (0, "NOT_GRANTED"), (client, path)
    finally:
        await running.service.stop(0)
    assert allowed == expected
    # The grants file does grant something here (the matrix is not vacuous), to our own and outside systems.
    assert {client for client, _ in expected} >= {"gateway"}
    assert {client for client, _ in expected} & {"social-security", "civil-affairs"}


async def test_a_grant_naming_a_method_the_service_lacks_stops_the_start(
    db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    grants = tmp_path / "grants.toml"
    grants.write_text(
        '[clients.gateway]\norganisation = "x"\noutside = false\n'
        'methods = ["govhub.identity.v1.IdentityService/VerifyCardd"]\n'
    )
    with pytest.raises(GrantsError, match="VerifyCardd"):
        await start("identity", db_url, pki, monkeypatch, grants_file=grants)


def test_grants_files_are_explicit() -> None:
    for bad in (
        {
            "clients": {
                "x": {
                    "organisation": "o",
                    "outside": False,
                    "methods": ["govhub.permits.v1.PermitsService/*"],
                }
            }
        },
        {"clients": {"x": {"organisation": "o", "methods": []}}},
        {"clients": {"x": {"organisation": "o", "outside": False, "methods": [], "admin": True}}},
    ):
        with pytest.raises(GrantsError):
            Grants.from_data(bad)
    grants = Grants.load(DEFAULT_GRANTS_FILE)
    assert grants.clients["gateway"].outside is False
    assert grants.clients["social-security"].outside is True
    assert not grants.allows("gateway", f"/govhub.permits.v1.PermitsService/{uuid.uuid4().hex}")


async def test_identity_and_the_gateway_call_over_mutual_tls_with_their_own_certificates(
    db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.clients import CallContext, Refused, grpc_departments
    from govhub.residence.v1 import residence_pb2
    from services.identity.residence import GrpcHukouDirectory

    residence = await start("residence", db_url, pki, monkeypatch)
    try:
        hukou = GrpcHukouDirectory(residence.target, tls=pki.client_tls("identity"))
        try:
            record = await hukou.verify("11010519491231002X", "无此人", timeout=5)
        finally:
            await hukou.close()
        assert record.found is False and residence.calls["VerifyHukou"] == 1
        departments = grpc_departments(
            {d: residence.target for d in DESCRIPTORS}, tls=pki.client_tls("gateway")
        )
        try:
            ctx = CallContext(request_id="r", case_no="c", timeout=5)
            with pytest.raises(Refused) as err:  # the gateway has no grant for VerifyHukou
                await departments["residence"].call(
                    "VerifyHukou", residence_pb2.VerifyHukouRequest(id_number="11010519491231002X"), ctx
                )
            assert (err.value.code, err.value.reason) == ("PERMISSION_DENIED", "NOT_GRANTED")
            assert await departments["residence"].ready(5)  # health is open
        finally:
            for department in departments.values():
                await department.close()
    finally:
        await residence.service.stop(0)
    assert residence.calls["VerifyHukou"] == 1
