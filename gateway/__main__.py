"""``python -m gateway``: the one window over HTTP."""

from __future__ import annotations

import os
import socket
import sys

import structlog

from gateway.app import create_app, run
from services.common.logging import configure_logging
from services.common.settings import GatewaySettings, SettingsError
from services.common.tracing import configure_tracing


def main() -> int:
    try:
        settings = GatewaySettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging("gateway", settings.common.log_format, settings.common.log_level)
    log = structlog.get_logger("govhub.gateway")
    tracer_provider = configure_tracing(
        "gateway", settings.common.trace_exporter, file=settings.common.trace_file
    )
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError:
        log.error(
            "cannot listen; port in use?",
            listen=f"{settings.host}:{settings.port}",
            hint=f"set {settings.listen_setting} to move it",
        )
        print(
            f"gateway: cannot listen on {settings.host}:{settings.port} (port in use?); "
            f"set {settings.listen_setting} to move it",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings, tracer_provider=tracer_provider)
    log.info("serving", listen=f"http://{settings.host}:{settings.port}")
    try:
        run(app, sock, settings.shutdown_grace)
    except SettingsError as exc:  # e.g. a database behind the migrations this release knows
        log.error("cannot start", error=str(exc))
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    finally:
        tracer_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
