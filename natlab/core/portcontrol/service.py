"""Which port control protocols a router runs, and who answers on UDP 5351.

NAT-PMP (version 0) and PCP (version 2) share the port; the first byte
says which. With only one of them on, a request in the other's version
gets that one's "unsupported version" answer, as RFC 6887 section 9 has
it, so a client falls back or gives up at once instead of waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from natlab.core.engine import NatEngine
from natlab.core.packets import Endpoint
from natlab.core.portcontrol import natpmp, pcp, quiet
from natlab.core.portcontrol.natpmp import NatPmpServer
from natlab.core.portcontrol.pcp import PcpServer
from natlab.core.portcontrol.upnp import UpnpServer

PORT = 5351


class Protocol(StrEnum):
    PCP = "pcp"
    NATPMP = "natpmp"
    UPNP = "upnp"


@dataclass
class PortControl:
    """The port control servers of one router, over its engine, from its start time."""

    engine: NatEngine
    protocols: frozenset[Protocol]
    started: float
    tell: Callable[[str], None] = quiet  # each refusal, for the router's events
    pcp: PcpServer | None = field(init=False)
    natpmp: NatPmpServer | None = field(init=False)
    upnp: UpnpServer | None = field(init=False)

    def __post_init__(self) -> None:
        on, engine, started, tell = self.protocols, self.engine, self.started, self.tell
        self.pcp = PcpServer(engine, started, tell=tell) if Protocol.PCP in on else None
        self.natpmp = NatPmpServer(engine, started, tell=tell) if Protocol.NATPMP in on else None
        self.upnp = UpnpServer(engine, started, tell=tell) if Protocol.UPNP in on else None

    @property
    def serves_5351(self) -> bool:
        return self.pcp is not None or self.natpmp is not None

    def datagram(self, data: bytes, client: Endpoint, now: float) -> bytes | None:
        """The answer to a datagram on UDP 5351, by its version; None for silence."""
        if not data:
            return None
        if data[0] == natpmp.VERSION and self.natpmp is not None:
            return self.natpmp.handle(data, client, now)
        if self.pcp is not None:
            return self.pcp.handle(data, client, now)
        if self.natpmp is not None:
            return self.natpmp.handle(data, client, now)
        return None

    def announcements(self, now: float) -> list[tuple[int, bytes]]:
        """What a (re)started router multicasts to 224.0.0.1: (destination port, payload)."""
        out = []
        if self.pcp is not None:
            out.append((pcp.CLIENT_PORT, pcp.announce(self.pcp.epoch(now))))
        if self.natpmp is not None:
            address = self.engine.config.external_addresses[0]
            out.append((pcp.CLIENT_PORT, natpmp.address_answer(address, self.natpmp.epoch(now))))
        return out
