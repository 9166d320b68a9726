"""The SIP ALG in the dataplane: real packets through the engine and the ALG, checked by scapy.

What scapy reads back is what a host would receive: lengths and checksums
are verified by recomputing them, not by trusting what natlab wrote.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from natlab.core.engine import Action
from natlab.core.events import SipPinhole, SipRewritten, SipUntouched
from natlab.core.packets import Endpoint, parse
from natlab.router.sip_alg import SipAlg, sip_alg_of
from natlab.sip import message as sip
from natlab.sip import sdp
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


def _tcp(payload: bytes):
    raw = bytes(
        IP(src=PHONE.address, dst=PBX.address)
        / TCP(sport=PHONE.port, dport=PBX.port, flags="PA", seq=1000)
        / payload
    )
    return parse(raw)


def test_tcp_is_rewritten_only_when_its_length_stays():
    engine = nat()
    alg = SipAlg("rewrite", engine)
    syn = parse(bytes(IP(src=PHONE.address, dst=PBX.address) / TCP(sport=5060, dport=5060)))
    engine.outbound(syn, 1.0)
    changing = _tcp(INVITE)
    engine.outbound(changing, 1.1)
    before = bytes(changing.data)
    events = alg.outbound(changing, PHONE, 1.1)
    assert bytes(changing.data) == before
    assert isinstance(events[-1], SipUntouched) and "sequence" in events[-1].detail
    assert not any(isinstance(e, SipRewritten) for e in events)
    # 10.0.0.2 -> 203.0.113.1 changes the length; 10.0.10.222 -> 203.0.113.1 keeps it
    head = INVITE.split(b"Content-Type")[0].replace(b"10.0.0.2", b"10.0.10.222")
    same_length = parse(
        bytes(
            IP(src="10.0.10.222", dst=PBX.address)
            / TCP(sport=5060, dport=5060, flags="PA", seq=1)
            / (head + b"Content-Length: 0\r\n\r\n")
        )
    )
    private = same_length.src
    same_length.set_source(Endpoint("203.0.113.1", 5060))
    events = SipAlg("broken", engine).outbound(same_length, private, 1.2)
    assert any(isinstance(e, SipRewritten) for e in events)
    segment = IP(bytes(same_length.data))
    assert b"203.0.113.1" in bytes(segment[TCP].payload)
    again = segment.copy()
    del again.chksum, again[TCP].chksum
    again = IP(bytes(again))
    assert (segment.chksum, segment[TCP].chksum) == (again.chksum, again[TCP].chksum)


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
def test_any_tcp_payload_on_port_5060_keeps_its_length_and_a_valid_checksum(payload, mode):
    engine = nat()
    syn = parse(bytes(IP(src=PHONE.address, dst=PBX.address) / TCP(sport=5060, dport=5060)))
    engine.outbound(syn, 1.0)
    segment = _tcp(payload)
    engine.outbound(segment, 1.1)
    SipAlg(mode, engine).outbound(segment, PHONE, 1.1)  # type: ignore[arg-type]
    arrived = IP(bytes(segment.data))
    assert len(segment.data) == arrived.len == 40 + len(payload)
    again = arrived.copy()
    del again.chksum, again[TCP].chksum
    again = IP(bytes(again))
    assert (arrived.chksum, arrived[TCP].chksum) == (again.chksum, again[TCP].chksum)
