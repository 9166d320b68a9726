"""Packets the router originates itself: echo replies, built-in STUN answers, and the
RST or ICMP error that answers an unsolicited SYN (natlab.core.syn_hold).

Everything else the router sends is a received packet rewritten in place
(packets.py); these few are built whole, so their checksums are computed in
full rather than updated.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from natlab.core.checksum import internet_checksum
from natlab.core.packets import (
    ICMP_ECHO_REPLY,
    TCP_ACK,
    TCP_RST,
    Endpoint,
    Packet,
    Proto,
    address_bytes,
)

DEFAULT_TTL = 64
ICMP_UNREACHABLE = 3
QUOTE_MAX = 576 - 20 - 8  # an ICMP error quotes what fits in 576 bytes (RFC 1812 4.3.2.3)


def ipv4_header(
    src: str, dst: str, proto: int, payload_length: int, ttl: int = DEFAULT_TTL
) -> bytes:
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + payload_length,
            0,
            0x4000,  # don't fragment
            ttl,
            proto,
            0,
            address_bytes(src),
            address_bytes(dst),
        )
    )
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header)


def udp_packet(src: Endpoint, dst: Endpoint, payload: bytes) -> bytearray:
    """A UDP datagram from src to dst with a full checksum."""
    length = 8 + len(payload)
    udp = bytearray(struct.pack("!HHHH", src.port, dst.port, length, 0) + payload)
    checksum = _transport_checksum(src.address, dst.address, Proto.UDP, udp) or 0xFFFF
    udp[6:8] = checksum.to_bytes(2, "big")
    return bytearray(ipv4_header(src.address, dst.address, Proto.UDP, length) + udp)


def echo_reply(request: Packet) -> bytearray:
    """The reply to an ICMP echo request addressed to the router: same id, seq and data."""
    header_length = (request.data[0] & 0x0F) * 4
    icmp = bytearray(request.data[header_length:])
    icmp[0] = ICMP_ECHO_REPLY
    icmp[2:4] = b"\0\0"
    icmp[2:4] = internet_checksum(icmp).to_bytes(2, "big")
    return bytearray(
        ipv4_header(request.dst.address, request.src.address, Proto.ICMP, len(icmp)) + icmp
    )


def _transport_checksum(src: str, dst: str, proto: int, segment: bytes | bytearray) -> int:
    """A UDP or TCP checksum over its pseudo-header (RFC 768, RFC 793)."""
    pseudo = address_bytes(src) + address_bytes(dst) + struct.pack("!BBH", 0, proto, len(segment))
    return internet_checksum(pseudo + segment)


def tcp_reset(syn: bytes | bytearray) -> bytearray:
    """The RST that refuses a SYN (RFC 793 3.4): from its destination back to its source.

    A SYN carries no ACK, so the reset has sequence number 0, the ACK flag,
    and acknowledges the SYN's sequence number plus its segment length (1
    for the SYN, plus any data). `syn` may be cut short after its TCP
    header: the lengths come from the headers.
    """
    header = (syn[0] & 0x0F) * 4
    total = int.from_bytes(syn[2:4], "big")
    sport, dport, seq = struct.unpack_from("!HHI", syn, header)
    data_length = max(0, total - header - (syn[header + 12] >> 4) * 4)
    ack = (seq + 1 + data_length) & 0xFFFFFFFF
    segment = bytearray(
        struct.pack("!HHIIBBHHH", dport, sport, 0, ack, 5 << 4, TCP_RST | TCP_ACK, 0, 0, 0)
    )
    src, dst = str(IPv4Address(bytes(syn[16:20]))), str(IPv4Address(bytes(syn[12:16])))
    segment[16:18] = _transport_checksum(src, dst, Proto.TCP, segment).to_bytes(2, "big")
    return bytearray(ipv4_header(src, dst, Proto.TCP, len(segment)) + segment)


def icmp_unreachable(offending: bytes | bytearray, source: str, code: int) -> bytearray:
    """ICMP destination unreachable (type 3, `code`) from `source` to the offending
    packet's source, quoting its first QUOTE_MAX bytes."""
    icmp = bytearray(struct.pack("!BBHI", ICMP_UNREACHABLE, code, 0, 0) + offending[:QUOTE_MAX])
    icmp[2:4] = internet_checksum(icmp).to_bytes(2, "big")
    dst = str(IPv4Address(bytes(offending[12:16])))
    return bytearray(ipv4_header(source, dst, Proto.ICMP, len(icmp)) + icmp)
