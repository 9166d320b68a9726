"""The STUN server and the discovery client over real UDP sockets, on loopback only.

127.0.0.1 and 127.0.0.2 are both loopback addresses on Linux, so one
process can run a full 2x2 server on free ports and a client against it.
No NAT stands in between, so discovery must see "open internet"; aioice's
STUN code (not ours) checks our answers, and the server runs once as the
process the lab starts, stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import cast

import aioice.stun
import pytest

from natlab.core.behaviour import Filtering, Mapping
from natlab.endpoints import discovery
from natlab.endpoints.discovery import LifetimeSearch, UdpProber, discover
from natlab.endpoints.stun_client import StunClient, Timing, resolve
from natlab.endpoints.stun_server import StunServer
from natlab.errors import NatlabError
from natlab.stun import (
    CHANGE_REQUEST,
    ERROR_CODE,
    RESPONSE_ORIGIN,
    XOR_MAPPED_ADDRESS,
    Address,
    ChangeRequest,
    Grid,
)
from natlab.stun.attributes import IPAddress

from .conftest import LOOPBACK

FAST = Timing(tries=2, interval=0.05)


@pytest.fixture
def client() -> Iterator[StunClient]:
    with StunClient.open(Address.of("127.0.0.1", 0)) as opened:
        yield opened


def primary(server: StunServer) -> Address:
    return server.grid.endpoints[0]


def test_server_listens_on_the_whole_grid(server: StunServer) -> None:
    grid = server.grid
    assert grid.addresses == LOOPBACK
    assert len(set(grid.ports)) == 2
    assert grid.ports[0] != 0


def test_discovery_without_a_nat_is_open_internet(server: StunServer) -> None:
    with UdpProber.towards(primary(server)) as prober:
        prober.sleep = lambda _seconds: None  # the lifetime test must not wait here
        report = discover(prober, primary(server), lifetime=LifetimeSearch(30.0, 10.0))
    assert report.mapping is Mapping.ENDPOINT_INDEPENDENT
    assert report.filtering is Filtering.ENDPOINT_INDEPENDENT
    assert report.name == "open internet"
    assert report.mapped == report.local
    assert report.other == Address(LOOPBACK[1], server.grid.ports[1])
    assert report.hairpin is True
    assert report.lifetime is not None
    assert report.lifetime.as_json() == {"survives": 30.0, "expires": None}
    assert report.notes == ()


def test_discovery_cli_prints_json(server: StunServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert discovery.main(["--server", str(primary(server)), "--json", "--no-hairpin"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "open internet"
    assert printed["mapping"] == printed["filtering"] == "endpoint-independent"
    assert printed["hairpin"] is None
    assert printed["mapped"] == printed["local"]


@pytest.mark.parametrize(
    ("change", "column", "row"),
    [(ChangeRequest(True, True), 1, 1), (ChangeRequest(change_port=True), 0, 1)],
)
def test_change_request_is_answered_from_the_chosen_socket(
    server: StunServer, client: StunClient, change: ChangeRequest, column: int, row: int
) -> None:
    result = client.request(primary(server), CHANGE_REQUEST(change))
    assert result is not None
    response, source = result
    assert source == Address(server.grid.addresses[column], server.grid.ports[row])
    assert response.get(RESPONSE_ORIGIN) == source
    assert response.get(XOR_MAPPED_ADDRESS) == client.local


def test_garbage_is_counted_and_the_server_keeps_answering(
    server: StunServer, client: StunClient
) -> None:
    for junk in (b"", b"hello", b"\xff" * 20, b"\x00\x01\x00\x04" + bytes(16)):
        client.sock.sendto(junk, (str(primary(server).ip), primary(server).port))
    answer = client.binding(primary(server))
    assert answer is not None
    assert answer.mapped == client.local
    # Datagrams on one socket are read in order: the garbage was counted before the answer.
    assert server.counters.garbage == 4


def test_first_answer_wins_over_a_silent_server(server: StunServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.3", 0))
        mute = Address.of(*silent.getsockname())
        with StunClient.open(Address.of("127.0.0.1", 0), FAST) as client:
            answer = client.first_answer([mute, primary(server)])
            assert answer is not None
            assert answer.source == primary(server)
            assert answer.mapped == client.local
            assert client.first_answer([mute]) is None


def test_a_server_with_one_address_refuses_change_requests() -> None:
    with StunServer(LOOPBACK[:1], (0,)) as single:
        assert single.grid == Grid(LOOPBACK[:1], single.grid.ports)
        thread = threading.Thread(target=single.serve)
        thread.start()
        try:
            with StunClient.open(Address.of("127.0.0.1", 0)) as client:
                target = single.grid.endpoints[0]
                result = client.request(target, CHANGE_REQUEST(ChangeRequest(True, True)))
                with pytest.raises(NatlabError, match="answered 420"):
                    client.binding(target, CHANGE_REQUEST(ChangeRequest(True, True)))
        finally:
            single.stop()
            thread.join(timeout=5)
    assert result is not None
    error = result[0].get(ERROR_CODE)
    assert error is not None
    assert error.code == 420


def test_resolve_keeps_every_address_of_a_name_once() -> None:
    assert resolve(["127.0.0.2", "127.0.0.2:3478", "[::1]:9"]) == [
        Address.of("127.0.0.2", 3478),
        Address.of("::1", 9),
    ]
    assert Address.of("127.0.0.1", 5) in resolve(["localhost:5"])


async def aioice_binding(server: Address) -> tuple[aioice.stun.Message, tuple[str, int]]:
    """One Binding transaction done by aioice's STUN code: the response and our sockname."""
    loop = asyncio.get_running_loop()

    class Protocol(asyncio.DatagramProtocol):
        transaction: aioice.stun.Transaction

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transaction.response_received(aioice.stun.parse_message(data), addr)

        def send_stun(self, message: aioice.stun.Message, addr: tuple[str, int]) -> None:
            self.transport.sendto(bytes(message), addr)

    transport, protocol = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    try:
        request = aioice.stun.Message(aioice.stun.Method.BINDING, aioice.stun.Class.REQUEST)
        protocol.transaction = aioice.stun.Transaction(
            request, (str(server.ip), server.port), protocol, retransmissions=2
        )
        response, _source = await asyncio.wait_for(protocol.transaction.run(), timeout=5)
        return response, transport.get_extra_info("sockname")
    finally:
        transport.close()


def test_aioice_gets_a_correct_xor_mapped_address(server: StunServer) -> None:
    response, sockname = asyncio.run(aioice_binding(primary(server)))
    assert response.message_class == aioice.stun.Class.RESPONSE
    assert response.attributes["XOR-MAPPED-ADDRESS"] == sockname
    assert response.attributes["FINGERPRINT"]  # parse_message checked it against the bytes


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "natlab.endpoints.stun_server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_server_process_says_ready_answers_and_stops_on_sigterm() -> None:
    process = start(
        "--address", "127.0.0.1", "--address", "127.0.0.2", "--port", "0", "--alt-port", "0"
    )
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        assert words[0] == "ready"
        endpoints = [resolve([word])[0] for word in words[1:]]
        assert [str(e.ip) for e in endpoints] == ["127.0.0.1"] * 2 + ["127.0.0.2"] * 2
        assert endpoints[0].port == endpoints[2].port != endpoints[1].port
        with StunClient.open(Address.of("127.0.0.1", 0)) as client:
            answer = client.binding(endpoints[0])
            assert answer is not None
            assert answer.mapped == client.local
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "answered=1" in err


def test_server_process_that_cannot_bind_exits_2_with_the_reason() -> None:
    process = start("--address", "192.0.2.1", "--port", "0", "--alt-port", "0")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert "cannot bind UDP 192.0.2.1" in err


@pytest.mark.parametrize(
    ("addresses", "ports"),
    [(LOOPBACK[:1] * 2, (0,)), (LOOPBACK, (5000, 5000)), ((), (0,)), (LOOPBACK, (0, 0, 0))],
)
def test_server_refuses_a_grid_it_cannot_be_before_binding(
    addresses: tuple[IPAddress, ...], ports: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="none twice"):
        StunServer(addresses, ports)
