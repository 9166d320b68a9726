"""The daemon's port control I/O without sockets: what it sends for what it gets."""

from __future__ import annotations

import selectors
from ipaddress import IPv4Interface
from types import SimpleNamespace

from natlab.core.behaviour import PRESETS
from natlab.core.craft import udp_packet
from natlab.core.engine import NatConfig, NatEngine
from natlab.core.packets import Endpoint, parse
from natlab.core.portcontrol.service import PortControl, Protocol
from natlab.router.lan_services import LanServices, multicast_mac

GATEWAY = "10.0.0.1"
CLIENT = Endpoint("10.0.0.2", 40000)


class Sent:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(bytes(frame))


def lan() -> SimpleNamespace:
    return SimpleNamespace(
        addresses=[IPv4Interface(f"{GATEWAY}/24")], mac=b"\x02\0\0\0\0\x01", sock=Sent()
    )


def services(*protocols: Protocol, log=None) -> LanServices:
    engine = NatEngine(NatConfig(PRESETS["port-restricted"], ("203.0.113.1",), ("10.0.0.0/24",)))
    control = PortControl(engine, frozenset(protocols), 0.0)
    logged = [] if log is None else log
    return LanServices(control, [], selectors.DefaultSelector(), lambda: 5.0, logged.append)


def test_a_start_is_announced_to_all_nodes_on_each_lan():
    port = lan()
    services(Protocol.PCP, Protocol.NATPMP).announce([port])
    assert len(port.sock.frames) == 2
    for frame in port.sock.frames:
        assert frame[:6] == multicast_mac("224.0.0.1") == b"\x01\x00\x5e\x00\x00\x01"
        packet = parse(bytearray(frame[14:]))
        assert (packet.src, packet.dst) == (Endpoint(GATEWAY, 5351), Endpoint("224.0.0.1", 5350))
    assert multicast_mac("239.255.255.250") == b"\x01\x00\x5e\x7f\xff\xfa"


def test_a_natpmp_request_is_answered_from_the_address_it_was_sent_to():
    lan_services = services(Protocol.NATPMP)
    request = parse(udp_packet(CLIENT, Endpoint(GATEWAY, 5351), b"\x00\x00"))
    [answer] = lan_services.answer(lan(), request)
    packet = parse(answer)
    assert (packet.src, packet.dst) == (Endpoint(GATEWAY, 5351), CLIENT)
    assert bytes(packet.data[28:30]) == b"\x00\x80"
    assert lan_services.answered == 1
    other = parse(udp_packet(CLIENT, Endpoint(GATEWAY, 53), b"\x00\x00"))
    assert lan_services.answer(lan(), other) == []
    ssdp = parse(udp_packet(CLIENT, Endpoint("239.255.255.250", 1900), b"M-SEARCH"))
    assert lan_services.answer(lan(), ssdp) == [], "UPnP is off"


def test_a_bug_answering_costs_that_request_only():
    logged: list[str] = []
    lan_services = services(Protocol.PCP, log=logged)

    def broken(*args):
        raise RuntimeError("boom")

    lan_services.control.datagram = broken
    request = parse(udp_packet(CLIENT, Endpoint(GATEWAY, 5351), b"\x02\x00"))
    assert lan_services.answer(lan(), request) == []
    assert lan_services.failures == 1 and logged == ["port control: RuntimeError: boom"]
