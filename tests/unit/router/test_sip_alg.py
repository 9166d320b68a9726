"""The SIP ALG in the dataplane: real packets through the engine and the ALG, checked by scapy.

What scapy reads back is what a host would receive: lengths and checksums
are verified by recomputing them, not by trusting what natlab wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from natlab.core.engine import Action
from natlab.core.events import SipPinhole, SipRewritten, SipUntouched
from natlab.core.packets import Endpoint, parse
from natlab.router.sip_alg import SipAlg, sip_alg_of
from natlab.sip import message as sip
from natlab.sip import sdp
from natlab.sip.alg import rewrite
from natlab.sip.errors import SipError
from tests.unit.core.helpers import WAN, nat, udp

PHONE = Endpoint("10.0.0.2", 5060)
PBX = Endpoint("198.51.100.1", 5060)
OTHER = Endpoint("198.51.100.2", 7078)  # the far phone's media: not the PBX
BODY = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:bob@198.51.100.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport\r\n"
    b"From: <sip:alice@10.0.0.2>;tag=1\r\nTo: <sip:bob@198.51.100.1>\r\n"
    b"Call-ID: c@10.0.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.2:5060>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n"
) + BODY


def _outbound(mode: str, payload: bytes = INVITE, **nat_settings):
    engine = nat("symmetric", ports="random", seed=7, **nat_settings)
    alg = SipAlg(mode, engine)  # type: ignore[arg-type]
    packet = udp(f"{PHONE}", f"{PBX}", payload)
    assert engine.outbound(packet, 1.0).action is Action.FORWARD_OUT
    events = alg.outbound(packet, PHONE, 1.0)
    return engine, packet, events


def _valid_udp(data: bytes) -> UDP:
    """The datagram as scapy reads it, its lengths and checksums compared with scapy's own."""
    ip = IP(bytes(data))
    assert ip.len == len(data)
    assert ip[UDP].len == len(data) - 20
    again = ip.copy()
    del again.chksum, again[UDP].chksum, again.len, again[UDP].len
    again = IP(bytes(again))
    assert ip.chksum == again.chksum
    assert ip[UDP].chksum in (0, again[UDP].chksum)
    return ip[UDP]


def test_rewrite_mode_rewrites_the_invite_and_its_packet_stays_valid():
    engine, packet, events = _outbound("rewrite")
    datagram = _valid_udp(packet.data)
    message = sip.parse(bytes(datagram.payload))
    public = packet.src
    assert public.address == WAN
    assert message.values("Via")[0] == f"SIP/2.0/UDP {public};branch=z9hG4bK1;rport"
    description = sdp.parse(message.body)
    (audio,) = description.media
    assert sdp.connection_address(description) == WAN
    mappings = {m.internal: m for m in engine.mappings(1.0)}
    rtp, rtcp = mappings[Endpoint("10.0.0.2", 4000)], mappings[Endpoint("10.0.0.2", 4001)]
    assert audio.port == rtp.external.port, "the SDP names the mapping the router made"
    assert "any (SIP ALG pinhole)" in rtp.permissions
    pinholes = [e for e in events if isinstance(e, SipPinhole)]
    assert [(p.internal, p.external) for p in pinholes] == [
        (rtp.internal, rtp.external),
        (rtcp.internal, rtcp.external),
    ]
    headers = [e.header for e in events if isinstance(e, SipRewritten)]
    assert headers[:3] == ["Via", "Contact", "SDP c="]
    assert "Content-Length" in headers


def test_the_pinhole_lets_the_far_phones_media_in_and_nothing_else_without_it():
    engine, packet, _ = _outbound("rewrite")
    (audio,) = sdp.parse(sip.parse(bytes(_valid_udp(packet.data).payload)).body).media
    media = udp(f"{OTHER}", f"{WAN}:{audio.port}", b"rtp")
    assert engine.inbound(media, 2.0).action is Action.FORWARD_IN
    assert media.dst == Endpoint("10.0.0.2", 4000)
    stray = udp(f"{OTHER}", f"{WAN}:{packet.src.port}", b"x")  # the signalling mapping: no pinhole
    assert engine.inbound(stray, 2.0).action is Action.DROP


def test_broken_mode_writes_the_public_address_with_the_private_port_and_opens_nothing():
    engine, packet, events = _outbound("broken")
    description = sdp.parse(sip.parse(bytes(_valid_udp(packet.data).payload)).body)
    (audio,) = description.media
    assert (sdp.connection_address(description), audio.port) == (WAN, 4000)
    assert not any(isinstance(e, SipPinhole) for e in events)
    assert [m.internal for m in engine.mappings(1.0)] == [PHONE], "only signalling is mapped"
    media = udp(f"{OTHER}", f"{WAN}:4000", b"rtp")
    assert engine.inbound(media, 2.0).action is Action.DROP, "the far phone's audio goes nowhere"


def test_an_inbound_response_gets_the_private_via_back():
    engine, packet, _ = _outbound("rewrite")
    public = packet.src
    ringing = (
        f"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP {public};branch=z9hG4bK1;rport={public.port}\r\n"
        "From: <sip:alice@10.0.0.2>;tag=1\r\nTo: <sip:bob@198.51.100.1>;tag=2\r\n"
        "Call-ID: c@10.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    back = udp(f"{PBX}", f"{public}", ringing)
    assert engine.inbound(back, 1.5).action is Action.FORWARD_IN
    events = SipAlg("rewrite", engine).inbound(back, public, 1.5)
    via = sip.parse(bytes(_valid_udp(back.data).payload)).values("Via")[0]
    assert via.startswith("SIP/2.0/UDP 10.0.0.2:5060;")
    assert [e.header for e in events if isinstance(e, SipRewritten)] == ["Via"]


def test_a_udp_datagram_without_checksum_keeps_none():
    packet = udp(f"{PHONE}", f"{PBX}", INVITE)
    packet.data[26:28] = b"\0\0"
    engine = nat()
    engine.outbound(packet, 1.0)
    SipAlg("rewrite", engine).outbound(packet, PHONE, 1.0)
    assert packet.data[26:28] == b"\0\0"
    assert IP(bytes(packet.data))[UDP].len == len(packet.data) - 20


def _tcp(payload: bytes, seq: int = 1000, ack: int = 0, flags: str = "PA", src=PHONE, dst=PBX):
    raw = bytes(
        IP(src=src.address, dst=dst.address)
        / TCP(sport=src.port, dport=dst.port, flags=flags, seq=seq, ack=ack)
        / payload
    )
    return parse(raw)


def _valid_tcp(data: bytes) -> TCP:
    """The segment as scapy reads it, its IP length and both checksums recomputed by scapy."""
    segment = IP(bytes(data))
    assert segment.len == len(data)
    again = segment.copy()
    del again.chksum, again[TCP].chksum
    again = IP(bytes(again))
    assert (segment.chksum, segment[TCP].chksum) == (again.chksum, again[TCP].chksum)
    return segment[TCP]


@dataclass
class Passed:
    """A segment as it left the router, what the ALG said of it, its source then."""

    data: bytearray
    events: list
    src: Endpoint


class Connection:
    """A TCP connection from the phone to the PBX through an engine and its ALG."""

    def __init__(self, mode: str = "rewrite", phone_isn: int = 1000, pbx_isn: int = 5000) -> None:
        self.engine = nat()
        self.alg = SipAlg(mode, self.engine)  # type: ignore[arg-type]
        self.now = 1.0
        self.public = self.out(b"", phone_isn - 1, 0, "S").src
        self.back(b"", pbx_isn - 1, phone_isn, "SA")

    def out(self, payload: bytes, seq: int, ack: int, flags: str = "PA") -> Passed:
        """A segment the phone sends, as it leaves the router."""
        packet = _tcp(payload, seq, ack, flags)
        self.now += 0.01
        assert self.engine.outbound(packet, self.now).action is Action.FORWARD_OUT
        return Passed(packet.data, self.alg.outbound(packet, PHONE, self.now), packet.src)

    def shifting(self) -> bool:
        """The ALG shifts this connection's sequence numbers."""
        return any(tracked.adjust.shifting for tracked in self.alg.tracked.values())

    def back(self, payload: bytes, seq: int, ack: int, flags: str = "PA") -> Passed:
        """A segment the PBX sends the phone's public endpoint, as it reaches the phone."""
        packet = _tcp(payload, seq, ack, flags, src=PBX, dst=self.public)
        self.now += 0.01
        assert self.engine.inbound(packet, self.now).action is Action.FORWARD_IN
        return Passed(packet.data, self.alg.inbound(packet, self.public, self.now), packet.src)


def _ok(public: Endpoint) -> bytes:
    """The PBX's 200 to a REGISTER, its top Via naming the phone's public endpoint."""
    return (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP {public};branch=z9hG4bK1\r\n"
        "From: <sip:alice@198.51.100.1>;tag=1\r\nTo: <sip:alice@198.51.100.1>;tag=2\r\n"
        "Call-ID: r@10.0.0.2\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_tcp_rewrite_that_changes_the_length_shifts_the_rest_of_the_connection_both_ways():
    c = Connection()
    invite = c.out(INVITE, 1000, 5000)
    sent = _valid_tcp(invite.data)
    assert any(isinstance(e, SipRewritten) for e in invite.events)
    assert b"203.0.113.1" in bytes(sent.payload) and sent.seq == 1000
    grown = len(sent.payload) - len(INVITE)
    assert grown, "10.0.0.2 -> 203.0.113.1 changes the length"
    # the PBX acks the rewritten bytes; the phone sees its own sequence space
    acked = _valid_tcp(c.back(b"", 5000, 1000 + len(sent.payload), "A").data)
    assert acked.ack == 1000 + len(INVITE)
    # a retransmission gets the same rewrite at the same seq, counted once
    again = _valid_tcp(c.out(INVITE, 1000, 5000).data)
    assert (again.seq, bytes(again.payload)) == (1000, bytes(sent.payload))
    # the PBX's answer is rewritten back (Via public -> private), shifting the other way
    ok = _ok(c.public)
    answer = c.back(ok, 5000, 1000 + len(sent.payload))
    answered = _valid_tcp(answer.data)
    shrunk = len(answered.payload) - len(ok)
    assert b"Via: SIP/2.0/TCP 10.0.0.2:5060;" in bytes(answered.payload) and shrunk
    assert answered.ack == 1000 + len(INVITE)
    # the phone's next segments: seq shifted by the INVITE's change, ack by the answer's
    bye = _valid_tcp(c.out(b"x" * 10, 1000 + len(INVITE), 5000 + len(ok) + shrunk).data)
    assert (bye.seq, bye.ack) == (1000 + len(sent.payload), 5000 + len(ok))
    fin = _valid_tcp(c.out(b"", 1010 + len(INVITE), 5000 + len(ok) + shrunk, "FA").data)
    assert (fin.seq, fin.ack) == (1010 + len(sent.payload), 5000 + len(ok))
    assert c.shifting(), "still tracked after the FIN"
    c.alg.expire(c.now + c.engine.config.behaviour.tcp_transitory_timeout + 1)
    assert not c.alg.tracked, "forgotten after the transitory timeout"


def test_a_new_syn_on_the_same_endpoints_starts_with_nothing_shifted():
    c = Connection()
    c.out(INVITE, 1000, 5000)
    assert c.shifting()
    c.out(b"", 777, 0, "S")
    assert not c.shifting()
    plain = _valid_tcp(c.out(b"x", 778, 5000, "PA").data)
    assert plain.seq == 778


def test_a_sip_message_split_across_segments_passes_untouched_with_an_event_but_shifted():
    c = Connection()
    first = c.out(INVITE, 1000, 5000)
    grown = len(_valid_tcp(first.data).payload) - len(INVITE)
    register = INVITE.replace(b"INVITE", b"REGISTER").split(b"Content-Type")[0]
    whole = register + b"Content-Length: 0\r\n\r\n"
    head, tail = whole[:50], whole[50:]
    part = c.out(head, 1000 + len(INVITE), 5000)
    (untouched,) = [e for e in part.events if isinstance(e, SipUntouched)]
    assert "split across segments" in untouched.detail
    assert not any(isinstance(e, SipRewritten) for e in part.events)
    assert _valid_tcp(part.data).seq == 1000 + len(INVITE) + grown
    assert bytes(_valid_tcp(part.data).payload) == head
    rest = c.out(tail, 1050 + len(INVITE), 5000)
    assert bytes(_valid_tcp(rest.data).payload) == tail
    assert not any(isinstance(e, SipRewritten) for e in rest.events)


def test_crlf_keepalives_pass_without_an_event():
    c = Connection()
    assert c.out(b"\r\n\r\n", 1000, 5000).events == []
    assert c.back(b"\r\n", 5000, 1004).events == []


MESSAGES = [
    (
        f"OPTIONS sip:bob@198.51.100.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bK{n}\r\n"
        f"From: <sip:alice@10.0.0.2>;tag={n}\r\nTo: <sip:bob@198.51.100.1>\r\n"
        f"Call-ID: {n * 'c'}@10.0.0.2\r\nCSeq: 1 OPTIONS\r\n"
        "Contact: <sip:alice@10.0.0.2:5060>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    for n in (1, 2, 3)
]


def _expected(segments: list[bytes], public: Endpoint) -> bytes:
    """What the PBX must read: the whole messages each segment begins with rewritten, what
    follows them in it (a message cut by the segment's end, or its middle) as sent."""
    out = b""
    for segment in segments:
        rest, rewritten = segment, b""
        while rest:
            try:
                cut = sip.split_stream(rest)
            except SipError:  # the middle of a message: no SIP framing at all
                cut = None
            if cut is None:
                rewritten += rest
                break
            message, rest = cut
            rewritten += rewrite(
                message,
                mode="rewrite",
                private=(PHONE.address, PHONE.port),
                public=(public.address, public.port),
                map_media=lambda address: address,  # no SDP: never asked
            ).payload
        out += rewritten
    return out


def test_a_retransmission_that_begins_inside_a_message_rewrites_the_next_one_again():
    """m0 split in two segments (passed as sent), m1 in a third (rewritten); the sender
    then sends m0's second half and m1 again in one segment: m1 is found again where it
    was rewritten, and rewritten the same."""
    c = Connection(phone_isn=1000)
    m0, m1 = MESSAGES[0], MESSAGES[1]
    cut = len(m0) - 2  # "\r\n" + m1 looks framed, but is no message
    c.out(m0[:cut], 1000, 5000)
    c.out(m0[cut:], 1000 + cut, 5000)
    first = _valid_tcp(c.out(m1, 1000 + len(m0), 5000).data)
    assert len(first.payload) > len(m1), "m1 rewritten"
    again = c.out(m0[cut:] + m1, 1000 + cut, 5000)
    segment = _valid_tcp(again.data)
    assert segment.seq == 1000 + cut
    assert bytes(segment.payload) == m0[cut:] + bytes(first.payload)
    assert any(isinstance(e, SipUntouched) and "split" in e.detail for e in again.events)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(range(len(MESSAGES))), min_size=1, max_size=6),
    st.data(),
    st.sampled_from([1000, 2**32 - 700]),
)
def test_a_stream_of_sip_messages_cut_anywhere_reaches_the_pbx_consistent(picks, data, isn):
    """Messages chopped at random points, segments retransmitted at random, alone or
    collapsed with the ones after them as Linux retransmits: the PBX reads the stream as
    the first transmission of each segment made it (_expected), every copy of a byte the
    same (a message split at first and whole when sent again stays as it was; one
    rewritten at first is rewritten again, wherever the retransmission begins), and its
    ack for all of it comes back to the phone as the end of what it sent."""
    stream = b"".join(MESSAGES[i] for i in picks)
    starts = {sum(len(MESSAGES[i]) for i in picks[:n]) for n in range(len(picks) + 1)}
    anywhere = st.integers(1, len(stream) - 1)
    between = sorted(starts - {0, len(stream)})  # often between two messages, too
    cut = st.one_of(anywhere, st.sampled_from(between)) if between else anywhere
    cuts = sorted(set(data.draw(st.lists(cut, max_size=8), "cuts")))
    bounds = [0, *cuts, len(stream)]
    segments = [stream[a:b] for a, b in pairwise(bounds)]
    c = Connection(phone_isn=isn)
    received: dict[int, int] = {}  # the PBX's bytes by offset
    for index in range(len(segments)):
        for repeat in range(1 + data.draw(st.integers(0, 2), f"retransmissions {index}")):
            first = data.draw(st.integers(0, index), "from") if repeat else index
            last = data.draw(st.integers(first, index), "to") if repeat else index
            seq = (isn + bounds[first]) % 2**32
            arrived = _valid_tcp(c.out(stream[bounds[first] : bounds[last + 1]], seq, 5000).data)
            offset = (arrived.seq - isn) % 2**32
            for at, byte in enumerate(bytes(arrived.payload), offset):
                assert received.setdefault(at, byte) == byte, f"byte {at} arrived otherwise"
    expected = _expected(segments, c.public)
    assert sorted(received) == list(range(len(expected))), "every byte, none beyond"
    assert bytes(received[at] for at in range(len(expected))) == expected
    ack = _valid_tcp(c.back(b"", 5000, (isn + len(expected)) % 2**32, "A").data).ack
    assert ack == (isn + len(stream)) % 2**32


def test_sip_alg_of_reads_the_config_word():
    engine = nat()
    assert sip_alg_of("off", engine) is None
    assert isinstance(sip_alg_of("broken", engine), SipAlg)
    try:
        sip_alg_of("on", engine)
    except ValueError as refused:
        assert "rewrite" in str(refused)
    else:
        raise AssertionError("an unknown mode was taken")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=1400),
        st.builds(
            lambda cut, junk: INVITE[:cut] + junk,
            st.integers(0, len(INVITE)),
            st.sampled_from([b"", b"\r\n", b"\xff\xfe", b"\r\nVia: x\r\n\r\n", b"\x00" * 40]),
        ),
    ),
    st.sampled_from(["rewrite", "broken"]),
)
def test_any_payload_on_port_5060_leaves_a_valid_packet_and_never_raises(payload, mode):
    _, packet, events = _outbound(mode, payload)
    datagram = _valid_udp(packet.data)
    if not any(isinstance(e, SipRewritten) for e in events):
        assert bytes(datagram.payload) == payload


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1400), st.sampled_from(["rewrite", "broken"]))
def test_any_tcp_payload_on_port_5060_leaves_a_valid_segment_and_never_raises(payload, mode):
    c = Connection(mode)
    segment = c.out(payload, 1000, 5000)
    arrived = _valid_tcp(segment.data)
    if not any(isinstance(e, SipRewritten) for e in segment.events):
        assert bytes(arrived.payload) == payload
