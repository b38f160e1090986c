"""A bounded fuzz of every method of the three departments (issue 15): hostile requests built from the
methods' own descriptors (every field of every request type, at any depth: extreme numbers, unknown enum
values, timestamps out of range, over-long and odd strings, long repeated fields) and bytes that are not
the request message at all. No call may end UNKNOWN or INTERNAL, and a request that does not decode is
INVALID_ARGUMENT with a BadRequest detail, counted in ``grpc_server_handled_total``.

Each service runs with TLS on and a grants file that grants the test's client every method, so that every
request reaches the handlers. The counts of calls and statuses are printed (``-s``).
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from services.common.validation import MAX_CHARS
from tests.service.security.conftest import Pki
from tests.service.security.support import AUDIT, DESCRIPTORS, PURPOSE, Running, counted, start

PER_METHOD = 14  # structured hostile requests per method, plus the raw byte strings below
RAW = [
    b"\xff\xff\xff\xff",
    b"\x0a\x05\xff\xfe\xfd\xfc\xfb",  # field 1 as a string that is not UTF-8
    b"\x0a\xff\xff\xff\xff\x0f",  # a length prefix far past the end
    b"\x08",  # a truncated varint
    bytes(range(256)),
]
TOTALS: Counter[str] = Counter()


def grants_for_everything(path: Path) -> Path:
    methods = [f"{s.full_name}/{m.name}" for s in (*DESCRIPTORS.values(), AUDIT) for m in s.methods]
    path.write_text(
        '[clients.unknown-system]\norganisation = "fuzzer"\noutside = false\nmethods = [\n'
        + "".join(f'  "{m}",\n' for m in methods)
        + "]\n"
    )
    return path


@pytest.fixture(params=["identity", "residence", "permits"])
async def running(
    request: pytest.FixtureRequest,
    db_url: str,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Running]:
    service = await start(
        request.param, db_url, pki, monkeypatch, grants_for_everything(tmp_path / "grants.toml")
    )
    yield service
    await service.service.stop(0)


_STRINGS = [
    "",
    " ",
    "x" * (MAX_CHARS + 1),
    "好" * 3000,
    "11010519491231002X",
    "\u0000\u202e\ufeff",
    "-1",
    "9" * 40,
    "1900-02-30",
    "../../etc/passwd",
    "'; DROP TABLE audit_log; --",
]
_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
_UINTS = [0, 1, 2**32 - 1, 2**64 - 1]


def _value(rng: random.Random, field: FieldDescriptor, depth: int) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return rng.choice(_STRINGS)
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.choice([b"", b"\x00" * 10, bytes(range(256))])
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.choice([True, False])
    if t == FieldDescriptor.TYPE_ENUM:
        known = list(field.enum_type.values_by_number)
        return rng.choice([*known, 99, -5, 2**31 - 1])
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e308, float("inf"), float("nan")])
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice(_UINTS[:3])
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice(_UINTS)
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return rng.choice(_INTS[:5])
    return rng.choice(_INTS)


def _fill(rng: random.Random, message: Message, depth: int = 0) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = rng.choice(
            [0, -1, 2**63 - 1, -(2**63), -62_135_596_800, 253_402_300_799, 253_402_300_800, 1_500_000_000]
        )  # type: ignore[attr-defined]
        message.nanos = rng.choice([0, -1, 10**9, 999_999_999])  # type: ignore[attr-defined]
        return
    if descriptor.full_name == "google.protobuf.Struct":
        message.update({"a": rng.choice(["x", 1, None, [1, {"b": "y" * 500}]])})  # type: ignore[attr-defined]
        return
    if descriptor.full_name.startswith("google.protobuf.") or depth > 5:
        return
    oneofs_done: set[str] = set()
    for field in descriptor.fields:
        if rng.random() < 0.3:
            continue
        if field.containing_oneof is not None:
            if field.containing_oneof.name in oneofs_done:
                continue
            oneofs_done.add(field.containing_oneof.name)
        repeated = bool(field.is_repeated)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            container = getattr(message, field.name)
            key_field, value_field = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            for _ in range(rng.choice([1, 3])):
                key = _value(rng, key_field, depth)
                if value_field.message_type is not None:
                    _fill(rng, container[key], depth + 1)
                else:
                    container[key] = _value(rng, value_field, depth)
            continue
        count = rng.choice([1, 2, 1200]) if repeated else 1
        for _ in range(count if field.message_type is None or count < 5 else 3):
            if field.message_type is not None:
                target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                _fill(rng, target, depth + 1)
                if not repeated:
                    target.SetInParent()
            elif repeated:
                getattr(message, field.name).append(_value(rng, field, depth))
            else:
                with contextlib.suppress(ValueError, TypeError):  # a value the field's type cannot hold
                    setattr(message, field.name, _value(rng, field, depth))
        if count >= 5 and field.message_type is None:
            getattr(message, field.name).extend([_value(rng, field, depth) for _ in range(count)])


def _bad_request_fields(exc: grpc.aio.AioRpcError) -> list[str]:
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return []
    out = []
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [v.field for v in bad.field_violations]
    return out


async def _call(
    channel: grpc.aio.Channel, path: str, streaming: bool, body: bytes
) -> grpc.aio.AioRpcError | None:
    try:
        if streaming:
            stream = channel.unary_stream(path)(body, timeout=0.3, metadata=PURPOSE)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(path)(body, timeout=5, metadata=PURPOSE)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


async def test_no_method_answers_unknown_or_internal(running: Running, pki: Pki, capsys: Any) -> None:
    rng = random.Random(f"govhub-fuzz-{running.name}")  # bounded and repeatable
    services = [DESCRIPTORS[running.name], AUDIT]
    statuses: Counter[str] = Counter()
    failures: list[tuple[str, str, str]] = []
    undecodable = 0
    async with grpc.aio.secure_channel(running.target, pki.credentials("unknown-system")) as channel:
        for service in services:
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                request_type = message_factory.GetMessageClass(method.input_type)
                bodies: list[tuple[str, bytes]] = [("raw", raw) for raw in RAW]
                for _ in range(PER_METHOD):
                    message = request_type()
                    _fill(rng, message)
                    bodies.append(("message", message.SerializeToString()))
                for kind, body in bodies:
                    exc = await _call(channel, path, method.server_streaming, body)
                    code = "OK" if exc is None else exc.code().name
                    statuses[code] += 1
                    if code in ("UNKNOWN", "INTERNAL"):
                        failures.append((method.name, code, exc.details() if exc else ""))
                    raw_refused = kind == "raw" and code == "INVALID_ARGUMENT" and exc is not None
                    if raw_refused and "request" in _bad_request_fields(exc):  # type: ignore[arg-type]
                        undecodable += 1
    TOTALS.update(statuses)
    with capsys.disabled():
        print(f"\n{running.name}: {sum(statuses.values())} calls, statuses {dict(sorted(statuses.items()))}")
    assert not failures, failures[:10]
    # the raw byte strings that do not decode (most of them) are INVALID_ARGUMENT with a BadRequest detail
    assert undecodable >= len(services) * 3, undecodable
    handled = running.service.metrics.registry.get_sample_value  # type: ignore[union-attr]

    def refused() -> float:
        return sum(
            handled(
                "grpc_server_handled_total",
                {
                    "grpc_service": s.full_name,
                    "grpc_method": m.name,
                    "grpc_type": t,
                    "grpc_code": "INVALID_ARGUMENT",
                },
            )
            or 0
            for s in services
            for m in s.methods
            for t in ("unary", "server_stream")
        )

    total = await counted(refused, undecodable)
    assert total >= undecodable, (total, undecodable)


@pytest.fixture
async def residence(
    db_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Running]:
    service = await start(
        "residence", db_url, pki, monkeypatch, grants_for_everything(tmp_path / "grants.toml")
    )
    yield service
    await service.service.stop(0)


async def test_the_cases_of_the_issue(residence: Running, pki: Pki) -> None:
    """arrive_time.seconds = 2**63-1 (was INTERNAL), undecodable bytes (was UNKNOWN, uncounted) and a
    1 MB string on a read-only method (was accepted): INVALID_ARGUMENT naming the field, no handler run."""
    from govhub.residence.v1 import residence_pb2

    service = DESCRIPTORS["residence"]
    request = residence_pb2.RegisterAccommodationRequest(request_id="r-1")
    request.arrive_time.seconds = 2**63 - 1
    read = residence_pb2.GetPersonRequest(id_number="1" * 1_000_000)
    nul = residence_pb2.GetPersonRequest(id_number="11010519491231002\x00")  # PostgreSQL cannot store NUL
    async with grpc.aio.secure_channel(residence.target, pki.credentials("unknown-system")) as channel:
        for path, body, field in [
            (f"/{service.full_name}/RegisterAccommodation", request.SerializeToString(), "arrive_time"),
            (f"/{service.full_name}/GetPerson", b"\x0a\x02\xff\xfe", "request"),
            (f"/{service.full_name}/GetPerson", read.SerializeToString(), "id_number"),
            (f"/{service.full_name}/GetPerson", nul.SerializeToString(), "id_number"),
        ]:
            exc = await _call(channel, path, False, body)
            assert exc is not None and exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, exc)
            assert field in _bad_request_fields(exc), (path, _bad_request_fields(exc))
    assert residence.calls["RegisterAccommodation"] == residence.calls["GetPerson"] == 0
    sample = residence.service.metrics.registry.get_sample_value  # type: ignore[union-attr]
    labels = {"grpc_service": service.full_name, "grpc_type": "unary", "grpc_code": "INVALID_ARGUMENT"}
    refused = await counted(
        lambda: sample("grpc_server_handled_total", {**labels, "grpc_method": "GetPerson"}) or 0, 3
    )
    assert refused == 3
