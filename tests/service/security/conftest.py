"""Mutual TLS, grants and the audit trail on real servers (issue 8).

A development PKI is generated once per module into a temporary directory (ECDSA keys: fast), plus the
bad certificates of the handshake tests: self-signed, expired, and from another CA. Every server here runs
with TLS on and the real grants file, and counts its handler invocations, so a test can show that a
refused call never reached a handler. Every log line of these tests is rendered by the production logging
configuration into a buffer that is scanned for raw ID and passport numbers after each test.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from services.common import certs
from services.common.audit import load_key
from services.common.logging import configure_logging
from services.common.settings import CommonSettings, SecuritySettings, ServiceSettings, TlsFiles

CLIENTS = ("gateway", "identity", "social-security", "civil-affairs", "unknown-system")
TODAY = dt.date(2017, 4, 10)

# Every personal number the tests in this directory send: none may appear in a log line or audit entry.
ID_NUMBERS = ("120101198503120115", "410105199007080221", "11010519491231002X")
PASSPORT_NUMBERS = ("E98765432", "K33445566")
RAW_NUMBERS = ID_NUMBERS + PASSPORT_NUMBERS


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: certs.Issued
    bad: dict[str, certs.Issued]  # self-signed, expired, other-ca (all CN "gateway")

    def client(self, name: str) -> tuple[bytes, bytes]:
        base = self.directory / "clients" / name
        return base.with_suffix(".key").read_bytes(), base.with_suffix(".crt").read_bytes()

    def server_tls(self, service: str) -> TlsFiles:
        return TlsFiles(
            self.directory / "ca.crt", self.directory / f"{service}.crt", self.directory / f"{service}.key"
        )

    def client_tls(self, name: str) -> TlsFiles:
        base = self.directory / "clients" / name
        return TlsFiles(self.directory / "ca.crt", base.with_suffix(".crt"), base.with_suffix(".key"))

    def credentials(self, client: str | None) -> grpc.ChannelCredentials:
        """Channel credentials presenting `client`'s certificate (a CLIENTS name or a `bad` key; None: no
        certificate at all)."""
        ca = self.ca.cert_pem
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=ca)
        if client in self.bad:
            issued = self.bad[client]
            return grpc.ssl_channel_credentials(ca, issued.key_pem, issued.cert_pem)
        key, cert = self.client(client)
        return grpc.ssl_channel_credentials(ca, key, cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("certs")
    certs.write_dev_pki(directory, clients=CLIENTS)
    certs.write_audit_key(directory.parent / "audit.key")
    ca = certs.load_ca(directory)
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    bad = {
        "self-signed": certs.issue(None, "gateway", server=False),
        "expired": certs.issue_client(
            ca, "gateway", not_before=long_ago, not_after=long_ago + dt.timedelta(days=365)
        ),
        "other-ca": certs.issue_client(certs.make_ca("someone else's CA"), "gateway"),
    }
    return Pki(directory, ca, bad)


def security_settings(pki: Pki, service: str, grants_file: Path | None = None) -> SecuritySettings:
    kwargs: dict[str, Any] = {}
    if grants_file is not None:
        kwargs["grants_file"] = grants_file
    return SecuritySettings(
        tls=True,
        server_tls=pki.server_tls(service),
        client_tls=pki.client_tls(service) if service == "identity" else None,
        audit_key_file=pki.directory.parent / "audit.key",
        **kwargs,
    )


def service_settings(service: str, db_url: str, pki: Pki, grants_file: Path | None = None) -> ServiceSettings:
    return ServiceSettings(
        service=service,
        host="127.0.0.1",
        port=0,
        database_url=db_url,
        common=CommonSettings(today=TODAY),
        health_interval=60.0,
        security=security_settings(pki, service, grants_file),
    )


def audit_key(pki: Pki) -> bytes:
    return load_key(pki.directory.parent / "audit.key", create=False)


def count_handlers(
    monkeypatch: pytest.MonkeyPatch,
    servicer_type: type,
    service_descriptor: Any,
    calls: Counter[str] | None = None,
) -> Counter[str]:
    """Count, by method name, every call that reaches a handler of `servicer_type` (patch before the
    server is built)."""
    calls = Counter() if calls is None else calls
    for method in service_descriptor.methods:
        original = getattr(servicer_type, method.name)
        name = method.name
        if method.server_streaming:

            def wrap_stream(original: Callable[..., Any] = original, name: str = name) -> Callable[..., Any]:
                async def counted(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
                    calls[name] += 1
                    async for item in original(self, request, context):
                        yield item

                return counted

            monkeypatch.setattr(servicer_type, name, wrap_stream())
        else:

            def wrap_unary(original: Callable[..., Any] = original, name: str = name) -> Callable[..., Any]:
                async def counted(self: Any, request: Any, context: Any) -> Any:
                    calls[name] += 1
                    return await original(self, request, context)

                return counted

            monkeypatch.setattr(servicer_type, name, wrap_unary())
    return calls


# -- every log line of these tests, rendered as in production, scanned for raw numbers ----------------------


@pytest.fixture(autouse=True)
def rendered_logs() -> Iterator[io.StringIO]:
    configure_logging("security-tests", "json", "info")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    leaked = [raw for raw in RAW_NUMBERS if raw in text or raw.lower() in text]
    assert not leaked, f"raw personal numbers in the log output: {leaked}"
