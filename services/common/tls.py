"""Mutual TLS for gRPC (docs/architecture.md, "Security"): server credentials that demand a client certificate
from the one trusted CA, channel credentials that present ours, and the peer's identity.

The client identity is the **subject common name (CN)** of the client certificate: the name the grants
file (``services/common/grants.toml``) uses. The handshake itself refuses a client with no certificate,
a self-signed one, an expired one or one from another CA, before any handler runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from services.common.settings import TlsFiles


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def aio_channel(
    target: str,
    tls: TlsFiles | None,
    *,
    interceptors: Sequence[Any] | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`: mutual TLS when `tls` is given, plaintext otherwise. Create it
    inside the running event loop. A department that was down is tried again soon (reconnect backoff
    0.2 s to 5 s, not gRPC's 1 s to 120 s), and callers pass ``wait_for_ready`` so that a call made
    while the channel reconnects waits within its deadline instead of failing at once."""
    merged = [*RECONNECT, *options]
    if tls is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors, options=merged)
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), interceptors=interceptors, options=merged
    )


RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The subject CN of the verified client certificate, or None (plaintext, or no certificate)."""
    auth = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    names = list(auth.get("x509_common_name") or [])
    if len(names) != 1:
        return None
    return str(names[0].decode("utf-8", "replace"))
