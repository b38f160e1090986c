"""`make run` and ports: a port a server holds is refused at once, naming it; a port held only by a
connection (a closing one lingers in TIME_WAIT for a minute, e.g. right after `make test`) is waited for."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from deploy import launcher


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_a_port_a_server_holds_is_taken_without_waiting(
    server: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_waiting(_seconds: float) -> None:
        raise AssertionError("waited for a port a server holds")

    monkeypatch.setattr(launcher.time, "sleep", no_waiting)
    port = server.getsockname()[1]
    assert launcher.taken_ports([("127.0.0.1", port, "GOVHUB_X_LISTEN")], wait=30) == [
        ("127.0.0.1", port, "GOVHUB_X_LISTEN")
    ]


def test_a_port_held_by_a_connection_is_waited_for_until_it_is_free(
    server: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    port = client.getsockname()[1]  # an ephemeral port, held by the connection: not bindable
    assert not launcher.bindable("127.0.0.1", port)

    def close() -> None:
        client.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )  # a reset: no TIME_WAIT
        client.close()

    timer = threading.Timer(0.3, close)
    timer.start()
    try:
        assert launcher.taken_ports([("127.0.0.1", port, "GOVHUB_X_LISTEN")], wait=30) == []
    finally:
        timer.join()
        accepted.close()
    assert f"port {port} on 127.0.0.1 is held by a closing connection" in capsys.readouterr().out


def test_a_port_still_held_when_the_wait_ends_is_taken(server: socket.socket) -> None:
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    port = client.getsockname()[1]
    try:
        assert launcher.taken_ports([("127.0.0.1", port, "S")], wait=0.6) == [("127.0.0.1", port, "S")]
    finally:
        client.close()
        accepted.close()
