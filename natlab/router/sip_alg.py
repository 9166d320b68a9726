"""The router's SIP ALG in the dataplane: SIP packets handed to natlab.sip.alg and rewritten.

The daemon hands over a packet after the engine translated it, when the ALG
is on and port 5060 is on either side (the daemon's check, the only cost for
other traffic; SIP over TLS on 5061 is never looked at, as no ALG can read
it). Outbound, the ALG rewrites the sender's private address to its public
mapping and opens a pinhole (NatEngine.open_pinhole) for each media port of
its SDP; inbound, it rewrites the public endpoint back where consumer ALGs do.
A REGISTER's Contact naming another port of the sender (`rewrite` mode) gets
an explicit mapping of origin `sip-alg` (NatEngine.map_port, as port control's)
that lets in only the registrar, for the registration's expiry, renewed by
each REGISTER and deleted by one with expiry 0; a port forward or a port
control mapping the host already has on that port is named instead.

The payload is rewritten and the packet rebuilt in place: IP total length and
header checksum, UDP length and checksum (recomputed: the payload changed
wholesale). Over TCP a rewrite that changes a segment's length shifts the
rest of the connection's sequence space, as Linux's nf_nat_seq_adjust does
(natlab.core.seq_adjust): from then on every segment of that connection, both
ways (pure ACKs, FIN and RST included), gets its seq, ack and SACK blocks
adjusted here, which SIP's port keeps off the daemon's flow cache. Each
message of a segment is recorded on its own, so a retransmission that joins
a rewritten message with the next ones (as Linux retransmits) still fits,
and one that begins inside a message is cut where a rewritten one began. A
connection is known by its private and remote endpoints, followed from its
SYN (at most MAX_CONNECTIONS), forgotten after the engine's TCP timeout of
silence (transitory once a FIN or RST passed), or when a new SYN opens it
again. Part of a segment that is no whole SIP message (a message split
across segments) passes as it came, shifted, with a `sip-untouched` event
that says so, and is never rewritten later (a retransmission that brings
it whole finds its bytes already passed); so does the rare rewrite the
sequence space cannot take (a retransmission rewritten to another length).

Nothing here raises on what comes from the wire: the pure ALG answers
anything with an "untouched" event, and an unexpected failure of it is one
event too, with the packet forwarded as it came.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from natlab.core.checksum import internet_checksum
from natlab.core.engine import NatEngine
from natlab.core.events import Event, SipPinhole, SipRewritten, SipUntouched
from natlab.core.mapping import MapRefusal
from natlab.core.packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Endpoint, Packet, Proto
from natlab.core.seq_adjust import MOD, SeqAdjust, adjust_segment
from natlab.sip.alg import (
    AlgEvent,
    AlgMode,
    AlgResult,
    PinholeOpened,
    Rewritten,
    Untouched,
    rewrite,
    rewrite_inbound,
)
from natlab.sip.errors import SipError
from natlab.sip.message import split_stream

SIP_PORT = 5060
MODES = ("off", "rewrite", "broken")
ORIGIN = "sip-alg"  # what made a REGISTER's pinhole, in `natlab nat show`
MAX_CONNECTIONS = 4096  # TCP connections whose sequence numbers the ALG shifts at once
OUTBOUND, INBOUND = 0, 1  # the two ways of a connection (natlab.core.seq_adjust)
SPLIT = (
    "part of this TCP segment is no whole SIP message (one split across segments, or no "
    "SIP): natlab's ALG rewrites only messages a segment holds whole; that part forwarded "
    "as it came"
)

Connection = tuple[Endpoint, Endpoint]
"""A TCP connection through the router: its private endpoint and its remote one."""


def sip_alg_of(mode: str, engine: NatEngine) -> SipAlg | None:
    """The ALG a router's config asks for; None when it is off."""
    if mode == "off":
        return None
    if mode == "rewrite" or mode == "broken":
        return SipAlg(mode, engine)
    raise ValueError(f"sip_alg {mode!r} is none of {', '.join(MODES)}")


class Tracked:
    """A TCP connection through the ALG: its sequence corrections, when it was last seen."""

    __slots__ = ("adjust", "closing", "seen")

    def __init__(self, now: float) -> None:
        self.adjust = SeqAdjust()
        self.seen = now
        self.closing = False  # a FIN or RST passed: forgotten after the transitory timeout


class SipAlg:
    """One router's ALG: its mode, the engine it opens pinholes in, its TCP connections."""

    def __init__(self, mode: AlgMode, engine: NatEngine) -> None:
        self.mode = mode
        self.engine = engine
        self.tracked: dict[Connection, Tracked] = {}

    def outbound(self, packet: Packet, private: Endpoint, now: float) -> list[Event]:
        """A packet the LAN host at `private` sent, its source already translated."""
        dst = packet.dst

        def map_media(address: tuple[str, int]) -> tuple[str, int]:
            opened = self.engine.open_pinhole(Endpoint(*address), dst, now)
            # no port left (the engine's exhausted event says so): what a broken ALG writes
            return (packet.src.address, address[1]) if opened is None else opened

        refused: list[str] = []

        def map_contact(
            transport: str, address: tuple[str, int], lifetime: float
        ) -> tuple[str, int] | None:
            proto = Proto.TCP if transport == "tcp" else Proto.UDP
            found = self._registration(proto, Endpoint(*address), dst.address, lifetime, now)
            if isinstance(found, MapRefusal):
                refused.append(
                    f"no pinhole for the REGISTER's {transport} Contact {address[0]}:{address[1]}"
                    f" ({found.value}): its Contact stays"
                )
                return None
            return found

        def run(payload: bytes) -> AlgResult:
            return rewrite(
                payload,
                mode=self.mode,
                private=private,
                public=packet.src,
                map_media=map_media,
                map_contact=map_contact,
            )

        events = self._handle(packet, (private, dst), OUTBOUND, run, now)
        for reason in refused:
            events.append(SipUntouched(now, "outbound", packet.proto, packet.src, dst, reason))
        return events

    def _registration(
        self, proto: Proto, internal: Endpoint, registrar: str, lifetime: float, now: float
    ) -> Endpoint | MapRefusal | None:
        """The public endpoint of a REGISTER's Contact: its pinhole, made or renewed for
        `lifetime` (0: deleted, None if there was none), or the port forward it already has."""
        held = self.engine.forwarded(proto, internal) or self.engine.explicit_mapping(
            proto, internal, now
        )
        if isinstance(held, Endpoint):
            return held
        if held is not None and held.origin != ORIGIN:
            return held.external
        if lifetime == 0:
            gone = self.engine.unmap_port(proto, internal, ORIGIN, now)
            return None if gone is None else gone.external
        made = self.engine.map_port(
            proto, internal, lifetime, ORIGIN, now, suggested=internal.port, admits=registrar
        )
        return made if isinstance(made, MapRefusal) else made.external

    def inbound(self, packet: Packet, public: Endpoint, now: float) -> list[Event]:
        """A packet from outside that came in for `public`, its destination already translated."""
        private = packet.dst

        def run(payload: bytes) -> AlgResult:
            return rewrite_inbound(payload, public=public, private=private)

        return self._handle(packet, (private, packet.src), INBOUND, run, now)

    def expire(self, now: float) -> None:
        """Forget the connections silent for longer than the engine keeps a TCP mapping."""
        behaviour = self.engine.config.behaviour
        established, transitory = (
            behaviour.tcp_established_timeout,
            behaviour.tcp_transitory_timeout,
        )
        for key, tracked in list(self.tracked.items()):
            if now - tracked.seen > (transitory if tracked.closing else established):
                del self.tracked[key]

    def _handle(
        self,
        packet: Packet,
        connection: Connection,
        way: int,
        run: Callable[[bytes], AlgResult],
        now: float,
    ) -> list[Event]:
        """The ALG's rewrite of the payload, then the connection's sequence shift, if any."""
        tcp = packet.proto == Proto.TCP
        tracked = self._track(packet, connection, now) if tcp else None
        span = _payload(packet)
        events: list[Event] = []
        header = (packet.data[0] & 0x0F) * 4
        seq = int.from_bytes(packet.data[header + 4 : header + 8], "big") if tcp else 0
        if span is not None:
            payload = bytes(packet.data[span[0] : span[1]])
            if payload.strip(b"\r\n"):  # CRLFs alone are RFC 5626 keepalives, not messages
                if tcp:
                    result = self._stream(tracked, way, seq, run, payload)
                else:
                    result = _guarded(run, payload)
                events = self._apply(packet, span, result, way, now)
            if tracked is not None:
                tracked.adjust.ways[way].saw(seq, span[1] - span[0])
        if tracked is not None and tracked.adjust.shifting:
            adjust_segment(packet.data, header, tracked.adjust, way)
        return events

    def _track(self, packet: Packet, connection: Connection, now: float) -> Tracked | None:
        """The connection's state; a new SYN starts it afresh. None once MAX_CONNECTIONS are."""
        flags = packet.tcp_flags
        tracked = self.tracked.get(connection)
        if tracked is None or flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            self.tracked.pop(connection, None)
            if len(self.tracked) >= MAX_CONNECTIONS:
                return None
            tracked = self.tracked[connection] = Tracked(now)
        tracked.seen = now
        if flags & (TCP_FIN | TCP_RST):
            tracked.closing = True
        return tracked

    def _stream(
        self,
        tracked: Tracked | None,
        way: int,
        seq: int,
        run: Callable[[bytes], AlgResult],
        payload: bytes,
    ) -> AlgResult:
        """The ALG over a TCP segment: each whole SIP message in it, recorded on its own, or
        none when the segment ends inside one."""
        parts: list[bytes] = []
        events: list[AlgEvent] = []
        for offset, piece, whole in _pieces(payload, seq, tracked, way):
            if not whole:
                parts.append(piece)
                events.append(Untouched(SPLIT))
                continue
            result = _guarded(run, piece)
            if any(isinstance(event, Rewritten) for event in result.events):
                at = (seq + offset) % MOD
                refused = _refusal(tracked, way, at, len(piece), len(result.payload))
                if refused is not None:
                    kept = [e for e in result.events if not isinstance(e, Rewritten)]
                    result = AlgResult(piece, (*kept, Untouched(refused)))
            parts.append(result.payload)
            events.extend(result.events)
        return AlgResult(b"".join(parts), tuple(events))

    def _apply(
        self, packet: Packet, span: tuple[int, int], result: AlgResult, way: int, now: float
    ) -> list[Event]:
        """The ALG's answer as events; its payload put in, if it rewrote anything."""
        src, dst, proto = packet.src, packet.dst, packet.proto
        direction = "outbound" if way == OUTBOUND else "inbound"
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
        if rewritten:
            _replace_payload(packet, span[0], result.payload)
        return events


def _refusal(tracked: Tracked | None, way: int, seq: int, sent: int, new: int) -> str | None:
    """Why the message at `seq` cannot be rewritten from `sent` to `new` bytes; None if it can
    (and then it is recorded)."""
    if tracked is None:
        if sent == new:
            return None
        return (
            f"the rewrite would change this message's length and the ALG already follows "
            f"{MAX_CONNECTIONS} TCP connections: forwarded as it came"
        )
    if tracked.adjust.record(way, seq, sent, new):
        return None
    return (
        f"rewriting the SIP message at seq {seq} from {sent} to {new} bytes does not fit the "
        "sequence numbers already shifted (a retransmission rewritten to another length, or "
        "a message the router already forwarded as it came, split across segments): "
        "forwarded as it came"
    )


def _pieces(
    payload: bytes, seq: int, tracked: Tracked | None, way: int
) -> Iterator[tuple[int, bytes, bool]]:
    """A TCP segment cut into (offset, bytes, whether a whole SIP message): the messages
    its framing shows, and what lies between (part of a message split across segments).
    Where a message rewritten before starts (a retransmission that begins inside an
    earlier message) is always a cut, so that it is found and rewritten again."""
    ways = None if tracked is None else tracked.adjust.ways[way]
    at = 0
    while at < len(payload):
        limit = len(payload)
        if ways is not None:
            resync = ways.next_rewrite((seq + at) % MOD, (seq + limit) % MOD)
            limit = limit if resync is None else (resync - seq) % MOD
        try:
            cut = split_stream(payload[at:limit])
        except SipError:
            cut = None
        piece = payload[at:limit] if cut is None else cut[0]
        yield at, piece, cut is not None
        at += len(piece)


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
