"""IPv4 packets as a NAT sees them: parse the headers, rewrite endpoints in place.

Only `struct`-level byte work, no scapy: the router daemon runs this per
packet. `parse` turns bytes into a `Packet`; `Packet.set_source` and
`Packet.set_destination` rewrite an address and, where the protocol has one,
a port, and fix every checksum that covers them incrementally (RFC 1624).

What is understood:

- IPv4, with or without IP options. Options are kept as they are: they sit
  inside the header checksum, which is updated like every other one.
- UDP and TCP (ports). A UDP checksum of 0 means "no checksum" and stays 0;
  a computed 0 is sent as 0xFFFF (RFC 768).
- ICMP echo request and reply. The identifier plays the part of a port: it
  is the source port of a request and the destination port of a reply. The
  responder's side has no port field and reads as port 0.
- ICMP errors (destination unreachable, time exceeded, parameter problem).
  Their `embedded` packet is the IP header plus at least the first 8 bytes
  of the datagram that caused the error (RFC 792); it shares this packet's
  buffer, and rewriting it fixes its own IP checksum, its transport checksum
  when that lies within the quoted bytes (UDP's and ICMP's always do, TCP's
  only when 18 or more bytes are quoted), and the outer ICMP checksum.
- Any other protocol or ICMP type parses as a packet without ports: the
  engine routes it when it does not translate and drops it ("unsupported")
  when it does.

IP fragments (MF set or a non-zero offset) parse with `fragment` set and
without ports: a non-first fragment has no transport header. The engine
drops them when it translates (reason "fragment"); matching later fragments
to the first one needs reassembly state, and the lab's endpoints send
datagrams that fit one packet.

Bytes after the IPv4 total length (Ethernet padding) are cut off. Checksums
are not verified: a corrupt packet is translated and stays corrupt, and the
receiving host drops it as it would without a NAT. Anything malformed raises
`PacketError`, and only that.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import NamedTuple

from natlab.core.checksum import incremental_update


class Proto(IntEnum):
    """The IP protocols a NAT translates."""

    ICMP = 1
    TCP = 6
    UDP = 17

    def __str__(self) -> str:
        return self.name.lower()


class Endpoint(NamedTuple):
    """An IPv4 address and a port (or ICMP identifier), as "a.b.c.d:port"."""

    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP_ERRORS = frozenset({3, 11, 12})  # destination unreachable, time exceeded, parameter problem

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10


class PacketError(Exception):
    """The bytes are not a well-formed IPv4 packet; the message says what is wrong."""


@lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The four bytes of a dotted-quad IPv4 address (cached: a NAT writes the same few)."""
    return bytes(int(part) for part in address.split("."))


_U32 = struct.Struct("!I").unpack_from
_DOTTED: dict[int, str] = {}  # a NAT sees few addresses: one string each, not one per packet
_DOTTED_MAX = 65536


def _address(buf: bytearray, offset: int) -> str:
    return _dotted(_U32(buf, offset)[0])


def _dotted(key: int) -> str:
    """The dotted quad of a 32-bit address, made once per address."""
    text = _DOTTED.get(key)
    if text is None:
        if len(_DOTTED) >= _DOTTED_MAX:
            _DOTTED.clear()
        text = _DOTTED[key] = f"{key >> 24}.{(key >> 16) & 255}.{(key >> 8) & 255}.{key & 255}"
    return text


def _u16(buf: bytearray, offset: int) -> int:
    return (buf[offset] << 8) | buf[offset + 1]


@dataclass(frozen=True, slots=True)
class _Checksum:
    """Where a checksum lives and which checksum covers it in turn.

    `optional` is UDP's rule (0 = none). `covered_by` is the outer ICMP
    checksum for the headers quoted in an ICMP error: changing them changes
    the bytes that checksum covers. `message` is the span an ICMP checksum
    covers when all of it is in the buffer: RFC 1624's update gives 0x0000
    for a message of all zeros (an echo reply rewritten to identifier 0),
    where the sum over it needs 0xFFFF.
    """

    offset: int
    optional: bool = False
    covered_by: _Checksum | None = None
    message: tuple[int, int] | None = None

    def update(self, buf: bytearray, old: bytes, new: bytes) -> None:
        offset = self.offset
        current = (buf[offset] << 8) | buf[offset + 1]
        if self.optional and current == 0:
            return
        value = incremental_update(current, old, new)
        if value == 0 and (self.optional or self._covers_only_zeros(buf)):
            value = 0xFFFF
        covering = () if self.covered_by is None else (self.covered_by,)
        _write(buf, offset, value.to_bytes(2, "big"), covering)

    def _covers_only_zeros(self, buf: bytearray) -> bool:
        if self.message is None:
            return False
        start, end = self.message
        return not any(buf[start : self.offset]) and not any(buf[self.offset + 2 : end])


def _write(buf: bytearray, offset: int, new: bytes, checksums: tuple[_Checksum, ...]) -> None:
    old = bytes(buf[offset : offset + len(new)])
    if old == new:
        return
    buf[offset : offset + len(new)] = new
    for checksum in checksums:
        checksum.update(buf, old, new)


@dataclass(slots=True, eq=False)
class Packet:
    """A parsed IPv4 packet over a buffer that the set_* methods rewrite in place."""

    data: bytearray
    proto: int
    src: Endpoint
    dst: Endpoint
    fragment: bool = False
    tcp_flags: int = 0
    icmp_type: int | None = None
    embedded: Packet | None = None
    _start: int = field(default=0, repr=False)
    _src_port_at: int | None = field(default=None, repr=False)
    _dst_port_at: int | None = field(default=None, repr=False)
    _address_checksums: tuple[_Checksum, ...] = field(default=(), repr=False)
    _port_checksums: tuple[_Checksum, ...] = field(default=(), repr=False)

    def set_source(self, endpoint: Endpoint) -> None:
        """Rewrite the source address (and port, if this side has one)."""
        self.src = self._rewrite(self._start + 12, self._src_port_at, self.src, endpoint)

    def set_destination(self, endpoint: Endpoint) -> None:
        """Rewrite the destination address (and port, if this side has one)."""
        self.dst = self._rewrite(self._start + 16, self._dst_port_at, self.dst, endpoint)

    def _rewrite(
        self, address_at: int, port_at: int | None, old: Endpoint, new: Endpoint
    ) -> Endpoint:
        _write(self.data, address_at, address_bytes(new.address), self._address_checksums)
        if port_at is None:
            return Endpoint(new.address, old.port)
        _write(self.data, port_at, new.port.to_bytes(2, "big"), self._port_checksums)
        return new


def decrement_ttl(data: bytearray) -> bool:
    """Take one off the TTL of the IPv4 packet in `data`, as a router does; False if it is spent.

    TTL is the high byte of its word, so the header checksum goes up by
    0x0100 with an end-around carry (RFC 1624), as Linux does.
    """
    ttl = data[8]
    if ttl <= 1:
        return False
    data[8] = ttl - 1
    checksum = ((data[10] << 8) | data[11]) + 0x0100
    checksum += checksum >> 16
    data[10], data[11] = (checksum >> 8) & 0xFF, checksum & 0xFF
    return True


def parse(data: bytes | bytearray) -> Packet:
    """Parse an IPv4 packet; raise PacketError if it is malformed."""
    if len(data) < 20:
        raise PacketError(f"{len(data)} bytes is shorter than an IPv4 header")
    total_length = (data[2] << 8) | data[3]
    if total_length > len(data):
        raise PacketError(f"IPv4 total length {total_length} exceeds the {len(data)} bytes read")
    buf = bytearray(data[:total_length])
    return _parse_plain(buf, total_length) or _parse_ip(buf, 0, None)


# The common case, once per packet in the daemon: version 4, no IP options, not a
# fragment, a whole UDP or TCP header. Its checksums sit at fixed offsets, so
# their descriptions are made once, here, not per packet.
# version/IHL, flags/fragment offset, protocol, addresses, ports, UDP length (TCP: a seq half)
_PLAIN = struct.Struct("!B5xHxB2xIIHHH")
_IP_CHECKSUM = _Checksum(10)
_PLAIN_LAYOUT = {
    Proto.UDP: (8, _Checksum(26, optional=True)),
    Proto.TCP: (20, _Checksum(36)),
}
_PLAIN_CHECKSUMS = {
    proto: ((checksum, _IP_CHECKSUM), (checksum,)) for proto, (_, checksum) in _PLAIN_LAYOUT.items()
}


def _parse_plain(buf: bytearray, total_length: int) -> Packet | None:
    """The common case without the general parser's bookkeeping; None for anything else."""
    if total_length < 28 or buf[0] != 0x45:
        return None
    _, fragment, proto, src, dst, sport, dport, word = _PLAIN.unpack_from(buf)
    layout = _PLAIN_LAYOUT.get(proto)
    if layout is None or fragment & 0x3FFF or total_length < 20 + layout[0]:
        return None
    if proto == Proto.UDP:
        if not 8 <= word <= total_length - 20:
            return None  # the general parser says what is wrong with it
        flags = 0
    elif not 20 <= (buf[32] >> 4) * 4 <= total_length - 20:
        return None
    else:
        flags = buf[33]
    address_checksums, port_checksums = _PLAIN_CHECKSUMS[proto]
    return Packet(
        buf,
        proto,
        Endpoint(_dotted(src), sport),
        Endpoint(_dotted(dst), dport),
        False,
        flags,
        None,
        None,
        0,
        20,
        22,
        address_checksums,
        port_checksums,
    )


def _parse_ip(buf: bytearray, start: int, container: _Checksum | None) -> Packet:
    """Parse the IPv4 header at `start`.

    `container` is None for the packet itself and the outer ICMP checksum for
    the header quoted in an ICMP error, which may be cut short.
    """
    available = len(buf) - start
    if available < 20:
        raise PacketError(f"{available} bytes is shorter than an IPv4 header")
    version, header_length = buf[start] >> 4, (buf[start] & 0x0F) * 4
    if version != 4:
        raise PacketError(f"IP version {version}, not 4")
    total_length = _u16(buf, start + 2)
    if header_length < 20 or header_length > min(available, total_length):
        raise PacketError(f"IPv4 header length {header_length} does not fit")
    ip_checksum = _Checksum(start + 10, covered_by=container)
    packet = Packet(
        data=buf,
        proto=buf[start + 9],
        src=Endpoint(_address(buf, start + 12), 0),
        dst=Endpoint(_address(buf, start + 16), 0),
        fragment=bool(_u16(buf, start + 6) & 0x3FFF),
        _start=start,
        _address_checksums=_present(ip_checksum, container),
    )
    if packet.fragment:
        return packet
    l4 = start + header_length
    l4_length = min(available, total_length) - header_length
    if packet.proto == Proto.UDP:
        _parse_udp(packet, l4, l4_length, container)
    elif packet.proto == Proto.TCP:
        _parse_tcp(packet, l4, l4_length, container)
    elif packet.proto == Proto.ICMP:
        _parse_icmp(packet, l4, l4_length, container)
    return packet


def _present(*checksums: _Checksum | None) -> tuple[_Checksum, ...]:
    return tuple(filter(None, checksums))


def _set_ports(
    packet: Packet, l4: int, checksum: _Checksum | None, container: _Checksum | None
) -> None:
    """UDP and TCP: ports at l4 and l4+2, checksum over a pseudo-header with the addresses."""
    buf = packet.data
    packet.src = Endpoint(packet.src.address, _u16(buf, l4))
    packet.dst = Endpoint(packet.dst.address, _u16(buf, l4 + 2))
    packet._src_port_at, packet._dst_port_at = l4, l4 + 2
    packet._port_checksums = _present(checksum, container)
    packet._address_checksums = _present(checksum, *packet._address_checksums)


def _parse_udp(packet: Packet, l4: int, length: int, container: _Checksum | None) -> None:
    if length < 8:
        raise PacketError(f"{length} bytes is shorter than a UDP header")
    udp_length = _u16(packet.data, l4 + 4)
    if container is None and not 8 <= udp_length <= length:
        raise PacketError(f"UDP length {udp_length} does not fit the {length} bytes after IP")
    _set_ports(packet, l4, _Checksum(l4 + 6, optional=True, covered_by=container), container)


def _parse_tcp(packet: Packet, l4: int, length: int, container: _Checksum | None) -> None:
    # A quoted TCP header may be cut after 8 bytes: the ports are always
    # there, the flags and the checksum only when quoted.
    if length < (20 if container is None else 8):
        raise PacketError(f"{length} bytes is shorter than a TCP header")
    if container is None and not 20 <= (packet.data[l4 + 12] >> 4) * 4 <= length:
        raise PacketError("TCP data offset does not fit the segment")
    packet.tcp_flags = packet.data[l4 + 13] if length >= 14 else 0
    checksum = _Checksum(l4 + 16, covered_by=container) if length >= 18 else None
    _set_ports(packet, l4, checksum, container)


def _parse_icmp(packet: Packet, l4: int, length: int, container: _Checksum | None) -> None:
    if length < 8:
        raise PacketError(f"{length} bytes is shorter than an ICMP header")
    buf = packet.data
    icmp_type = packet.icmp_type = buf[l4]
    whole = _u16(buf, packet._start + 2) - (l4 - packet._start) == length
    checksum = _Checksum(l4 + 2, covered_by=container, message=(l4, l4 + length) if whole else None)
    if icmp_type == ICMP_ECHO_REQUEST:
        packet.src = Endpoint(packet.src.address, _u16(buf, l4 + 4))
        packet._src_port_at = l4 + 4
    elif icmp_type == ICMP_ECHO_REPLY:
        packet.dst = Endpoint(packet.dst.address, _u16(buf, l4 + 4))
        packet._dst_port_at = l4 + 4
    elif icmp_type in ICMP_ERRORS and container is None:
        packet.embedded = _parse_ip(buf, l4 + 8, checksum)
    packet._port_checksums = _present(checksum, container)
