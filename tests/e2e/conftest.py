"""The whole hub as real processes over real ports, started the way ``make run`` starts it."""

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

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Hub:
    base_url: str
    targets: dict[str, str]
    process: subprocess.Popen[str]
    log_path: Path
    var_dir: Path
    log_file: IO[str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

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


def start_hub(var_dir: Path, today: str = "2016-09-15", extra_env: dict[str, str] | None = None) -> Hub:
    ports = {name: free_port() for name in ("identity", "residence", "permits", "gateway")}
    log_path = var_dir / "hub.log"
    var_dir.mkdir(parents=True, exist_ok=True)
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
            return Hub(line.split()[1], targets, process, log_path, var_dir, log_file)
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
