"""``make run``'s launcher: a taken port is a clear error naming the setting that moves it."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, free_port, hub_env

pytestmark = pytest.mark.e2e


def test_a_taken_port_names_the_port_and_the_setting(tmp_path: object) -> None:
    ports = {name: free_port() for name in ("identity", "residence", "permits", "gateway")}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["residence"]))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "deploy.launcher"],
            cwd=ROOT,
            env=hub_env(tmp_path, ports, "2016-09-15"),  # type: ignore[arg-type]
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {ports['residence']}" in result.stderr
    assert "GOVHUB_RESIDENCE_LISTEN" in result.stderr
