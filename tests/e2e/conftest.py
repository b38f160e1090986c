"""The whole hub as real processes over real ports, started the way ``make run`` starts it: in plaintext
(the development default) or, with ``tls=True``, over mutual TLS with the grants enforced, exactly as
``make certs && GOVHUB_TLS=on make run`` runs it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import pytest

from services.common.settings import TlsFiles

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120
# The client identity the tests use to play each department's back office and production centre
# (approve, mark produced, ...) over mutual TLS: granted every department method, in the test's grants
# file only. The hub's own processes keep exactly the grants of services/common/grants.toml.
BACK_OFFICE = "e2e-back-office"
# What a test module parametrizes a hub over: plaintext, and mutual TLS with every grant enforced.
TRANSPORTS = (pytest.param(False, id="plaintext"), pytest.param(True, id="tls"))


# Ports for the hubs' servers come from below the kernel's ephemeral range (32768-60999 here): a port the
# kernel hands out for bind(0) is also what it hands the next outgoing connection (a gRPC client, a
# PostgreSQL connection of another test) as its local port, which then took a hub's port before the hub
# bound it. Each xdist worker has its own block, so two workers never pick the same port.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORTS = iter(range(20_000 + 1_000 * _WORKER + random.randrange(500), 20_000 + 1_000 * (_WORKER + 1)))


def free_port() -> int:
    """A port no process listens on, from this worker's block (see `_PORTS`)."""
    for port in _PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("this test worker has used up its block of ports")


@dataclass
class Hub:
    base_url: str
    targets: dict[str, str]
    process: subprocess.Popen[str]
    log_path: Path
    var_dir: Path
    log_file: IO[str]
    # The back office's client certificate when the hub runs mutual TLS (None: plaintext).
    back_office: TlsFiles | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def channel(self, department: str) -> grpc.aio.Channel:
        """A channel to a department as its back office: mutual TLS when the hub runs it."""
        return department_channel(self.targets[department], self.back_office)

    def refusals_of_access(self) -> list[str]:
        """Log lines where a department refused a call for want of a grant: an operator's configuration
        error, never expected of the hub's own calls."""
        return [line for line in self.log().splitlines() if "NOT_GRANTED" in line]

    def token(self, role: str, sub: str, **claims: str) -> str:
        """A bearer token signed with this hub's development secret."""
        return mint_token(self.var_dir, role, sub, **claims)

    def citizen(self, id_number: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token('citizen', f'citizen-{id_number[-4:]}', person=id_number)}"
        }


def quiet_port() -> int:
    """A free port below the kernel's ephemeral range, for a listener bound late in a process's start
    (the metrics ports): a port from ``free_port`` may meanwhile become the source port of one of the
    hub's own outgoing connections."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low > 20000:
        for _ in range(50):
            port = random.randrange(20000, low)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    return free_port()


def mint_token(var_dir: Path, role: str, sub: str, **claims: str) -> str:
    from gateway.auth import ensure_dev_secret, mint

    return mint(ensure_dev_secret(var_dir / "dev-jwt-secret"), role=role, sub=sub, **claims)


def department_channel(target: str, tls: TlsFiles | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target)
    from services.common.tls import channel_credentials

    return grpc.aio.secure_channel(target, channel_credentials(tls))


def tls_env(var_dir: Path) -> tuple[dict[str, str], TlsFiles]:
    """Mutual TLS for a hub under `var_dir`: a development PKI written with ``services.common.certs``
    into ``<var_dir>/certs`` (plus the back office's client certificate), the shared audit key, and a
    grants file that adds the back office to ``services/common/grants.toml``. Returns the environment
    (every certificate path set explicitly, for every process) and the back office's TLS files."""
    from services.common import certs
    from services.common.audit import write_audit_key
    from services.common.settings import CALLERS, DEFAULT_GRANTS_FILE, SERVICES

    directory = var_dir / "certs"
    certs.write_dev_pki(directory, clients=(*certs.CLIENT_NAMES, BACK_OFFICE))
    audit_key = var_dir / "audit.key"
    write_audit_key(audit_key)
    grants = var_dir / "grants.toml"
    grants.write_text(
        DEFAULT_GRANTS_FILE.read_text(encoding="utf-8") + _back_office_grants(), encoding="utf-8"
    )
    env = {
        "GOVHUB_TLS": "on",
        "GOVHUB_TLS_DIR": str(directory),
        "GOVHUB_TLS_CA": str(directory / "ca.crt"),
        "GOVHUB_GRANTS_FILE": str(grants),
        "GOVHUB_AUDIT_KEY_FILE": str(audit_key),
    }
    for service in SERVICES:
        env[f"GOVHUB_{service.upper()}_TLS_CERT"] = str(directory / f"{service}.crt")
        env[f"GOVHUB_{service.upper()}_TLS_KEY"] = str(directory / f"{service}.key")
    for caller in CALLERS:
        env[f"GOVHUB_{caller.upper()}_TLS_CLIENT_CERT"] = str(directory / "clients" / f"{caller}.crt")
        env[f"GOVHUB_{caller.upper()}_TLS_CLIENT_KEY"] = str(directory / "clients" / f"{caller}.key")
    clients = directory / "clients"
    return env, TlsFiles(directory / "ca.crt", clients / f"{BACK_OFFICE}.crt", clients / f"{BACK_OFFICE}.key")


def _back_office_grants() -> str:
    from govhub.identity.v1 import identity_pb2
    from govhub.permits.v1 import permits_pb2
    from govhub.residence.v1 import residence_pb2

    methods = [
        f"{service.full_name}/{method.name}"
        for module in (identity_pb2, residence_pb2, permits_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]
    listed = "".join(f'  "{m}",\n' for m in methods)
    return (
        f"\n[clients.{BACK_OFFICE}]\n"
        'organisation = "the departments\' back offices (end-to-end tests)"\n'
        f"outside = false\nmethods = [\n{listed}]\n"
    )


def hub_env(
    var_dir: Path, ports: dict[str, int], today: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a hub on `ports`; each service's metrics port is a free one too (or
    ``ports["<service>-metrics"]``), so hubs running side by side do not collide. `extra` goes last.
    An empty `today` leaves GOVHUB_TODAY out: the hub runs on the real date."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    if today:
        env["GOVHUB_TODAY"] = today
    env.update(
        GOVHUB_VAR_DIR=str(var_dir),
        GOVHUB_LOG_FORMAT="json",
        GOVHUB_SEED_HOUSEHOLDS="40",
        GOVHUB_IDENTITY_LISTEN=f"127.0.0.1:{ports['identity']}",
        GOVHUB_RESIDENCE_LISTEN=f"127.0.0.1:{ports['residence']}",
        GOVHUB_PERMITS_LISTEN=f"127.0.0.1:{ports['permits']}",
        GOVHUB_GATEWAY_LISTEN=f"127.0.0.1:{ports['gateway']}",
    )
    for name in ("identity", "residence", "permits"):
        metrics_port = ports.get(f"{name}-metrics") or quiet_port()
        env[f"GOVHUB_{name.upper()}_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    env.update(extra or {})
    return env


def start_hub(
    var_dir: Path, today: str = "2016-09-15", extra_env: dict[str, str] | None = None, *, tls: bool = False
) -> Hub:
    """The hub under `var_dir`; with `tls` over mutual TLS (``tls_env``), grants enforced."""
    ports = {name: free_port() for name in ("identity", "residence", "permits", "gateway")}
    log_path = var_dir / "hub.log"
    var_dir.mkdir(parents=True, exist_ok=True)
    back_office = None
    if tls:
        secure, back_office = tls_env(var_dir)
        extra_env = {**secure, **(extra_env or {})}
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.launcher"],
        cwd=ROOT,
        env=hub_env(var_dir, ports, today, extra_env),
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        log_file.write(line)
        log_file.flush()
        if line.startswith("READY "):
            targets = {n: f"127.0.0.1:{p}" for n, p in ports.items() if n != "gateway"}
            return Hub(line.split()[1], targets, process, log_path, var_dir, log_file, back_office)
    stop_hub(process)
    process.stdout.close()
    log_file.close()
    raise AssertionError(f"the hub did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def stop_hub(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError("the launcher did not stop within 40 s") from None


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = start_hub(tmp_path_factory.mktemp("hub"))
    yield running
    code = stop_hub(running.process)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.log_file.close()
    assert code == 0, running.log()[-4000:]
