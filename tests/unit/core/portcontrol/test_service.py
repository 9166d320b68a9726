"""Port 5351 is shared: the version byte picks NAT-PMP or PCP, each only if it is on."""

from __future__ import annotations

import struct

import pytest

from natlab.core.packets import Endpoint
from natlab.core.portcontrol import pcp
from natlab.core.portcontrol.service import PortControl, Protocol

from ..helpers import A, nat

CLIENT = Endpoint(A, 40000)
NATPMP_ADDRESS = b"\x00\x00"
PCP_ANNOUNCE = struct.pack("!BBHI16s", 2, 0, 0, 0, pcp.mapped(A))


def control(*protocols: Protocol) -> PortControl:
    return PortControl(nat(), frozenset(protocols), 0.0)


@pytest.mark.parametrize(
    ("protocols", "natpmp_answer", "pcp_answer"),
    [
        ((Protocol.PCP, Protocol.NATPMP), (0, 128, 0), (2, 128, 0)),
        ((Protocol.NATPMP,), (0, 128, 0), (0, 128, 1)),  # NAT-PMP's unsupported version
        ((Protocol.PCP,), (2, 128, 1), (2, 128, 0)),  # PCP's UNSUPP_VERSION
        ((Protocol.UPNP,), None, None),
    ],
)
def test_the_version_byte_picks_the_protocol(protocols, natpmp_answer, pcp_answer):
    ports = control(*protocols)
    for request, expected in ((NATPMP_ADDRESS, natpmp_answer), (PCP_ANNOUNCE, pcp_answer)):
        answer = ports.datagram(request, CLIENT, 1.0)
        if expected is None:
            assert answer is None
        else:
            first = (answer[0], answer[1], answer[3])  # version, opcode, result (low byte)
            assert first == expected
    assert ports.datagram(b"", CLIENT, 1.0) is None


def test_a_restart_announces_itself_to_each_protocols_clients():
    both = control(Protocol.PCP, Protocol.NATPMP).announcements(0.0)
    assert [port for port, _ in both] == [5350, 5350]
    assert both[0][1][:4] == b"\x02\x80\x00\x00"
    assert both[1][1] == b"\x00\x80\x00\x00\x00\x00\x00\x00" + bytes([203, 0, 113, 1])
    assert control(Protocol.UPNP).announcements(0.0) == []


def test_each_refusal_is_told_with_the_protocols_code_and_why():
    told: list[str] = []
    ports = PortControl(nat(), frozenset(Protocol), 0.0, told.append)
    ports.datagram(PCP_ANNOUNCE[:-4], CLIENT, 0.0)
    ports.datagram(struct.pack("!BBHHHI", 0, 1, 0, 0, 0, 60), CLIENT, 0.0)
    assert told == [
        f"pcp request from {CLIENT} refused: MALFORMED_REQUEST: a request of 20 bytes",
        f"natpmp request from {CLIENT} refused: NOT_AUTHORIZED: internal port 0 maps nothing",
    ]
    assert ports.datagram(PCP_ANNOUNCE, CLIENT, 0.0) is not None and len(told) == 2
