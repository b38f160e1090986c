"""The hub under bench: started as ``make run`` starts it (``python -m deploy.launcher``) in a temporary
var dir on free loopback ports, on SQLite or on databases of its own on the local PostgreSQL server
(created for the run and dropped after it), with the seeded population and GOVHUB_TODAY pinned."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from services.common.db import dispose_engine, make_engine

ROOT = Path(__file__).resolve().parents[2]
TODAY = "2016-12-30"
START_TIMEOUT = 120.0
PROCESSES = ("identity", "residence", "permits", "gateway")
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    command: list[str], env: dict[str, str], log: Path, ready_line: str | None, timeout: float = START_TIMEOUT
) -> subprocess.Popen[str]:
    out = log.open("w")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if ready_line else out,
        stderr=out,
        text=True,
        start_new_session=True,
    )
    if ready_line:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            out.write(line)
            out.flush()
            if line.startswith(ready_line):
                return process
        stop(process)
        raise SystemExit(f"bench: {command[2]} did not start; see {log}")
    return process


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def _admin(url: str, sql: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await dispose_engine(engine)


def rss_mb(pid: int) -> float:
    """The resident set of a process in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by each thread of a process, by "name/tid"."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            found[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def children(pid: int) -> dict[str, int]:
    """The hub's processes by name (identity, residence, permits, gateway), children of the launcher."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                module = cmd[2].decode() if len(cmd) > 2 else ""
                name = module.removeprefix("services.")
                if name in PROCESSES:
                    found[name] = int(child)
    return found


@dataclass
class Hub:
    """A running hub: its URLs and targets, its process ids, the var dir and the residence database."""

    tmp: Path
    database: str  # sqlite | postgresql
    households: int
    postgres_url: str = DEFAULT_POSTGRES
    ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)  # the departments' Prometheus ports
    urls: dict[str, str] = field(default_factory=dict)  # per process (and the bare baseline), a database
    process: subprocess.Popen[str] | None = None
    pg_names: list[str] = field(default_factory=list)

    @property
    def var(self) -> Path:
        return self.tmp / "var"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
        env.update(
            GOVHUB_VAR_DIR=str(self.var),
            GOVHUB_TODAY=TODAY,
            GOVHUB_LOG_FORMAT="json",
            GOVHUB_LOG_LEVEL="warning",
            GOVHUB_SEED_HOUSEHOLDS=str(self.households),
            GOVHUB_GATEWAY_PROGRESS_RATE="1000000",
            GOVHUB_GATEWAY_PROGRESS_BURST="1000000",
        )
        for name in PROCESSES:
            env[f"GOVHUB_{name.upper()}_LISTEN"] = self.target(name)
            if name in self.metrics_ports:  # not the defaults: another hub on this machine may hold them
                env[f"GOVHUB_{name.upper()}_METRICS_LISTEN"] = f"127.0.0.1:{self.metrics_ports[name]}"
            if self.database == "postgresql":
                env[f"GOVHUB_{name.upper()}_DATABASE_URL"] = self.urls[name]
        return env

    def database_url(self, name: str) -> str:
        return self.urls[name]

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in PROCESSES}
        self.metrics_ports = {name: free_port() for name in PROCESSES if name != "gateway"}
        if self.database == "postgresql":
            suffix = uuid.uuid4().hex[:10]
            base = self.postgres_url.rsplit("/", 1)[0]
            for name in (*PROCESSES, "bare"):
                db = f"govhub_bench_{name}_{suffix}"
                asyncio.run(_admin(self.postgres_url, f'CREATE DATABASE "{db}"'))
                self.pg_names.append(db)
                self.urls[name] = f"{base}/{db}"
        else:
            self.urls = {
                name: f"sqlite+aiosqlite:///{self.var / f'{name}.db'}" for name in (*PROCESSES, "bare")
            }
        # A large population takes minutes to load: the launcher's own seeding has no deadline here.
        timeout = START_TIMEOUT + self.households / 100
        self.process = start(
            [sys.executable, "-m", "deploy.launcher"], self.env(), self.tmp / "hub.log", "READY ", timeout
        )

    def pids(self) -> dict[str, int]:
        assert self.process is not None
        return children(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
        for db in self.pg_names:
            asyncio.run(_admin(self.postgres_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        self.pg_names.clear()


async def seeded_people(residence_url: str, count: int) -> list[tuple[str, str]]:
    """Registered adult Han residents whose hukou is outside Shanghai (id_number, name), spread over the
    whole register (every k-th of them) so that a large register is read all over, not at its start."""
    engine = make_engine(residence_url, pool_size=1)
    where = (
        "FROM people p JOIN households h ON h.id = p.household_id "
        "WHERE p.status = 'REGISTERED' AND h.region_code NOT LIKE '31%' AND p.ethnicity = '汉' "
        "AND p.birth_date < '1995-01-01'"
    )
    try:
        async with engine.connect() as conn:
            total = await conn.scalar(text(f"SELECT count(*) {where}")) or 0
            step = max(1, total // max(1, count))
            rows = (
                await conn.execute(
                    text(
                        f"SELECT id_number, name FROM (SELECT p.id_number, p.name, "
                        f"row_number() OVER (ORDER BY p.id_number) AS n {where}) AS ranked "
                        "WHERE (n - 1) % :step = 0 ORDER BY n LIMIT :count"
                    ),
                    {"step": step, "count": count},
                )
            ).all()
    finally:
        await dispose_engine(engine)
    return [(r[0], r[1]) for r in rows]
