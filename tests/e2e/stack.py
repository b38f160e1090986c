"""A hub whose processes a test can kill and restart one by one (the fault tests), started with the same
commands and settings that ``make run`` uses; with ``tls=True`` over mutual TLS (``conftest.tls_env``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import TlsFiles
from services.common.tls import channel_credentials
from tests.e2e.conftest import ROOT, department_channel, free_port, hub_env, tls_env

SERVICES = ("identity", "residence", "permits")


def _grpc_serving(target: str, tls: TlsFiles | None = None) -> bool:
    channel = grpc.secure_channel(target, channel_credentials(tls)) if tls else grpc.insecure_channel(target)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


class Stack:
    def __init__(
        self, var_dir: Path, today: str = "2016-09-15", *, tls: bool = False, **extra_env: str
    ) -> None:
        self.var_dir = var_dir
        self.ports = {name: free_port() for name in (*SERVICES, "gateway")}
        self.env = hub_env(var_dir, self.ports, today)
        # The back office's client certificate under mutual TLS (None: plaintext).
        self.back_office: TlsFiles | None = None
        if tls:
            var_dir.mkdir(parents=True, exist_ok=True)
            secure, self.back_office = tls_env(var_dir)
            self.env.update(secure)
        self.env.update(extra_env)
        self.env.update(
            GOVHUB_GATEWAY_IDENTITY_TARGET=self.target("identity"),
            GOVHUB_GATEWAY_RESIDENCE_TARGET=self.target("residence"),
            GOVHUB_GATEWAY_PERMITS_TARGET=self.target("permits"),
            GOVHUB_IDENTITY_RESIDENCE_TARGET=self.target("residence"),
            GOVHUB_GATEWAY_RETRY_BASE="0.2",
            GOVHUB_GATEWAY_RETRY_MAX="1",
            # Quick retries, but enough of them (about a minute) that a department restarting slowly on a
            # loaded machine is still waited for rather than the step given up (NEEDS_ATTENTION).
            GOVHUB_GATEWAY_MAX_ATTEMPTS="60",
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.gateways: list[tuple[subprocess.Popen[bytes], int]] = []
        self.logs: list[Path] = []
        var_dir.mkdir(parents=True, exist_ok=True)

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def channel(self, name: str) -> grpc.aio.Channel:
        """A channel to a department as its back office: mutual TLS when the stack runs it."""
        return department_channel(self.target(name), self.back_office)

    def _spawn(self, label: str, module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.var_dir / f"{label}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=out)

    def seed(self, households: int = 30) -> None:
        subprocess.run(
            [sys.executable, "-m", "services.residence.seed", "--households", str(households)],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self, name: str) -> None:
        self.procs[name] = self._spawn(name, f"services.{name}", self.env)
        self._wait(lambda: _grpc_serving(self.target(name), self.back_office), name)

    def start_gateway(self, port: int | None = None) -> str:
        port = port or self.ports["gateway"]
        env = {**self.env, "GOVHUB_GATEWAY_LISTEN": f"127.0.0.1:{port}"}
        proc = self._spawn(f"gateway-{port}", "gateway", env)
        self.gateways.append((proc, port))
        self._wait(lambda: _http_ok(port), f"gateway on {port}")
        return f"http://127.0.0.1:{port}"

    def start_all(self) -> str:
        """Every department at once, as ``make run`` starts them, then the gateway once they serve."""
        for name in SERVICES:
            self.procs[name] = self._spawn(name, f"services.{name}", self.env)
        for name in SERVICES:
            self._wait(lambda name=name: _grpc_serving(self.target(name), self.back_office), name)
        return self.start_gateway()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def kill_gateway(self, port: int | None = None, sig: int = signal.SIGKILL) -> None:
        port = port or self.ports["gateway"]
        for entry in list(self.gateways):
            proc, p = entry
            if p == port and proc.poll() is None:
                proc.send_signal(sig)
                proc.wait(timeout=30)
                self.gateways.remove(entry)

    def _wait(self, ready: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"{what} did not become ready:\n" + self.tail())

    def tail(self, lines: int = 40) -> str:
        out = []
        for log in self.logs[-4:]:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        running = [p for p, _ in self.gateways] + list(self.procs.values())
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self.gateways.clear()
        self.procs.clear()
