"""Helpers of the security tests: start a department with TLS on and its handlers counted, call any
method generically from its descriptor."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import select

from govhub.audit.v1 import audit_pb2
from govhub.identity.v1 import identity_pb2
from govhub.permits.v1 import permits_pb2
from govhub.residence.v1 import residence_pb2
from services.common import metadata as md
from services.common.access import AuditServicer
from services.common.clock import Clock
from services.common.db import dispose_engine, make_engine, session_factory
from services.common.grpcserver import GrpcService
from services.identity.residence import FakeHukouDirectory
from services.identity.server import build_server as build_identity
from services.identity.servicer import IdentityServicer
from services.identity.store import AuditEntry as IdentityAudit
from services.permits.server import build_server as build_permits
from services.permits.servicer import PermitsServicer
from services.permits.store import AuditEntry as PermitsAudit
from services.residence.server import build_server as build_residence
from services.residence.servicer import ResidenceServicer
from services.residence.store import AuditEntry as ResidenceAudit
from tests.service.security.conftest import Pki, count_handlers, service_settings

AUDIT = audit_pb2.DESCRIPTOR.services_by_name["AuditService"]
DESCRIPTORS = {
    "permits": permits_pb2.DESCRIPTOR.services_by_name["PermitsService"],
    "identity": identity_pb2.DESCRIPTOR.services_by_name["IdentityService"],
    "residence": residence_pb2.DESCRIPTOR.services_by_name["ResidenceService"],
}
PURPOSE = ((md.PURPOSE, "security test"),)


@dataclass
class Running:
    name: str
    service: GrpcService
    calls: Counter[str]
    db_url: str
    audit_model: type

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    async def audit_rows(self) -> list[Any]:
        engine = make_engine(self.db_url, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                model = self.audit_model
                return list((await session.scalars(select(model).order_by(model.sequence))).all())
        finally:
            await dispose_engine(engine)


async def start(
    name: str,
    db_url: str,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    grants_file: Path | None = None,
    hukou: FakeHukouDirectory | None = None,
) -> Running:
    """The department `name` with TLS on, its handler invocations counted (AuditService's included)."""
    calls = count_handlers(monkeypatch, AuditServicer, AUDIT)
    settings = service_settings(name, db_url, pki, grants_file)
    if name == "permits":
        count_handlers(monkeypatch, PermitsServicer, DESCRIPTORS["permits"], calls)
        service = await build_permits(settings)
        model: type = PermitsAudit
    elif name == "residence":
        count_handlers(monkeypatch, ResidenceServicer, DESCRIPTORS["residence"], calls)
        service = await build_residence(settings)
        model = ResidenceAudit
    else:
        count_handlers(monkeypatch, IdentityServicer, DESCRIPTORS["identity"], calls)
        service = await build_identity(
            settings, clock=Clock(settings.common.today), hukou=hukou or FakeHukouDirectory()
        )
        model = IdentityAudit
    await service.start()
    return Running(name, service, calls, db_url, model)


def error_reason(exc: grpc.aio.AioRpcError) -> str:
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return ""
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


async def call(
    channel: grpc.aio.Channel, service: Any, method: Any, request: Any = None, metadata: Any = PURPOSE
) -> tuple[grpc.StatusCode, str]:
    """Call `method` of `service` (descriptors) with `request` (default: an empty one); the status code
    and the ErrorInfo reason. A server stream is read for at most 0.3 s (DEADLINE_EXCEEDED: it ran)."""
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    path = f"/{service.full_name}/{method.name}"
    request = request if request is not None else request_type()
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )(request, timeout=0.3, metadata=metadata)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(
                path,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )(request, timeout=5, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), error_reason(exc)
    return grpc.StatusCode.OK, ""


async def counted(read: Callable[[], float], at_least: float, timeout: float = 5.0) -> float:
    """`read()` once it reaches `at_least` (or as it stands after `timeout`). A refused call is counted by
    the metrics interceptor after grpc.aio has already sent its status (``context.abort`` sends it, then
    raises through the interceptors), so the client can hear the answer a moment before it is counted."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value >= at_least or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.01)
