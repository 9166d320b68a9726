"""Packets built with scapy, parsed with natlab, and a NAT engine on the lab's addresses.

Packet bytes are cached: scapy takes a few hundred microseconds per packet
and the tests reuse a small universe of endpoints. Every call parses a
fresh copy, since the engine rewrites packets in place.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP

from natlab.core.behaviour import PRESETS, behaviour_from
from natlab.core.engine import NatConfig, NatEngine, StaticMap
from natlab.core.packets import Endpoint, Packet, parse

WAN = "203.0.113.1"
WAN2 = "203.0.113.2"
LAN = "10.0.0.0/24"
A = "10.0.0.2"
B = "10.0.0.3"
S1 = "198.51.100.1"
S2 = "198.51.100.2"
ROUTER = "192.0.2.254"  # a router on the path that sends ICMP errors


def ep(text: str) -> Endpoint:
    """ "10.0.0.2:5000" -> Endpoint("10.0.0.2", 5000)."""
    address, port = text.rsplit(":", 1)
    return Endpoint(address, int(port))


def nat(
    preset: str = "port-restricted",
    *,
    external: tuple[str, ...] = (WAN,),
    static_maps: tuple[StaticMap, ...] = (),
    local_udp_ports: tuple[int, ...] = (3478, 3479),
    **overrides: Any,
) -> NatEngine:
    """An engine for the LAN 10.0.0.0/24 behind `external`, from a preset plus overrides."""
    behaviour = behaviour_from(preset, **overrides) if overrides else PRESETS[preset]
    return NatEngine(
        NatConfig(
            behaviour=behaviour,
            external_addresses=external,
            internal_networks=(LAN,),
            static_maps=static_maps,
            local_udp_ports=local_udp_ports,
        )
    )


@lru_cache(maxsize=4096)
def udp_bytes(src: Endpoint, dst: Endpoint, payload: bytes = b"payload") -> bytes:
    return bytes(
        IP(src=src.address, dst=dst.address) / UDP(sport=src.port, dport=dst.port) / payload
    )


@lru_cache(maxsize=4096)
def tcp_bytes(src: Endpoint, dst: Endpoint, flags: str = "S") -> bytes:
    return bytes(
        IP(src=src.address, dst=dst.address)
        / TCP(sport=src.port, dport=dst.port, flags=flags, seq=1000)
    )


@lru_cache(maxsize=4096)
def echo_bytes(src: str, dst: str, ident: int, reply: bool = False) -> bytes:
    return bytes(IP(src=src, dst=dst) / ICMP(type=0 if reply else 8, id=ident, seq=1) / b"ping")


def udp(src: str, dst: str, payload: bytes = b"payload") -> Packet:
    """A UDP packet from "a.b.c.d:port" to "a.b.c.d:port"."""
    return parse(udp_bytes(ep(src), ep(dst), payload))


def tcp(src: str, dst: str, flags: str = "S") -> Packet:
    """A TCP segment with scapy's flag letters ("S", "SA", "A", "F", "R"...)."""
    return parse(tcp_bytes(ep(src), ep(dst), flags))


def echo(src: str, dst: str, ident: int, *, reply: bool = False) -> Packet:
    """An ICMP echo request (or reply) with identifier `ident`."""
    return parse(echo_bytes(src, dst, ident, reply))


def icmp_error(src: str, dst: str, quoted: Packet | bytes, icmp_type: int = 3) -> Packet:
    """An ICMP error (default: port unreachable) quoting `quoted` whole."""
    inner = bytes(quoted.data) if isinstance(quoted, Packet) else quoted
    code = 3 if icmp_type == 3 else 0
    return parse(bytes(IP(src=src, dst=dst) / ICMP(type=icmp_type, code=code) / inner))


def checksums(data: bytes | bytearray, outermost: int | None = None) -> tuple[list[int], list[int]]:
    """Every checksum in the packet as it is, and as scapy computes it from scratch.

    Covers the IP, UDP/TCP/ICMP and, in an ICMP error, the quoted IP and
    transport checksums, outermost first. With `outermost`, scapy recomputes
    only that many and keeps the rest as they are (a quoted transport header
    cut short cannot be checksummed again).
    """
    as_is = IP(bytes(data))
    fresh = IP(bytes(data))
    layers = [layer for layer in fresh.iterpayloads() if "chksum" in layer.fields]
    for layer in layers[:outermost]:
        del layer.chksum
    rebuilt = IP(bytes(fresh))
    ours = [layer.chksum for layer in as_is.iterpayloads() if "chksum" in layer.fields]
    theirs = [layer.chksum for layer in rebuilt.iterpayloads() if "chksum" in layer.fields]
    return ours, theirs


def assert_checksums_valid(packet: Packet) -> None:
    ours, theirs = checksums(packet.data)
    assert ours == theirs
    assert len(ours) >= 2
