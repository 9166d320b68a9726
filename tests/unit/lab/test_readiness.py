"""A process the lab waits for is ready when it answers, not when its socket file exists."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

from natlab.control_socket import ask
from natlab.errors import NatlabError
from natlab.lab.routers import Daemon, NatDataplane

LISTEN_AFTER = 0.5  # seconds between bind() and listen()


def slow_server(path, bound: threading.Event, listened: threading.Event) -> None:
    """Binds, waits, then listens and answers pings: a daemon in the middle of starting."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    bound.set()
    time.sleep(LISTEN_AFTER)
    server.listen(8)
    listened.set()
    server.settimeout(5.0)
    with server:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.makefile("rb").readline()
                connection.sendall(json.dumps({"ok": True}).encode() + b"\n")


@pytest.fixture
def stand_in():
    """A child process standing in for the daemon's pid (alive throughout)."""
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


def test_waiting_for_a_daemon_waits_until_it_answers(tmp_path, stand_in):
    config = tmp_path / "r.json"
    bound, listened = threading.Event(), threading.Event()
    path = config.with_suffix(".sock")
    threading.Thread(target=slow_server, args=(path, bound, listened), daemon=True).start()
    assert bound.wait(5)
    # The race: the socket file is there, but connecting is refused (the old test of readiness).
    assert path.exists() and not listened.is_set()
    with pytest.raises(NatlabError, match="ConnectionRefusedError"):
        ask(path, {"op": "ping"}, who="the router daemon", timeout=1.0)
    NatDataplane().wait_ready([Daemon("r", stand_in.pid, config)], timeout=5.0)
    assert listened.is_set()
    ask(path, {"op": "ping"}, who="the router daemon")


def test_a_daemon_that_never_answers_is_reported_not_waited_for_forever(tmp_path, stand_in):
    config = tmp_path / "r.json"
    unready = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unready.bind(str(config.with_suffix(".sock")))  # bound, never listening
    with unready, pytest.raises(NatlabError, match="did not start"):
        NatDataplane().wait_ready([Daemon("r", stand_in.pid, config)], timeout=0.5)
