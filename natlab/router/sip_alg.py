"""The router's SIP ALG in the dataplane: SIP packets handed to natlab.sip.alg and rewritten.

The daemon hands over a packet after the engine translated it, when the ALG
is on and port 5060 is on either side (the daemon's check, the only cost for
other traffic; SIP over TLS on 5061 is never looked at, as no ALG can read
it). Outbound, the ALG rewrites the sender's private address to its public
mapping and opens a pinhole (NatEngine.open_pinhole) for each media port of
its SDP; inbound, it rewrites the public endpoint back where consumer ALGs do.

The payload is rewritten and the packet rebuilt in place: IP total length and
header checksum, UDP length and checksum (recomputed: the payload changed
wholesale). TCP would need the sequence numbers of the whole connection
shifted once a segment's length changes, which natlab does not track: a TCP
segment is rewritten only when its length stays the same, and otherwise
passes unchanged with a `sip-untouched` event that says so.

Nothing here raises on what comes from the wire: the pure ALG answers
anything with an "untouched" event, and an unexpected failure of it is one
event too, with the packet forwarded as it came.
"""

from __future__ import annotations

from collections.abc import Callable

from natlab.core.checksum import internet_checksum
from natlab.core.engine import NatEngine
from natlab.core.events import Event, SipPinhole, SipRewritten, SipUntouched
from natlab.core.packets import Endpoint, Packet, Proto
from natlab.sip.alg import (
    AlgMode,
    AlgResult,
    PinholeOpened,
    Rewritten,
    Untouched,
    rewrite,
    rewrite_inbound,
)

SIP_PORT = 5060
MODES = ("off", "rewrite", "broken")


def sip_alg_of(mode: str, engine: NatEngine) -> SipAlg | None:
    """The ALG a router's config asks for; None when it is off."""
    if mode == "off":
        return None
    if mode == "rewrite" or mode == "broken":
        return SipAlg(mode, engine)
    raise ValueError(f"sip_alg {mode!r} is none of {', '.join(MODES)}")


class SipAlg:
    """One router's ALG: its mode and the engine it opens pinholes in."""

    def __init__(self, mode: AlgMode, engine: NatEngine) -> None:
        self.mode = mode
        self.engine = engine

    def outbound(self, packet: Packet, private: Endpoint, now: float) -> list[Event]:
        """A packet the LAN host at `private` sent, its source already translated."""
        span = _payload(packet)
        if span is None:
            return []
        dst = packet.dst

        def map_media(address: tuple[str, int]) -> tuple[str, int]:
            opened = self.engine.open_pinhole(Endpoint(*address), dst, now)
            # no port left (the engine's exhausted event says so): what a broken ALG writes
            return (packet.src.address, address[1]) if opened is None else opened

        result = _guarded(
            lambda payload: rewrite(
                payload,
                mode=self.mode,
                private=private,
                public=packet.src,
                map_media=map_media,
            ),
            bytes(packet.data[span[0] : span[1]]),
        )
        return self._apply(packet, span, result, "outbound", now)

    def inbound(self, packet: Packet, public: Endpoint, now: float) -> list[Event]:
        """A packet from outside that came in for `public`, its destination already translated."""
        span = _payload(packet)
        if span is None:
            return []
        private = packet.dst
        result = _guarded(
            lambda payload: rewrite_inbound(payload, public=public, private=private),
            bytes(packet.data[span[0] : span[1]]),
        )
        return self._apply(packet, span, result, "inbound", now)

    def _apply(
        self,
        packet: Packet,
        span: tuple[int, int],
        result: AlgResult,
        direction: str,
        now: float,
    ) -> list[Event]:
        src, dst, proto = packet.src, packet.dst, packet.proto
        events: list[Event] = []
        rewritten = False
        for event in result.events:
            if isinstance(event, Rewritten):
                events.append(SipRewritten(now, direction, proto, src, dst, *_fields(event)))
                rewritten = True
            elif isinstance(event, PinholeOpened):
                internal, external = Endpoint(*event.private), Endpoint(*event.public)
                events.append(SipPinhole(now, Proto.UDP, internal, external, dst))
            elif isinstance(event, Untouched):
                events.append(SipUntouched(now, direction, proto, src, dst, event.reason))
        if not rewritten:
            return events
        start, end = span
        if proto == Proto.TCP and len(result.payload) != end - start:
            why = (
                f"the rewrite would change this TCP segment from {end - start} to "
                f"{len(result.payload)} bytes, and natlab's ALG does not shift sequence "
                "numbers: forwarded as it came"
            )
            kept = [e for e in events if not isinstance(e, SipRewritten)]
            return [*kept, SipUntouched(now, direction, proto, src, dst, why)]
        _replace_payload(packet, start, result.payload)
        return events


def _fields(event: Rewritten) -> tuple[str, str, str]:
    return event.field, event.old, event.new


def _guarded(run: Callable[[bytes], AlgResult], payload: bytes) -> AlgResult:
    """The pure ALG's answer; a bug in it is an event for this packet, never a dead router."""
    try:
        return run(payload)
    except Exception as error:  # whatever went wrong, the packet goes on as it came
        reason = f"the ALG failed ({error.__class__.__name__}: {error})"
        return AlgResult(payload, (Untouched(reason),))


def _payload(packet: Packet) -> tuple[int, int] | None:
    """Where the UDP or TCP payload of an unfragmented packet lies; None if there is none."""
    data = packet.data
    header = (data[0] & 0x0F) * 4
    if packet.fragment:
        return None
    if packet.proto == Proto.UDP:
        start, end = header + 8, header + ((data[header + 4] << 8) | data[header + 5])
    elif packet.proto == Proto.TCP:
        start, end = header + (data[header + 12] >> 4) * 4, len(data)
    else:
        return None
    return (start, end) if end > start else None


def _replace_payload(packet: Packet, start: int, payload: bytes) -> None:
    """Put the new payload in at `start` and make the IP and transport lengths and checksums
    right."""
    data = packet.data
    data[start:] = payload  # what followed the payload inside the IP packet goes (UDP: nothing)
    header = (data[0] & 0x0F) * 4
    data[2:4] = len(data).to_bytes(2, "big")
    data[10:12] = b"\0\0"
    data[10:12] = internet_checksum(data[:header]).to_bytes(2, "big")
    segment = len(data) - header
    if packet.proto == Proto.UDP:
        data[header + 4 : header + 6] = segment.to_bytes(2, "big")
        checksum_at, optional = header + 6, True
    else:
        checksum_at, optional = header + 16, False
    if optional and data[checksum_at : checksum_at + 2] == b"\0\0":
        return  # UDP without a checksum stays without one (RFC 768)
    data[checksum_at : checksum_at + 2] = b"\0\0"
    pseudo = bytes(data[12:20]) + bytes((0, packet.proto)) + segment.to_bytes(2, "big")
    checksum = internet_checksum(pseudo + bytes(data[header:]))
    if optional and checksum == 0:
        checksum = 0xFFFF
    data[checksum_at : checksum_at + 2] = checksum.to_bytes(2, "big")
