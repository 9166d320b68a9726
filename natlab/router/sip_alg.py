"""The router's SIP ALG in the dataplane: SIP packets handed to natlab.sip.alg and rewritten.

The daemon hands over a packet after the engine translated it, when the ALG
is on and port 5060 is on either side (the daemon's check, the only cost for
other traffic; SIP over TLS on 5061 is never looked at, as no ALG can read
it). Outbound, the ALG rewrites the sender's private address to its public
mapping and opens a pinhole (NatEngine.open_pinhole) for each media port of
its SDP; inbound, it rewrites the public endpoint back where consumer ALGs do.

The payload is rewritten and the packet rebuilt in place: IP total length and
header checksum, UDP length and checksum (recomputed: the payload changed
wholesale). Over TCP a rewrite that changes a segment's length shifts the
rest of the connection's sequence space, as Linux's nf_nat_seq_adjust does
(natlab.core.seq_adjust): from then on every segment of that connection, both
ways (pure ACKs, FIN and RST included), gets its seq, ack and SACK blocks
adjusted here, which SIP's port keeps off the daemon's flow cache. Each
message of a segment is recorded on its own, so a retransmission that joins
a rewritten message with the next ones (as Linux retransmits) still fits. A
connection is known by its private and remote endpoints, forgotten after the
engine's TCP timeout of silence (transitory once a FIN or RST passed), or
when a new SYN opens it again. A TCP segment that does not end where a SIP
message ends (a message split across segments) is not rewritten: it passes
as it came, shifted, with a `sip-untouched` event that says so; so does the
rare rewrite the sequence space cannot take (a retransmission rewritten to
another length; MAX_CONNECTIONS tracked). A segment of several whole
messages has each rewritten.

Nothing here raises on what comes from the wire: the pure ALG answers
anything with an "untouched" event, and an unexpected failure of it is one
event too, with the packet forwarded as it came.
"""

from __future__ import annotations

from collections.abc import Callable

from natlab.core.checksum import internet_checksum
from natlab.core.engine import NatEngine
from natlab.core.events import Event, SipPinhole, SipRewritten, SipUntouched
from natlab.core.packets import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Endpoint, Packet, Proto
from natlab.core.seq_adjust import MOD, SeqAdjust, adjust_segment
from natlab.sip.alg import (
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
MAX_CONNECTIONS = 4096  # TCP connections whose sequence numbers the ALG shifts at once
OUTBOUND, INBOUND = 0, 1  # the two ways of a connection (natlab.core.seq_adjust)
SPLIT = (
    "this TCP segment does not end where a SIP message ends (a message split across "
    "segments): natlab's ALG rewrites only messages a segment holds whole; forwarded as it came"
)

Connection = tuple[Endpoint, Endpoint]
"""A TCP connection through the router: its private endpoint and its remote one."""
Pieces = tuple[tuple[int, int], ...]
"""The SIP messages of a TCP segment, in order: each one's length as sent and as rewritten."""


def sip_alg_of(mode: str, engine: NatEngine) -> SipAlg | None:
    """The ALG a router's config asks for; None when it is off."""
    if mode == "off":
        return None
    if mode == "rewrite" or mode == "broken":
        return SipAlg(mode, engine)
    raise ValueError(f"sip_alg {mode!r} is none of {', '.join(MODES)}")


class Shifted:
    """A TCP connection whose sequence space a rewrite shifted: its corrections, when last seen."""

    __slots__ = ("adjust", "closing", "seen")

    def __init__(self, adjust: SeqAdjust, now: float) -> None:
        self.adjust = adjust
        self.seen = now
        self.closing = False  # a FIN or RST passed: forgotten after the transitory timeout


class SipAlg:
    """One router's ALG: its mode, the engine it opens pinholes in, its shifted connections."""

    def __init__(self, mode: AlgMode, engine: NatEngine) -> None:
        self.mode = mode
        self.engine = engine
        self.shifted: dict[Connection, Shifted] = {}

    def outbound(self, packet: Packet, private: Endpoint, now: float) -> list[Event]:
        """A packet the LAN host at `private` sent, its source already translated."""
        dst = packet.dst

        def map_media(address: tuple[str, int]) -> tuple[str, int]:
            opened = self.engine.open_pinhole(Endpoint(*address), dst, now)
            # no port left (the engine's exhausted event says so): what a broken ALG writes
            return (packet.src.address, address[1]) if opened is None else opened

        def run(payload: bytes) -> AlgResult:
            return rewrite(
                payload, mode=self.mode, private=private, public=packet.src, map_media=map_media
            )

        return self._handle(packet, (private, dst), OUTBOUND, run, now)

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
        for key, shifted in list(self.shifted.items()):
            if now - shifted.seen > (transitory if shifted.closing else established):
                del self.shifted[key]

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
        if tcp:
            self._seen(packet, connection, now)
        span = _payload(packet)
        events: list[Event] = []
        if span is not None:
            payload = bytes(packet.data[span[0] : span[1]])
            if payload.strip(b"\r\n"):  # CRLFs alone are RFC 5626 keepalives, not messages
                result, pieces = (
                    _each_message(run, payload) if tcp else (_guarded(run, payload), ())
                )
                events = self._apply(packet, span, result, pieces, connection, way, now)
        shifted = self.shifted.get(connection) if tcp else None
        if shifted is not None:
            adjust_segment(packet.data, (packet.data[0] & 0x0F) * 4, shifted.adjust, way)
        return events

    def _seen(self, packet: Packet, connection: Connection, now: float) -> None:
        """A segment of `connection`: a new SYN forgets its old sequence space."""
        flags = packet.tcp_flags
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            self.shifted.pop(connection, None)
            return
        shifted = self.shifted.get(connection)
        if shifted is not None:
            shifted.seen = now
            if flags & (TCP_FIN | TCP_RST):
                shifted.closing = True

    def _apply(
        self,
        packet: Packet,
        span: tuple[int, int],
        result: AlgResult,
        pieces: Pieces,
        connection: Connection,
        way: int,
        now: float,
    ) -> list[Event]:
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
        if not rewritten:
            return events
        if proto == Proto.TCP:
            refused = self._shift(packet, connection, way, pieces, now)
            if refused is not None:
                kept = [e for e in events if not isinstance(e, SipRewritten)]
                return [*kept, SipUntouched(now, direction, proto, src, dst, refused)]
        _replace_payload(packet, span[0], result.payload)
        return events

    def _shift(
        self, packet: Packet, connection: Connection, way: int, pieces: Pieces, now: float
    ) -> str | None:
        """Record the rewrite of each message of a TCP segment; why not, if it cannot be."""
        header = (packet.data[0] & 0x0F) * 4
        seq = int.from_bytes(packet.data[header + 4 : header + 8], "big")
        shifted = self.shifted.get(connection)
        if shifted is None:
            if all(sent == forwarded for sent, forwarded in pieces):
                return None
            if len(self.shifted) >= MAX_CONNECTIONS:
                return (
                    "the rewrite would change this TCP segment's length and the ALG already "
                    f"shifts the sequence numbers of {MAX_CONNECTIONS} connections: "
                    "forwarded as it came"
                )
            shifted = Shifted(SeqAdjust(), now)
        at = seq
        for sent, forwarded in pieces:
            # a refusal never follows a record that changed anything (seq_adjust.Way.record)
            if not shifted.adjust.record(way, at, sent, forwarded):
                return (
                    f"rewriting the SIP message at seq {at} of this TCP segment from {sent} to "
                    f"{forwarded} bytes does not fit the sequence numbers already shifted (a "
                    "retransmission rewritten to another length, or a message older than the "
                    "latest rewrite): forwarded as it came"
                )
            at = (at + sent) % MOD
        if shifted.adjust.shifting:
            self.shifted.setdefault(connection, shifted)
        return None


def _each_message(run: Callable[[bytes], AlgResult], payload: bytes) -> tuple[AlgResult, Pieces]:
    """The ALG over a TCP segment: each whole SIP message in it, or none when one is cut;
    with each message's length as sent and as rewritten."""
    done: list[tuple[bytes, AlgResult]] = []
    rest = payload
    while rest:
        try:
            cut = split_stream(rest)
        except SipError:  # not SIP framing: the ALG says what it is not
            result = _guarded(run, payload)
            return result, ((len(payload), len(result.payload)),)
        if cut is None:
            return AlgResult(payload, (Untouched(SPLIT),)), ()
        message, rest = cut
        done.append((message, _guarded(run, message)))
    rewritten = b"".join(result.payload for _, result in done)
    events = tuple(event for _, result in done for event in result.events)
    return AlgResult(rewritten, events), tuple((len(m), len(r.payload)) for m, r in done)


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
