"""A STUN server on loopback, for the endpoints' tests that talk over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from natlab.endpoints.stun_server import StunServer

# Both are loopback on Linux: one process runs a full 2x2 server on free ports.
LOOPBACK = (ip_address("127.0.0.1"), ip_address("127.0.0.2"))


@pytest.fixture
def server() -> Iterator[StunServer]:
    with StunServer(LOOPBACK, (0, 0)) as running:
        thread = threading.Thread(target=running.serve)
        thread.start()
        try:
            yield running
        finally:
            running.stop()
            thread.join(timeout=5)
    assert not thread.is_alive()
