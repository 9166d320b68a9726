"""Packets the router originates itself: echo replies and built-in STUN answers.

Everything else the router sends is a received packet rewritten in place
(packets.py); these few are built whole, so their checksums are computed in
full rather than updated.
"""

from __future__ import annotations

import struct

from natlab.core.checksum import internet_checksum
from natlab.core.packets import ICMP_ECHO_REPLY, Endpoint, Packet, Proto, address_bytes

DEFAULT_TTL = 64


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
    pseudo = (
        address_bytes(src.address)
        + address_bytes(dst.address)
        + struct.pack("!BBH", 0, Proto.UDP, length)
    )
    checksum = internet_checksum(pseudo + udp) or 0xFFFF
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
