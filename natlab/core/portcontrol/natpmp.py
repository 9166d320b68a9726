"""NAT-PMP (RFC 6886) server side over the NAT engine.

Requests (version 0): opcode 0 asks for the external address (2 bytes);
opcodes 1 (UDP) and 2 (TCP) map a port (12 bytes: internal port, suggested
external port, requested lifetime). Answers carry opcode + 128, a result
code and the epoch (seconds since the server started). Lifetime 0 deletes
the mapping of that internal port, or with internal port 0 every mapping
NAT-PMP made for the client in that protocol.

Result codes: 1 unsupported version (any version but 0), 2 not authorized
(the port is mapped by another protocol: PCP's nonce or UPnP's entry stays
theirs), 3 network failure (the router does not translate), 4 out of
resources (no port, or the host's quota), 5 unsupported opcode. A request
too short for its opcode, or an answer (opcode >= 128), gets no answer:
RFC 6886 gives no code for it. Lifetimes are granted up to `max_lifetime`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from natlab.core.engine import NatEngine
from natlab.core.mapping import MapRefusal
from natlab.core.packets import Endpoint, Proto
from natlab.core.portcontrol import Refused, quiet

VERSION = 0
MAX_LIFETIME = 86400.0
ORIGIN = "natpmp"
PROTOCOLS = {1: Proto.UDP, 2: Proto.TCP}
_MAP = struct.Struct("!BBHHHI")
_MAP_ANSWER = struct.Struct("!BBHIHHI")
_ADDRESS_ANSWER = struct.Struct("!BBHI4s")
_ERROR_ANSWER = struct.Struct("!BBHI")


class Result(IntEnum):
    SUCCESS = 0
    UNSUPPORTED_VERSION = 1
    NOT_AUTHORIZED = 2
    NETWORK_FAILURE = 3
    OUT_OF_RESOURCES = 4
    UNSUPPORTED_OPCODE = 5


REFUSALS = {
    MapRefusal.NOT_TRANSLATING: Result.NETWORK_FAILURE,
    MapRefusal.QUOTA: Result.OUT_OF_RESOURCES,
    MapRefusal.NO_PORTS: Result.OUT_OF_RESOURCES,
    MapRefusal.PORT_TAKEN: Result.OUT_OF_RESOURCES,
    MapRefusal.CARRIER_GRADE: Result.UNSUPPORTED_OPCODE,
}


def error_answer(opcode: int, result: Result, epoch: int) -> bytes:
    """The answer to a request that failed: opcode + 128, the result, the epoch."""
    return _ERROR_ANSWER.pack(VERSION, (opcode & 0x7F) | 0x80, result, epoch & 0xFFFFFFFF)


def address_answer(address: str, epoch: int) -> bytes:
    """The external address answer; also what a restarted server multicasts (RFC 6886 3.2.1)."""
    return _ADDRESS_ANSWER.pack(
        VERSION, 128, Result.SUCCESS, epoch & 0xFFFFFFFF, bytes(int(p) for p in address.split("."))
    )


@dataclass
class NatPmpServer:
    """One router's NAT-PMP server; `started` is the router's clock at start (epoch 0)."""

    engine: NatEngine
    started: float
    max_lifetime: float = MAX_LIFETIME
    tell: Callable[[str], None] = quiet  # each refusal, for the router's events

    def epoch(self, now: float) -> int:
        return int(max(0.0, now - self.started))

    def handle(self, data: bytes, client: Endpoint, now: float) -> bytes | None:
        """The answer to one datagram from `client`, or None when there is none to give."""
        if len(data) < 2 or data[1] & 0x80:
            return None
        epoch, opcode = self.epoch(now), data[1]
        if data[0] != VERSION:
            return error_answer(opcode, Result.UNSUPPORTED_VERSION, epoch)
        if opcode == 0:
            return address_answer(self.engine.external_address_of(client.address), epoch)
        if opcode not in PROTOCOLS:
            return error_answer(opcode, Result.UNSUPPORTED_OPCODE, epoch)
        if len(data) < _MAP.size:
            return None
        _, _, _, internal_port, external_port, lifetime = _MAP.unpack_from(data)
        internal = Endpoint(client.address, internal_port)
        try:
            mapped, granted = self._map(PROTOCOLS[opcode], internal, external_port, lifetime, now)
        except Refused as error:  # a mapping answer all the same, with nothing mapped
            self.tell(f"natpmp request from {client} refused: {Result(error.code).name}: {error}")
            return _MAP_ANSWER.pack(VERSION, opcode | 0x80, error.code, epoch, internal_port, 0, 0)
        return _MAP_ANSWER.pack(
            VERSION, opcode | 0x80, Result.SUCCESS, epoch, internal_port, mapped, granted
        )

    def _map(
        self, proto: Proto, internal: Endpoint, external_port: int, lifetime: int, now: float
    ) -> tuple[int, int]:
        """(external port, granted lifetime) of the mapping made, renewed or deleted."""
        engine = self.engine
        if not lifetime:
            if not internal.port:  # every mapping NAT-PMP made for this host
                for view in engine.mappings(now):
                    if (view.origin, view.proto, view.internal.address) == (
                        ORIGIN,
                        proto,
                        internal.address,
                    ):
                        engine.unmap_port(proto, view.internal, ORIGIN, now)
                return 0, 0
            existing = engine.explicit_mapping(proto, internal, now)
            if existing is not None:
                self._check_ours(existing.origin, internal)
                engine.unmap_port(proto, internal, ORIGIN, now)
            return 0, 0
        if not internal.port:
            raise Refused(Result.NOT_AUTHORIZED, "internal port 0 maps nothing")
        existing = engine.explicit_mapping(proto, internal, now)
        if existing is not None:
            self._check_ours(existing.origin, internal)
        view = engine.map_port(
            proto,
            internal,
            min(float(lifetime), self.max_lifetime),
            ORIGIN,
            now,
            suggested=external_port or None,
        )
        if isinstance(view, MapRefusal):
            raise Refused(REFUSALS[view], f"no mapping: {view}")
        return view.external.port, int(view.expires_at - now)

    @staticmethod
    def _check_ours(origin: str | None, internal: Endpoint) -> None:
        if origin != ORIGIN:
            raise Refused(Result.NOT_AUTHORIZED, f"{internal} is mapped by {origin}")
