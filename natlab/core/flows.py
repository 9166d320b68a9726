"""A flow cache: forward the next packets of a known flow without parsing or deciding.

Nearly every packet through a NAT belongs to a flow it has already decided:
same protocol, addresses and ports, coming in the same way, rewritten the
same way, sent out the same way. Parsing each into a `Packet`, asking the
engine and rewriting field by field costs the router daemon most of its
time per packet. A `FlowCache` (one per ingress interface) remembers, for
the bytes a flow's packets arrive with, the bytes they leave with, the two
checksum differences that change implies (RFC 1624, worked out once), the
engine's `Replay` (natlab.core.engine) and where the packet goes. `forward`
then only checks that the packet is the plain kind the entry was learnt
from, replays the engine's state changes, decrements the TTL and patches
twelve bytes and two checksums in place.

Only the common case is cached: IPv4 without options, not a fragment, TTL
above 1, UDP with a sane length, or TCP without SYN, FIN or RST (those may
change the engine's TCP state). Anything else, and any flow the engine
declines to replay, goes back to the caller's full path, which may learn it
again. The cache is bounded and starts afresh when full.
"""

from __future__ import annotations

from natlab.core.checksum import apply_difference, difference, fold
from natlab.core.engine import Replay
from natlab.core.packets import TCP_FIN, TCP_RST, TCP_SYN, Packet, Proto

LIMIT = 4096  # flows per ingress interface; a lab has far fewer busy ones
_TTL_DOWN = 0xFEFF  # one's complement difference of the TTL/protocol word when TTL drops by 1
_UDP, _TCP = int(Proto.UDP), int(Proto.TCP)
_TCP_STATEFUL = TCP_SYN | TCP_FIN | TCP_RST


class FlowCache:
    """The flows learnt on one ingress interface; `egress` values are the caller's own."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.hits = 0  # packets forwarded from the cache
        # (protocol, addresses and ports as they arrive) ->
        # (addresses and ports as they leave, IP and UDP/TCP checksum differences, replay, egress)
        self._flows: dict[tuple[int, bytes], tuple[bytes, int, int, Replay | None, object]] = {}

    def __len__(self) -> int:
        return len(self._flows)

    def learn(
        self,
        arrived: bytes | bytearray | memoryview,
        packet: Packet,
        replay: Replay | None,
        egress: object,
    ) -> None:
        """Remember the flow of a packet the full path just forwarded.

        `arrived` is the IPv4 packet as it came in, `packet` the same packet as
        it left; `replay` is None when there is no engine state to keep up (a
        plain route between two LANs). Packets of a kind `forward` does not
        handle are not learnt.
        """
        if (
            len(arrived) < 28
            or arrived[0] != 0x45
            or arrived[6] & 0x3F
            or arrived[7]
            or arrived[9] not in (_UDP, _TCP)
        ):
            return
        before, after = bytes(arrived[12:24]), bytes(packet.data[12:24])
        ip_change = fold(difference(before[:8], after[:8]) + _TTL_DOWN)
        if len(self._flows) >= self.limit:
            self._flows.clear()
        self._flows[(arrived[9], before)] = (
            after,
            ip_change,
            difference(before, after),
            replay,
            egress,
        )

    def forward(self, buf: bytearray, start: int, size: int, now: float) -> object | None:
        """Rewrite the IPv4 packet at buf[start:] in place if its flow is known.

        Returns the flow's egress, or None (the packet untouched) for the full
        path: an unknown flow, a kind of packet the cache does not handle, or
        a flow the engine will not replay any more (it is forgotten).
        """
        if (
            size < 28
            or buf[start] != 0x45
            or buf[start + 6] & 0x3F
            or buf[start + 7]
            or buf[start + 8] <= 1
        ):
            return None
        proto = buf[start + 9]
        total = (buf[start + 2] << 8) | buf[start + 3]
        if total > size:
            return None
        if proto == _UDP:
            length = (buf[start + 24] << 8) | buf[start + 25]
            if not 8 <= length <= total - 20:
                return None
            checksum_at = start + 26
        elif proto == _TCP:
            if (
                total < 40
                or buf[start + 33] & _TCP_STATEFUL
                or not 20 <= (buf[start + 32] >> 4) * 4 <= total - 20
            ):
                return None
            checksum_at = start + 36
        else:
            return None
        key = (proto, bytes(buf[start + 12 : start + 24]))
        flow = self._flows.get(key)
        if flow is None:
            return None
        after, ip_change, l4_change, replay, egress = flow
        if replay is not None and not replay(now):
            del self._flows[key]
            return None
        buf[start + 8] -= 1
        checksum = apply_difference((buf[start + 10] << 8) | buf[start + 11], ip_change)
        buf[start + 10] = checksum >> 8
        buf[start + 11] = checksum & 0xFF
        checksum = (buf[checksum_at] << 8) | buf[checksum_at + 1]
        if checksum or proto == _TCP:  # a UDP checksum of 0 means none, and stays 0
            checksum = apply_difference(checksum, l4_change)
            if proto == _UDP and checksum == 0:
                checksum = 0xFFFF
            buf[checksum_at] = checksum >> 8
            buf[checksum_at + 1] = checksum & 0xFF
        buf[start + 12 : start + 24] = after
        self.hits += 1
        return egress
