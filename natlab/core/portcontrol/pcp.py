"""PCP (RFC 6887) server side: MAP, PEER and ANNOUNCE over the NAT engine.

A request is at most 1100 bytes, a multiple of 4: a 24-byte header
(version 2, R bit and opcode, requested lifetime, the client's address as
IPv4-mapped IPv6), the opcode's fields, then options. The answer copies
the opcode's fields with the assigned external endpoint filled in, and
carries the result code, the granted lifetime and the server's epoch (its
seconds since start: a client that sees it go back knows its mappings are
gone).

What the server checks, with the code it answers:
- shorter than 2 bytes, or a response (R bit): no answer at all;
- another version: UNSUPP_VERSION (with version 2, the one spoken here);
- over 1100 bytes, not a multiple of 4, too short for its opcode:
  MALFORMED_REQUEST; the header's client address not the packet's source:
  ADDRESS_MISMATCH;
- an opcode other than ANNOUNCE, MAP, PEER: UNSUPP_OPCODE;
- a protocol other than UDP or TCP, or "all ports": UNSUPP_PROTOCOL;
- THIRD_PARTY (a mapping for another host): NOT_AUTHORIZED; FILTER and
  other mandatory options it does not implement: UNSUPP_OPTION; options
  that overrun the message: MALFORMED_OPTION;
- renewing or deleting a mapping with another nonce, or one another
  protocol made: NOT_AUTHORIZED;
- no port left: NO_RESOURCES; the host's quota: USER_EX_QUOTA; PREFER_FAILURE
  and the suggested port is taken: CANNOT_PROVIDE_EXTERNAL.

Lifetimes are granted up to `max_lifetime` (the RFC lets the server
shorten them); 0 deletes a MAP mapping. PEER makes or refreshes the mapping
a packet to the peer would, kept at least its lifetime.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

from natlab.core.engine import NatEngine
from natlab.core.mapping import MappingView, MapRefusal
from natlab.core.packets import Endpoint, Proto
from natlab.core.portcontrol import Refused, quiet

VERSION = 2
PORT = 5351  # the server's; unsolicited ANNOUNCE goes to 224.0.0.1 on CLIENT_PORT
CLIENT_PORT = 5350
ALL_NODES = "224.0.0.1"
MAX_MESSAGE = 1100
HEADER = 24
MAP_SIZE = 36
PEER_SIZE = 56
MAX_LIFETIME = 86400.0
NONCES_MAX = 65536  # nonces remembered (one per live mapping); stale ones are pruned past this
ORIGIN = "pcp"


class Opcode(IntEnum):
    ANNOUNCE = 0
    MAP = 1
    PEER = 2


class Result(IntEnum):
    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13

    @property
    def lifetime(self) -> int:
        """How long a client should believe this error (RFC 6887 7.4): short-term ones 30 s."""
        short = (
            Result.NETWORK_FAILURE,
            Result.NO_RESOURCES,
            Result.USER_EX_QUOTA,
            Result.CANNOT_PROVIDE_EXTERNAL,
        )
        return 30 if self in short else 1800


class Option(IntEnum):
    THIRD_PARTY = 1
    PREFER_FAILURE = 2
    FILTER = 3


REFUSALS = {
    MapRefusal.NOT_TRANSLATING: Result.NETWORK_FAILURE,
    MapRefusal.QUOTA: Result.USER_EX_QUOTA,
    MapRefusal.NO_PORTS: Result.NO_RESOURCES,
    MapRefusal.PORT_TAKEN: Result.CANNOT_PROVIDE_EXTERNAL,
    MapRefusal.CARRIER_GRADE: Result.UNSUPP_OPCODE,
}
PROTOCOLS = {6: Proto.TCP, 17: Proto.UDP}
_HEADER = struct.Struct("!BBHI16s")
_RESPONSE_HEADER = struct.Struct("!BBBBII12x")
_MAP = struct.Struct("!12sB3xHH16s")
_PEER_TAIL = struct.Struct("!H2x16s")


@dataclass(frozen=True)
class Request:
    """A PCP request as read from the wire; `body` is the opcode's fields and options."""

    opcode: int
    lifetime: int
    client: str  # the header's client address, dotted (IPv4-mapped on the wire)
    body: bytes


@dataclass(frozen=True)
class MapFields:
    """MAP's fields (PEER's first 36 bytes are the same), with PEER's remote if any."""

    nonce: bytes
    protocol: int
    internal_port: int
    external_port: int
    external_address: str | None  # None: "any" (all zeros)
    remote: Endpoint | None = None
    options: dict[int, list[bytes]] = field(default_factory=dict)


def ipv4_of(mapped: bytes) -> str | None:
    """The dotted IPv4 address of an IPv4-mapped IPv6 address; None for zeros or IPv6."""
    if mapped == bytes(16) or mapped == bytes(10) + b"\xff\xff" + bytes(4):
        return None
    address = IPv6Address(mapped).ipv4_mapped
    return None if address is None else str(address)


def mapped(address: str) -> bytes:
    """An IPv4 address as the 16 bytes PCP carries it in."""
    return bytes(10) + b"\xff\xff" + IPv4Address(address).packed


def read_request(data: bytes) -> Request | None:
    """The request in `data`; None when the RFC says to stay silent; Refused for an error."""
    if len(data) < 2 or data[1] & 0x80:
        return None
    if data[0] != VERSION:
        raise Refused(Result.UNSUPP_VERSION, f"version {data[0]}; this server speaks {VERSION}")
    if len(data) > MAX_MESSAGE or len(data) % 4 or len(data) < HEADER:
        raise Refused(Result.MALFORMED_REQUEST, f"a request of {len(data)} bytes")
    _, opcode, _, lifetime, client = _HEADER.unpack_from(data)
    address = ipv4_of(client)
    if address is None:
        raise Refused(Result.ADDRESS_MISMATCH, "the client address is not an IPv4 address")
    return Request(opcode & 0x7F, lifetime, address, bytes(data[HEADER:]))


def read_map(request: Request) -> MapFields:
    """MAP's or PEER's fields and options; Refused for what the server cannot accept."""
    size = PEER_SIZE if request.opcode == Opcode.PEER else MAP_SIZE
    body = request.body
    if len(body) < size:
        raise Refused(Result.MALFORMED_REQUEST, f"{len(body)} bytes of opcode fields, not {size}")
    nonce, protocol, internal_port, external_port, external = _MAP.unpack_from(body)
    remote = None
    if request.opcode == Opcode.PEER:
        remote_port, remote_address = _PEER_TAIL.unpack_from(body, MAP_SIZE)
        peer = ipv4_of(remote_address)
        if peer is None or not remote_port:
            raise Refused(Result.MALFORMED_REQUEST, "PEER needs an IPv4 remote peer and port")
        remote = Endpoint(peer, remote_port)
    if protocol not in PROTOCOLS:
        raise Refused(Result.UNSUPP_PROTOCOL, f"protocol {protocol}: only UDP and TCP")
    if not internal_port:
        raise Refused(Result.UNSUPP_PROTOCOL, "internal port 0 (all ports) is not supported")
    options = read_options(body[size:], request.opcode)
    return MapFields(
        nonce, protocol, internal_port, external_port, ipv4_of(external), remote, options
    )


def read_options(data: bytes, opcode: int) -> dict[int, list[bytes]]:
    """Options by code; Refused for one that overruns, is unknown and mandatory, or refused."""
    options: dict[int, list[bytes]] = {}
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise Refused(Result.MALFORMED_OPTION, "an option header overruns the message")
        code, length = data[offset], int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = offset + 4 + length
        if end > len(data):
            raise Refused(Result.MALFORMED_OPTION, f"option {code} overruns the message")
        options.setdefault(code, []).append(data[offset + 4 : end])
        offset = end + (-length % 4)
    if Option.THIRD_PARTY in options:
        raise Refused(Result.NOT_AUTHORIZED, "THIRD_PARTY: a host maps only its own ports")
    if Option.PREFER_FAILURE in options and (
        opcode != Opcode.MAP or options[Option.PREFER_FAILURE] != [b""]
    ):
        raise Refused(Result.MALFORMED_OPTION, "PREFER_FAILURE: once, empty, and only in MAP")
    for code in options:
        if code < 128 and code != Option.PREFER_FAILURE:  # FILTER among them: not implemented
            raise Refused(Result.UNSUPP_OPTION, f"option {code} is not supported")
    return options


def response(
    request_header: bytes, result: Result, lifetime: int, epoch: int, body: bytes
) -> bytes:
    """A response: the request's opcode with the R bit, the result, lifetime, epoch, body."""
    opcode = (request_header[1] & 0x7F) | 0x80 if len(request_header) > 1 else 0x80
    header = _RESPONSE_HEADER.pack(VERSION, opcode, 0, result, lifetime, epoch & 0xFFFFFFFF)
    return header + body


def error_response(data: bytes, error: Refused, epoch: int) -> bytes:
    """The RFC's error answer: the request (up to 1100 bytes) behind a response header."""
    body = bytes(data[HEADER:MAX_MESSAGE])
    body += bytes(-len(body) % 4)
    return response(bytes(data[:2]), error.code, Result(error.code).lifetime, epoch, body)


def announce(epoch: int) -> bytes:
    """The unsolicited ANNOUNCE a restarted server multicasts (RFC 6887 14.1.3)."""
    return response(bytes([VERSION, Opcode.ANNOUNCE]), Result.SUCCESS, 0, epoch, b"")


@dataclass
class PcpServer:
    """One router's PCP server; `started` is the router's clock at start (epoch 0)."""

    engine: NatEngine
    started: float
    max_lifetime: float = MAX_LIFETIME
    tell: Callable[[str], None] = quiet  # each refusal, for the router's events
    nonces: dict[tuple, tuple[bytes, Endpoint]] = field(default_factory=dict)  # and the external

    def epoch(self, now: float) -> int:
        return int(max(0.0, now - self.started))

    def handle(self, data: bytes, client: Endpoint, now: float) -> bytes | None:
        """The answer to one datagram from `client`, or None for silence."""
        epoch = self.epoch(now)
        try:
            request = read_request(data)
            if request is None:
                return None
            if request.client != client.address:
                raise Refused(
                    Result.ADDRESS_MISMATCH,
                    f"the header says {request.client}, the packet came from {client.address}",
                )
            lifetime, body = self._serve(request, client.address, now)
        except Refused as error:
            self.tell(f"pcp request from {client} refused: {Result(error.code).name}: {error}")
            return error_response(data, error, epoch)
        return response(bytes(data[:2]), Result.SUCCESS, lifetime, epoch, body)

    def _serve(self, request: Request, host: str, now: float) -> tuple[int, bytes]:
        if request.opcode == Opcode.ANNOUNCE:
            return 0, request.body
        if request.opcode not in (Opcode.MAP, Opcode.PEER):
            raise Refused(Result.UNSUPP_OPCODE, f"opcode {request.opcode}")
        fields = read_map(request)
        proto = PROTOCOLS[fields.protocol]
        internal = Endpoint(host, fields.internal_port)
        if request.opcode == Opcode.PEER:
            view = self._peer(proto, internal, fields, request.lifetime, now)
        else:
            view = self._map(proto, internal, fields, request.lifetime, now)
        if view is None:  # deleted
            return 0, request.body
        size = PEER_SIZE if request.opcode == Opcode.PEER else MAP_SIZE
        answer = bytearray(request.body[:size])
        answer[18:20] = view.external.port.to_bytes(2, "big")
        answer[20:36] = mapped(view.external.address)
        options = b"\x02\x00\x00\x00" if Option.PREFER_FAILURE in fields.options else b""
        return max(0, int(view.expires_at - now)), bytes(answer) + options

    def _map(
        self, proto: Proto, internal: Endpoint, fields: MapFields, lifetime: int, now: float
    ) -> MappingView | None:
        key = (proto, internal)
        existing = self.engine.explicit_mapping(proto, internal, now)
        if existing is not None and (
            existing.origin != ORIGIN or self.nonces.get(key) != (fields.nonce, existing.external)
        ):
            raise Refused(
                Result.NOT_AUTHORIZED,
                f"{internal} is mapped by {existing.origin} with another nonce",
            )
        if not lifetime:
            self.nonces.pop(key, None)
            if existing is not None:
                self.engine.unmap_port(proto, internal, ORIGIN, now)
            return None
        prefer_failure = Option.PREFER_FAILURE in fields.options
        ours = self.engine.external_address_of(internal.address)
        if prefer_failure and fields.external_address not in (None, ours):
            raise Refused(Result.CANNOT_PROVIDE_EXTERNAL, f"the external address is {ours}")
        view = self.engine.map_port(
            proto,
            internal,
            min(float(lifetime), self.max_lifetime),
            ORIGIN,
            now,
            suggested=fields.external_port or None,
            exact=prefer_failure,
        )
        if isinstance(view, MapRefusal):
            raise Refused(REFUSALS[view], f"no mapping: {view}")
        self._remember(key, (fields.nonce, view.external), now)
        return view

    def _peer(
        self, proto: Proto, internal: Endpoint, fields: MapFields, lifetime: int, now: float
    ) -> MappingView:
        assert fields.remote is not None
        if not lifetime:
            raise Refused(Result.MALFORMED_REQUEST, "a PEER request needs a lifetime")
        key = (proto, internal, fields.remote)
        known = self.nonces.get(key)
        if known is not None and known[0] != fields.nonce:
            live = self.engine.mapping_at(proto, known[1], now)
            if live is not None and live.internal == internal:
                raise Refused(Result.NOT_AUTHORIZED, "this PEER mapping has another nonce")
        view = self.engine.peer(
            proto, internal, fields.remote, min(float(lifetime), self.max_lifetime), now
        )
        if isinstance(view, MapRefusal):
            raise Refused(REFUSALS[view], f"no mapping: {view}")
        self._remember(key, (fields.nonce, view.external), now)
        return view

    def _remember(self, key: tuple, nonce: tuple[bytes, Endpoint], now: float) -> None:
        """Keep a mapping's nonce; past NONCES_MAX, forget those whose mapping is gone."""
        if key not in self.nonces and len(self.nonces) >= NONCES_MAX:
            live = {
                (view.proto, view.internal) for view in self.engine.mappings(now) if view.origin
            }
            self.nonces = {k: v for k, v in self.nonces.items() if k[:2] in live}
            if len(self.nonces) >= NONCES_MAX:
                raise Refused(Result.NO_RESOURCES, "too many PCP mappings")
        self.nonces[key] = nonce
