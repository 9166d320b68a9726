"""Unsolicited inbound TCP SYNs, held before they are answered (RFC 5382 REQ-4).

A SYN from outside that no mapping lets in (none, expired, or filtered) is
dropped. With `tcp_unsolicited: drop` that is all. With `rst` or `icmp` the
NAT answers it, but not at once: the SYN may be one half of a simultaneous
open (TCP hole punching), whose other half, the internal host's own SYN to
that remote, is still on its way out. REQ-4: the NAT MUST NOT answer for at
least 6 seconds; if an outbound SYN for the connection (from the external
endpoint the SYN was sent to, to the SYN's source) is translated meanwhile,
the held SYN is dropped silently; otherwise the NAT answers it: REQ-4
recommends ICMP port unreachable (type 3, code 3), natlab's `icmp`; `rst`
is the TCP reset many routers send instead.

The held SYN itself is never delivered (REQ-4 says drop it): the peer's
retransmitted SYN gets in through the mapping the outbound SYN made.

`SynHold` keeps the held SYNs, at most HELD_MAX (a SYN flood costs bounded
memory: past it a SYN is dropped without an answer), one per connection
(a retransmitted SYN is not held twice); time is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

from natlab.core.behaviour import TcpUnsolicited
from natlab.core.craft import QUOTE_MAX, icmp_unreachable, tcp_reset
from natlab.core.packets import Endpoint, Packet

HOLD = 6.0  # seconds a SYN is held before it is answered (REQ-4: at least 6)
HELD_MAX = 1024
ICMP_PORT_UNREACHABLE = 3


@dataclass(frozen=True, slots=True)
class HeldSyn:
    """One unsolicited SYN as it arrived, and when."""

    remote: Endpoint  # its source
    external: Endpoint  # the router's external endpoint it was sent to
    received: float
    data: bytes  # its first QUOTE_MAX bytes: what an ICMP error quotes, and a RST needs

    @property
    def due(self) -> float:
        return self.received + HOLD

    def answer(self, kind: TcpUnsolicited) -> bytearray:
        """The packet that answers it: a TCP RST, or ICMP port unreachable."""
        if kind is TcpUnsolicited.RST:
            return tcp_reset(self.data)
        return icmp_unreachable(self.data, self.external.address, ICMP_PORT_UNREACHABLE)


class SynHold:
    """The SYNs waiting for their answer, by connection (external endpoint, remote)."""

    def __init__(self) -> None:
        self._held: dict[tuple[Endpoint, Endpoint], HeldSyn] = {}

    def __len__(self) -> int:
        return len(self._held)

    @property
    def full(self) -> bool:
        return len(self._held) >= HELD_MAX

    def hold(self, packet: Packet, now: float) -> HeldSyn | None:
        """Hold a SYN that was just dropped; None if held already or the hold is full."""
        key = (packet.dst, packet.src)
        if key in self._held or self.full:
            return None
        held = self._held[key] = HeldSyn(
            packet.src, packet.dst, now, bytes(packet.data[:QUOTE_MAX])
        )
        return held

    def withdraw(self, external: Endpoint, remote: Endpoint) -> HeldSyn | None:
        """The held SYN an outbound SYN from `external` to `remote` makes a simultaneous open."""
        return self._held.pop((external, remote), None)

    def due(self, now: float) -> list[HeldSyn]:
        """The SYNs held for HOLD seconds by `now`, no longer held, oldest first."""
        if not self._held:
            return []
        done = [held for held in self._held.values() if held.due <= now]
        for held in done:
            del self._held[(held.external, held.remote)]
        return sorted(done, key=lambda held: held.received)
