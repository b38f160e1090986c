"""``make run``: start the whole hub on the embedded default and stop it cleanly.

Brings the four databases to their schema as each process would at start (``python -m deploy.migrate
prepare``, in a process of its own: the services then find them at head and never load Alembic), loads
the demo population on first start (and on the first start on each other residence database), starts
identity, residence, permits and the gateway as child processes (SQLite under ``var/``), waits until
every one is healthy, prints where to go, and on Ctrl-C or SIGTERM stops them all: children get SIGTERM
and their grace period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import GatewaySettings, ServiceSettings, SettingsError, TlsFiles
from services.common.tls import aio_channel

SERVICES = ("identity", "residence", "permits")
STOP_TIMEOUT = 15.0
READY_TIMEOUT = 60.0


# How long a port held by a connection (not by a server) is waited for: a connection closed on this
# side stays in TIME_WAIT for 60 s on Linux, and keeps its local port bound meanwhile. The default ports
# lie in the kernel's ephemeral range, so right after `make test` (thousands of loopback connections)
# one of them can be held so for a while.
PORT_WAIT = 65.0


def bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def served(host: str, port: int) -> bool:
    """Whether a server accepts connections on the port (another hub, or another program)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def taken_ports(ports: list[tuple[str, int, str]], wait: float = PORT_WAIT) -> list[tuple[str, int, str]]:
    """The (host, port, setting) of `ports` that cannot be bound: at once for a port a server holds;
    a port held only by a connection is waited for, at most `wait` seconds."""
    deadline = time.monotonic() + wait
    told: set[int] = set()
    while True:
        taken = [p for p in ports if not bindable(p[0], p[1])]
        if not taken or any(served(host, port) for host, port, _ in taken) or time.monotonic() >= deadline:
            return taken
        for host, port, _ in taken:
            if port not in told:
                told.add(port)
                print(
                    f"launcher: port {port} on {host} is held by a closing connection; "
                    f"waiting for it (at most {wait:.0f} s)",
                    flush=True,
                )
        time.sleep(0.5)


async def grpc_serving(target: str, tls: TlsFiles | None = None) -> bool:
    """The standard health check, over mutual TLS (as the gateway) when GOVHUB_TLS is on."""
    async with aio_channel(target, tls) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def http_ok(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET /healthz HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2)
        return b" 200 " in line
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_ready(
    targets: dict[str, str], gateway: GatewaySettings, procs: dict[str, subprocess.Popen[bytes]]
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(
                    f"launcher: {name} exited with status {proc.returncode} while starting", file=sys.stderr
                )
                return False
        checks = await asyncio.gather(
            *(grpc_serving(t, gateway.security.client_tls) for t in targets.values()),
            http_ok(gateway.host, gateway.port),
        )
        if all(checks):
            return True
        await asyncio.sleep(0.25)
    print("launcher: not every process became healthy in time", file=sys.stderr)
    return False


def _digest(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()


def seeded(marker: Path, residence_url: str) -> bool:
    """Whether the demo population was loaded into this residence database: `marker` lists a digest of
    each database URL seeded from this var directory (not the URL, which may hold a password), so that
    pointing residence at another database (PostgreSQL after a first start on SQLite) loads it there too."""
    try:
        return _digest(residence_url) in marker.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return False


def mark_seeded(marker: Path, residence_url: str) -> None:
    with marker.open("a", encoding="utf-8") as out:
        out.write(_digest(residence_url) + "\n")


def stop_all(procs: dict[str, subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
    # The gateway first, so that it stops calling the departments.
    for name in ["gateway", *SERVICES]:
        proc = procs.get(name)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> int:
    env = dict(os.environ)
    try:
        services = {name: ServiceSettings.from_env(name, env) for name in SERVICES}
        gateway = GatewaySettings.from_env(env)
    except SettingsError as exc:
        print(f"launcher: {exc}", file=sys.stderr)
        return 2
    ports = [(s.host, s.port, s.listen_setting) for s in services.values()]
    taken = taken_ports([*ports, (gateway.host, gateway.port, gateway.listen_setting)])
    for host, port, setting in taken:
        print(f"launcher: port {port} on {host} is already in use; set {setting} to move it", file=sys.stderr)
    if taken:
        return 2
    var_dir = gateway.common.var_dir
    var_dir.mkdir(parents=True, exist_ok=True)
    prepared = subprocess.run([sys.executable, "-m", "deploy.migrate", "prepare"], env=env, check=False)
    if prepared.returncode != 0:  # deploy.migrate has said which database and what to run
        print("launcher: the databases are not ready", file=sys.stderr)
        return 1
    marker = var_dir / ".seeded"
    residence_url = services["residence"].database_url
    if not seeded(marker, residence_url):
        print("launcher: loading the demo population (first start on this database)", flush=True)
        command = [sys.executable, "-m", "services.residence.seed"]
        if env.get("GOVHUB_SEED_HOUSEHOLDS"):
            command += ["--households", env["GOVHUB_SEED_HOUSEHOLDS"]]
        loaded = subprocess.run(command, env=env, check=False)
        if loaded.returncode != 0:
            print("launcher: loading the demo population failed", file=sys.stderr)
            return 1
        mark_seeded(marker, residence_url)

    # Children ignore nothing: Ctrl-C reaches them from the terminal, SIGTERM is forwarded.
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    targets = {name: f"{s.host}:{s.port}" for name, s in services.items()}
    env.setdefault("GOVHUB_GATEWAY_IDENTITY_TARGET", targets["identity"])
    env.setdefault("GOVHUB_GATEWAY_RESIDENCE_TARGET", targets["residence"])
    env.setdefault("GOVHUB_GATEWAY_PERMITS_TARGET", targets["permits"])
    env.setdefault("GOVHUB_IDENTITY_RESIDENCE_TARGET", targets["residence"])
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env)
    procs["gateway"] = subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
    ready = asyncio.run(wait_ready(targets, gateway, procs)) if not stopping else False
    if not ready:
        stop_all(procs)
        return 0 if stopping else 1
    base = f"http://{gateway.host}:{gateway.port}"
    print(
        f"\ngovhub is up.\n"
        f"  gateway    {base}  (try {base}/api/v1/matters)\n"
        f"  hall       {base}/hall/  (online affairs hall, for residents)\n"
        f"  counter    {base}/counter/  (service-hall counter; back office: {base}/backoffice/)\n"
        + "".join(f"  {name:<10} {target}  (gRPC, reflection on)\n" for name, target in targets.items())
        + f"\n  curl -s {base}/api/v1/matters/id-card-renewal-cross-province\n"
        f"\nSee README.md for the walk-through. Press Ctrl-C to stop.\nREADY {base}\n",
        flush=True,
    )
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(
                    f"launcher: {name} exited unexpectedly (status {proc.returncode}); stopping",
                    file=sys.stderr,
                )
                stop_all(procs)
                return 1
        time.sleep(0.2)
    print("launcher: stopping", flush=True)
    stop_all(procs)
    print("launcher: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
