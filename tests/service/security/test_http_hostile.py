"""Hostile HTTP bodies and headers (issue 15): every route that reads a body, fed nested, huge, truncated,
mistyped and undecodable bodies, answers 4xx application/problem+json and logs no ERROR.

The gateway runs in a thread of its own (as in the schemathesis test) and is driven over a raw socket
(``http.client``), so that bodies reach it exactly as written. Which routes read a body, and which fields
each body has, is taken from the gateway's own OpenAPI document: a new route is covered without touching
this file.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.common import MAX_JSON_BYTES, MAX_JSON_DEPTH
from gateway.app import create_app
from tests.conftest import examples
from tests.fakes import FakeDepartment
from tests.service.gateway_support import bearer, citizen, counter, department
from tests.service.gateway_support import settings as gateway_settings
from tests.service.test_gateway_openapi import LiveGateway

APPLICANT = "11010519491231002X"
VALID = {
    "matter": "id-card-renewal-cross-province",
    "data": {
        "applicant": {"id_number": APPLICANT, "name": "测试甲"},
        "renewal_reason": "EXPIRY",
        "accepting_region_code": "310104",
        "residence_permit": {"number": "SH310104201600001", "valid_until": "2017-06-30"},
    },
}
TOKENS = {
    "citizen": lambda: citizen(APPLICANT),
    "counter": lambda: counter("310104"),
    "department": lambda: department("identity"),
    "admin": lambda: bearer("admin"),
}
SHAPES: Counter[str] = Counter()  # shape -> bodies sent (printed at the end of the module)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    var = tmp_path_factory.mktemp("hostile")
    gateway = LiveGateway(f"sqlite+aiosqlite:///{var / 'gateway.db'}", var)
    gateway.start()
    yield gateway
    gateway.stop()
    print("\nhostile HTTP bodies sent, by shape:", dict(sorted(SHAPES.items())))


def _send(
    live: LiveGateway, method: str, path: str, body: bytes, headers: dict[str, str], *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    host, port = live.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        if chunked:
            conn.request(method, path, body=iter([body]), headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def surface(live: LiveGateway) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(method, path, headers, body schema) of every operation with a request body, its path parameters
    naming a real case (so that routes reading the body after loading the case reach the parser too)."""
    status, _, raw = _send(
        live,
        "POST",
        "/api/v1/cases",
        json.dumps(VALID).encode(),
        {"Content-Type": "application/json", **TOKENS["citizen"]()},
    )
    assert status == 201, raw
    case_no = json.loads(raw)["case_no"]
    _, _, doc_raw = _send(live, "GET", "/api/v1/openapi.json", b"", {})
    doc = json.loads(doc_raw)
    schemas = doc.get("components", {}).get("schemas", {})
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            content = op["requestBody"].get("content", {})
            if "application/json" not in content:
                continue  # the multipart upload has its own tests
            schema = content["application/json"].get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            roles = op.get("x-govhub-roles", [])
            headers = next((TOKENS[r]() for r in roles if r in TOKENS), {})
            concrete = path.replace("{case_no}", case_no).replace("{step_key}", "identity")
            out.append((method.upper(), concrete, headers, schema))
    assert len(out) >= 9, out  # every POST route that reads JSON
    return out


# -- the shapes ---------------------------------------------------------------------------------------

_WRONG = {
    "string": [1, True, None, [], {}],
    "integer": ["1", 1.5, None, [], {}],
    "number": ["1", None, [], {}],
    "boolean": ["true", 1, None, [], {}],
    "object": ["{}", 1, [], None],
    "array": ["[]", 1, {}, None],
}


@st.composite
def hostile(draw: st.DrawFn, schema: dict[str, Any]) -> tuple[str, bytes, bool]:
    """(shape, body, chunked) of one hostile body for an operation whose body has `schema`."""
    shape = draw(
        st.sampled_from(
            [
                *("nested-array", "nested-object", "huge", "truncated", "mistyped", "not-an-object"),
                *("number", "bad-text", "bad-bytes"),
            ]
        )
    )
    chunked = draw(st.booleans())
    if shape == "nested-array":
        n = draw(st.integers(MAX_JSON_DEPTH + 1, 200_000))
        return shape, b"[" * n + b"]" * n, chunked
    if shape == "nested-object":
        n = draw(st.integers(MAX_JSON_DEPTH + 1, 20_000))
        return shape, b'{"a":' * n + b"1" + b"}" * n, chunked
    if shape == "huge":
        n = draw(st.integers(MAX_JSON_BYTES - 10, MAX_JSON_BYTES * 4))
        return shape, json.dumps({"text": "x" * n, "code": "y"}).encode(), chunked
    if shape == "truncated":
        whole = json.dumps({**VALID, "text": "好" * 10, "code": "AB12CD34"}).encode()
        return shape, whole[: draw(st.integers(1, len(whole) - 1))], chunked
    if shape == "not-an-object":
        value = draw(st.sampled_from([[], [1, 2], "x", 1, 1.5, None, True]))
        return shape, json.dumps(value).encode(), chunked
    if shape == "number":
        body = draw(st.sampled_from([b"9" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity"]))
        key = draw(st.sampled_from([*schema.get("properties", {}), "x"]))
        return shape, b'{"' + key.encode() + b'":' + body + b"}", chunked
    if shape == "bad-text":
        key = draw(st.sampled_from([*schema.get("properties", {}), "x"]))
        value = draw(st.sampled_from(["\\ud800", "\\udfff", "a\\ud83d"]))
        return shape, ('{"' + key + '":"' + value + '"}').encode(), chunked
    if shape == "bad-bytes":
        return (
            shape,
            draw(st.sampled_from([b'{"a":"\xff\xfe"}', b"\xef\xbb\xbf{}", b'{"a":"\xc3"}'])),
            chunked,
        )
    properties = schema.get("properties", {})
    if not properties:
        return "not-an-object", b"[]", chunked
    name = draw(st.sampled_from(sorted(properties)))
    kind = properties[name].get("type", "object")
    value = draw(st.sampled_from(_WRONG.get(kind, [1])))
    return shape, json.dumps({name: value}).encode(), chunked


@settings(max_examples=examples(160))
@given(data=st.data())
def test_hostile_bodies_get_a_4xx_problem_and_no_error(
    data: st.DataObject, live: LiveGateway, surface: list[Any], rendered_logs: Any
) -> None:
    method, path, headers, schema = data.draw(st.sampled_from(surface))
    shape, body, chunked = data.draw(hostile(schema))
    SHAPES[shape] += 1
    status, got, raw = _send(
        live, method, path, body, {"Content-Type": "application/json", **headers}, chunked=chunked
    )
    assert 400 <= status < 500, (shape, method, path, status, raw[:200])
    assert got["content-type"].startswith("application/problem+json"), (shape, path, got)
    problem = json.loads(raw)
    assert problem["status"] == status
    if shape.startswith("nested"):
        # 404/409: a route that checks the case before it reads the body (no feedback yet to reply to)
        assert status in (400, 404, 409, 413), (path, status)
        if status == 400:
            assert str(MAX_JSON_DEPTH) in problem["title"], problem
    if shape == "huge":
        assert status in (404, 409, 413), (path, status)
        if status == 413:
            assert str(MAX_JSON_BYTES) in problem["title"]
    errors = [line for line in rendered_logs.getvalue().splitlines() if '"level": "error"' in line]
    assert not errors, errors[:3]


async def test_public_withdraw_is_rate_limited_before_its_body_is_read(
    aiohttp_client: Any, db_url: str
) -> None:
    """Past the per-address limit, even a hostile body is answered 429 without being parsed."""
    config = dataclasses.replace(gateway_settings(db_url), progress_burst=3, progress_rate=0.01)
    client = await aiohttp_client(create_app(config, departments={}, background=False))
    deep = b"[" * 50_000 + b"]" * 50_000
    statuses = []
    for _ in range(6):
        resp = await client.post(
            "/api/v1/cases/GH0/withdraw", data=deep, headers={"Content-Type": "application/json"}
        )
        statuses.append(resp.status)
        assert resp.content_type == "application/problem+json"
    assert statuses == [400, 400, 400, 429, 429, 429], statuses


async def test_security_headers_and_no_store_on_personal_answers(aiohttp_client: Any, db_url: str) -> None:
    # Every department down: the matters list answers at once without its quotes. (An empty mapping
    # would have the app dial the configured targets and wait out each quote's deadline.)
    down = {name: FakeDepartment(name) for name in ("identity", "residence", "permits")}
    for fake in down.values():
        fake.down = True
    client = await aiohttp_client(create_app(gateway_settings(db_url), departments=down, background=False))
    for path, headers, personal in [
        ("/api/v1/matters", {}, False),
        ("/api/v1/me/cases", citizen(APPLICANT), True),
        ("/api/v1/progress/GH0?code=ABCDEFGH", {}, True),
        ("/api/v1/nowhere", {}, True),
    ]:
        resp = await client.get(path, headers=headers)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Server"] == "govhub", resp.headers["Server"]
        assert ("no-store" in resp.headers.get("Cache-Control", "")) is personal, (path, resp.headers)


def test_oversized_header_and_request_line_are_problems_without_echo(
    live: LiveGateway, rendered_logs: Any
) -> None:
    secret = "S3CR3T" + "x" * 20_000
    status, got, raw = _send(live, "GET", "/api/v1/matters", b"", {"Authorization": f"Bearer {secret}"})
    assert status in (400, 431)
    assert got["content-type"].startswith("application/problem+json"), got
    assert b"S3CR3T" not in raw
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /api/v1/" + b"S3CR3T" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"414", b"431"), head
    assert b"application/problem+json" in head.lower()
    assert b"S3CR3T" not in body
    errors = [line for line in rendered_logs.getvalue().splitlines() if '"level": "error"' in line]
    assert not errors, errors[:3]
