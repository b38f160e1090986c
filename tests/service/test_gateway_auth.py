"""Who may call what: every route declares it; tokens are checked (algorithm, signature, expiry,
audience, issuer); a route that declares nothing is refused."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.app import create_app
from gateway.auth import PUBLIC, declared, ensure_dev_secret, mint
from services.common.clock import Clock
from tests.service.gateway_support import TODAY, bearer, citizen, department, secret_file, settings, token
from tests.service.test_gateway_cases import APPLICANT, VALID


def hs256(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token made by hand (PyJWT itself refuses a PEM public key as an HMAC secret)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    signing = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(payload).encode())
    )
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def claims(**extra: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    base = {
        "iss": "govhub",
        "aud": "govhub-gateway",
        "sub": "citizen-1",
        "role": "citizen",
        "person": "11010519491231002X",
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=5)).timestamp()),
    }
    base.update(extra)
    return base


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_every_route_declares_who_may_call_it(client: TestClient) -> None:
    undeclared = [
        f"{route.method} {route.resource.canonical}"
        for route in client.app.router.routes()
        if declared(route.handler) is None
    ]
    assert undeclared == []
    public = {
        route.resource.canonical
        for route in client.app.router.routes()
        if PUBLIC in (declared(route.handler) or ())
    }
    assert "/api/v1/backoffice/cases/{case_no}/steps/{step_key}/approve" not in public
    assert {"/healthz", "/api/v1/progress/{case_no}", "/api/v1/openapi.json"} <= public


async def test_a_route_that_declares_nothing_is_refused(
    aiohttp_client: Any, db_url: str, departments: Any
) -> None:
    app = create_app(settings(db_url), departments=departments, clock=Clock(TODAY), background=False)

    async def forgotten(request: web.Request) -> web.Response:
        return web.json_response({"secret": "data"})

    app.router.add_get("/forgotten", forgotten)
    client = await aiohttp_client(app)
    for headers in ({}, bearer("admin")):
        resp = await client.get("/forgotten", headers=headers)
        assert resp.status == 403
        assert "secret" not in await resp.text()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: jwt.encode(claims(), None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda: jwt.encode(claims(), "another-key-of-at-least-32-bytes!!", algorithm="HS256"),
            id="other-key",
        ),
        pytest.param(
            lambda: jwt.encode(
                claims(exp=int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp())),
                secret_file().read_bytes().strip(),
                algorithm="HS256",
            ),
            id="expired",
        ),
        pytest.param(
            lambda: jwt.encode(
                claims(aud="someone-else"), secret_file().read_bytes().strip(), algorithm="HS256"
            ),
            id="wrong-audience",
        ),
        pytest.param(
            lambda: jwt.encode(
                claims(iss="not-govhub"), secret_file().read_bytes().strip(), algorithm="HS256"
            ),
            id="wrong-issuer",
        ),
        pytest.param(
            lambda: jwt.encode(
                {k: v for k, v in claims().items() if k != "exp"},
                secret_file().read_bytes().strip(),
                algorithm="HS256",
            ),
            id="no-expiry",
        ),
        pytest.param(
            lambda: jwt.encode(claims(role="root"), secret_file().read_bytes().strip(), algorithm="HS256"),
            id="unknown-role",
        ),
        pytest.param(
            lambda: jwt.encode(claims(person=""), secret_file().read_bytes().strip(), algorithm="HS256"),
            id="citizen-without-person",
        ),
        pytest.param(lambda: "not.a.token", id="garbage"),
    ],
)
async def test_bad_tokens_are_401(client: TestClient, bad: Any) -> None:
    resp = await client.get("/api/v1/me/cases", headers=auth(bad()))
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # a bad token is refused even on a public route: it is never silently ignored
    assert (await client.get("/api/v1/matters", headers=auth(bad()))).status == 401


async def test_missing_token_and_wrong_scheme(client: TestClient) -> None:
    assert (await client.get("/api/v1/me/cases")).status == 401
    assert (
        await client.get("/api/v1/me/cases", headers={"Authorization": "Basic dXNlcjpwdw=="})
    ).status == 401
    assert (await client.get("/api/v1/matters")).status == 200


async def test_a_little_clock_skew_is_tolerated(client: TestClient) -> None:
    skewed = claims(exp=int((dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).timestamp()))
    good = jwt.encode(skewed, secret_file().read_bytes().strip(), algorithm="HS256")
    assert (await client.get("/api/v1/me/cases", headers=auth(good))).status == 200


async def test_a_citizen_may_not_approve(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    resp = await client.post(
        f"/api/v1/backoffice/cases/{body['case_no']}/steps/card/approve", headers=APPLICANT
    )
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    resp = await client.post("/api/v1/counter/cases", json=VALID, headers=APPLICANT)
    assert resp.status == 403


async def test_a_citizen_reading_anothers_case_gets_404(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    mine = await client.get(f"/api/v1/cases/{body['case_no']}", headers=APPLICANT)
    assert mine.status == 200
    assert (await mine.json())["applicant"]["applicant.id_number"] == "11010519491231002X"
    other = citizen("310104197811300337")
    resp = await client.get(f"/api/v1/cases/{body['case_no']}", headers=other)
    assert resp.status == 404
    text = await resp.text()
    assert "11010519491231002X" not in text and "IN_REVIEW" not in text
    nobody = await client.get("/api/v1/cases/GH20160915ZZZZZZ", headers=other)
    assert nobody.status == 404  # the same answer as for a case that does not exist
    assert (await nobody.json())["title"] == (await resp.json())["title"]


async def test_online_one_applies_only_for_oneself(client: TestClient, departments: Any) -> None:
    resp = await client.post("/api/v1/cases", json=VALID, headers=citizen("310104197811300337"))
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["field"] == "data.applicant.id_number"
    assert departments["identity"].calls == []


async def test_the_development_secret_is_made_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-jwt-secret"
    first = ensure_dev_secret(path)
    assert ensure_dev_secret(path) == first
    assert len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    minted = mint(first, role="counter", sub="staff-9", hall="310104")
    decoded = jwt.decode(minted, first, algorithms=["HS256"], audience="govhub-gateway")
    assert decoded["hall"] == "310104" and decoded["role"] == "counter"
    with pytest.raises(ValueError, match="hall"):  # a counter token without its hall is not minted
        mint(first, role="counter", sub="staff-9")


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_public_keys_for_production(
    aiohttp_client: Any, db_url: str, tmp_path: Path, kind: str
) -> None:
    key: Any = (
        rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    )
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "keys.pem").write_bytes(pem)
    config = dataclasses.replace(
        settings(db_url), jwt_secret_file=None, jwt_public_keys_file=tmp_path / "keys.pem"
    )
    client = await aiohttp_client(create_app(config, departments={}, clock=Clock(TODAY), background=False))
    good = jwt.encode(claims(), key, algorithm=kind)
    assert (await client.get("/api/v1/me/cases", headers=auth(good))).status == 200
    # algorithm confusion: an HS256 token "signed" with the public key is refused
    confused = hs256(claims(), pem)
    assert (await client.get("/api/v1/me/cases", headers=auth(confused))).status == 401
    # and a development-secret token means nothing here
    assert (
        await client.get("/api/v1/me/cases", headers=auth(token("citizen", person="11010519491231002X")))
    ).status == 401


async def test_department_staff_see_only_their_departments_cases(client: TestClient) -> None:
    body = await (await client.post("/api/v1/cases", json=VALID, headers=APPLICANT)).json()
    assert (
        await client.get(f"/api/v1/cases/{body['case_no']}", headers=department("identity"))
    ).status == 200
    assert (await client.get(f"/api/v1/cases/{body['case_no']}", headers=department("permits"))).status == 404
