"""What phones and the PBX put on the wire: framing, SDP offers, dialog headers, relay policy."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.pbx import Flow, Pbx, PbxConfig, Registration, RelayLeg, parse_policy
from natlab.endpoints.sdp_offer import Fallback, MediaOffer, ice_fallback, relay_sdp
from natlab.endpoints.sip_transport import (
    Garbled,
    Keepalive,
    StreamFramer,
    format_endpoint,
    parse_endpoint,
)
from natlab.records import Candidate, RtpCounts, SelectedPair
from natlab.sip import sdp
from natlab.sip.headers import SipUri
from natlab.sip.message import SipMessage

HOST = "1 1 udp 2130706431 10.0.0.3 4000 typ host"
SRFLX = "2 1 udp 1694498815 203.0.113.7 50000 typ srflx raddr 10.0.0.3 rport 4000"
ICE = MediaOffer("abcd", "p" * 22, (HOST, SRFLX))


def request(method: str, cseq: int = 1, headers: dialogs.Headers = ()) -> SipMessage:
    return dialogs.request(
        method,
        "sip:203.0.113.1",
        via_value=dialogs.via("tcp", "10.0.0.3", 40000),
        from_value="<sip:phone-a@203.0.113.1>;tag=x",
        to_value="<sip:phone-a@203.0.113.1>;tag=y" if method == "BYE" else "<sip:phone-a@x>",
        call_id="reg-1",
        cseq=cseq,
        headers=headers,
    )


def register(cseq: int = 1) -> SipMessage:
    return request("REGISTER", cseq)


# -- framing on streams ----------------------------------------------------------------------


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=1, max_value=400), max_size=8), st.booleans())
def test_a_stream_cut_anywhere_gives_back_the_same_messages_and_keepalives(
    cuts: list[int], server: bool
) -> None:
    keepalive = b"\r\n\r\n" if server else b"\r\n"
    stream = keepalive + register(1).to_bytes() + keepalive + register(2).to_bytes()
    framer, found, position = StreamFramer(server), [], 0
    for cut in [*cuts, len(stream)]:
        found += framer.feed(stream[position : position + cut])
        position += cut
    kinds = [a.ping if isinstance(a, Keepalive) else dialogs.cseq_number(a) for a in found]
    assert kinds == [server, 1, server, 2]
    assert not framer.broken and framer.buffer == b""


def test_a_frame_without_content_length_breaks_the_stream_and_one_bad_message_does_not() -> None:
    bad = register().to_bytes().replace(b"CSeq: 1 REGISTER", b"CSeq: x REGISTER")
    framer = StreamFramer(server=True)
    [garbled, good] = framer.feed(bad + register(2).to_bytes())
    assert isinstance(garbled, Garbled) and "CSeq" in garbled.reason
    assert isinstance(good, SipMessage) and not framer.broken
    [lost] = framer.feed(b"REGISTER sip:x SIP/2.0\r\nVia: x\r\n\r\n")
    assert isinstance(lost, Garbled) and framer.broken


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_whatever_bytes_come_the_framer_answers_with_arrivals_only(data: bytes) -> None:
    for arrival in StreamFramer(server=True).feed(data):
        assert isinstance(arrival, SipMessage | Garbled | Keepalive)


# -- SDP offers ------------------------------------------------------------------------------


def test_an_ice_offer_round_trips_with_its_default_address_in_c_and_m() -> None:
    body = ICE.to_sdp(session=7)
    parsed = sdp.parse(body)
    [audio] = parsed.media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == (
        "audio",
        4000,
        "RTP/AVP",
        ("0",),
    )
    assert sdp.connection_address(parsed, audio) == "10.0.0.3"  # the phone's own private address
    assert sdp.attribute_values(audio, "end-of-candidates") == [""]
    assert MediaOffer.from_sdp(body) == MediaOffer(
        ICE.ufrag, ICE.pwd, ICE.candidates, ("10.0.0.3", 4000)
    )


def test_a_plain_offer_has_no_ice_and_the_relay_rewrite_drops_ice_and_marks_the_relay() -> None:
    plain = MediaOffer(rtp=("203.0.113.2", 4000))
    assert MediaOffer.from_sdp(plain.to_sdp()) == plain and not plain.ice
    relayed = MediaOffer.from_sdp(relay_sdp(ICE.to_sdp(), ("203.0.113.1", 40000)))
    assert relayed == MediaOffer(rtp=("203.0.113.1", 40000), relay=True)


def test_the_relay_rewrite_keeps_a_generic_uas_codecs() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nt=0 0\r\n"
        b"m=audio 7078 RTP/AVP 0 8 101\r\nc=IN IP4 10.0.0.5\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    rewritten = sdp.parse(relay_sdp(body, ("203.0.113.1", 40001)))
    [audio] = rewritten.media
    assert audio.formats == ("0", "8", "101") and ("a", "rtpmap:8 PCMA/8000") in audio.lines
    assert sdp.connection_address(rewritten, audio) == "203.0.113.1" and audio.port == 40001


ADDRESSES = st.tuples(st.ip_addresses(v=4).map(str), st.integers(1, 0xFFFF))


@st.composite
def ice_offers(draw: st.DrawFn) -> MediaOffer:
    """An ICE offer of host, srflx and relay candidates in any order (the first is the default)."""
    kinds = draw(st.lists(st.sampled_from(["host", "srflx", "relay"]), min_size=1, max_size=4))
    lines = []
    for number, kind in enumerate(kinds, 1):
        host, port = draw(ADDRESSES)
        related = "" if kind == "host" else " raddr 10.0.0.3 rport 4000"
        lines.append(f"{number} 1 udp {2**24 * number} {host} {port} typ {kind}{related}")
    return MediaOffer("abcd", "p" * 22, tuple(lines))


@given(ice_offers(), ADDRESSES, st.booleans())
def test_an_ice_offer_answered_without_ice_sends_from_its_c_line_to_the_answers(
    offer: MediaOffer, answer_at: tuple[str, int], relayed: bool
) -> None:
    """RFC 8839 3.2.3: the peer sends where our c=/m= said, so RTP leaves from there."""
    answer = MediaOffer.from_sdp(MediaOffer(rtp=answer_at, relay=relayed).to_sdp())
    ours = MediaOffer.from_sdp(offer.to_sdp())
    assert not answer.ice and ours.ice
    assert ice_fallback(ours, answer) == Fallback(cast(tuple, ours.rtp), answer_at)
    first = sdp.Candidate.parse(offer.candidates[0])
    assert ice_fallback(ours, answer) == Fallback((first.address, first.port), answer_at)


@given(ice_offers(), ice_offers())
def test_ice_answered_with_ice_leaves_the_choice_to_the_checks(
    offer: MediaOffer, answer: MediaOffer
) -> None:
    assert ice_fallback(offer, MediaOffer.from_sdp(answer.to_sdp())) is None
    half = MediaOffer(answer.ufrag, "", answer.candidates, ("203.0.113.9", 7000))
    assert ice_fallback(offer, half) == Fallback(offer.default(), ("203.0.113.9", 7000))


@pytest.mark.parametrize("body", [b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", b"nonsense"])
def test_an_sdp_without_audio_or_not_sdp_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        MediaOffer.from_sdp(body)


# -- dialog headers --------------------------------------------------------------------------


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.none() | st.floats(min_value=0, max_value=2e9, allow_nan=False),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_rtp_stat_headers_carry_the_counts_exactly(
    sent: int, received: int, first: float | None, lost: int, late: int, jitter: float
) -> None:
    """With what the receiver measured (RFC 3550): lost, late, jitter."""
    counts = RtpCounts(sent, received, first, lost, late, jitter)
    pair = SelectedPair(Candidate("10.0.0.3:4000", "host"), Candidate("203.0.113.7:5000", "srflx"))
    bye = request("BYE", 2, dialogs.stats_headers(counts, pair))
    assert dialogs.read_stats(bye) == (counts, pair)


def test_a_response_copies_its_requests_vias_and_tags_its_to_once() -> None:
    request = dialogs.with_top_via_received(register(), "203.0.113.5", 61000)
    assert dialogs.top_via(request).received == "203.0.113.5"
    assert dialogs.top_via(request).rport == 61000
    ok = dialogs.response(request, 200, "OK", to_tag="t1")
    assert ok.values("Via") == request.values("Via") and dialogs.tag_of(ok, "To") == "t1"
    again = dialogs.response(ok.with_headers(ok.headers), 200, "OK", to_tag="t2")
    assert dialogs.tag_of(again, "To") == "t1"
    assert dialogs.clean_reason("a\r\nInjected: yes") == "a??Injected: yes"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mode=srflx;seconds=2", ("srflx", 2.0)),
        ("mode=ice;seconds=2;answer=host", ("host", 2.0)),
        ("mode=ice;seconds=2;answer=warp", ("ice", 2.0)),
        ("mode=warp;seconds=-1", (None, None)),
        ("seconds=1e9", (None, None)),
    ],
)
def test_the_call_header_is_read_or_ignored(value: str, expected: tuple) -> None:
    invite = register().with_headers((*register().headers, (dialogs.CALL_HEADER, value)))
    assert dialogs.read_call_header(invite) == expected


@given(
    st.sampled_from(["ice", "turn", "host", "srflx", "relay"]),
    st.none() | st.sampled_from(["ice", "turn", "host", "srflx", "relay"]),
    st.floats(0, 3600),
    st.floats(0, 5),
)
def test_a_natlab_callee_answers_in_the_mode_asked_else_the_callers(
    mode: str, answer: str | None, seconds: float, ring: float
) -> None:
    header = dialogs.call_header(mode, seconds, ring, answer)
    invite = register().with_headers((*register().headers, header))
    assert dialogs.read_call_header(invite) == (answer or mode, float(f"{seconds:g}"))


@pytest.mark.parametrize("text", ["203.0.113.1", "203.0.113.1:", "203.0.113.1:0", "pbx:5060", ":1"])
def test_an_endpoint_is_an_ipv4_address_and_a_port(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_endpoints_format_back_to_what_was_parsed() -> None:
    assert format_endpoint(parse_endpoint("203.0.113.1:5061")) == "203.0.113.1:5061"


# -- who the PBX relays for, and where it tells each phone to send -------------------------------


def pbx_with(policy: str | frozenset[str], **sources: str) -> Pbx:
    """A PBX on 10.0.0.2 behind 203.0.113.1, its phones registered from `sources`."""
    config = PbxConfig(
        name="pbx",
        address=IPv4Address("10.0.0.2"),
        control=Path("pbx.sock"),
        public=IPv4Address("203.0.113.1"),
        relay_public_offset=1000,
        local=(IPv4Network("10.0.0.0/24"),),
        relay=policy,
    )
    pbx = Pbx(config)
    for key, source in sources.items():
        name = key.replace("_", "-")
        flow = cast(Flow, None)  # nothing is sent in these tests
        contact = SipUri.parse(f"sip:{name}@{source}")
        address = parse_endpoint(source)
        pbx.registrations[name] = Registration(name, flow, "tcp", address, contact, "10.0.0.2")
    return pbx


PHONES = {"phone_a": "10.0.0.3:5000", "phone_b": "203.0.113.2:6000", "phone_c": "203.0.113.3:7000"}


@pytest.mark.parametrize(
    ("policy", "mode", "caller", "callee", "relayed"),
    [
        ("none", "ice", "phone-b", "phone-c", False),
        ("none", "relay", "phone-a", "phone-b", True),
        ("all", "ice", "phone-a", "phone-b", True),
        ("remote", "host", "phone-a", "phone-b", True),
        ("remote", "ice", "phone-a", "phone-a", False),
        (frozenset({"phone-c"}), "ice", "phone-a", "phone-b", False),
        (frozenset({"phone-c"}), "srflx", "phone-b", "phone-c", True),
    ],
)
def test_a_call_is_relayed_when_asked_or_when_the_policy_covers_one_of_its_phones(
    policy: str | frozenset[str], mode: str, caller: str, callee: str, relayed: bool
) -> None:
    assert pbx_with(policy, **PHONES).relayed(mode, caller, callee) is relayed


def test_a_local_phone_is_sent_to_the_pbx_itself_and_a_remote_one_to_the_public_port() -> None:
    class Leg(RelayLeg):
        port = 40002  # as if bound there

    pbx = pbx_with("all", **PHONES)
    assert pbx.relay_address("phone-a", Leg()) == ("10.0.0.2", 40002)
    assert pbx.relay_address("phone-b", Leg()) == ("203.0.113.1", 41002)
    assert pbx.relay_address("phone-x", Leg()) == ("203.0.113.1", 41002)  # unknown: remote


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("all", "all"),
        ("none", "none"),
        ("phone-b,phone-c", frozenset({"phone-b", "phone-c"})),
        (["phone-b"], frozenset({"phone-b"})),
    ],
)
def test_relay_policies(text: object, policy: object) -> None:
    assert parse_policy(text) == policy


@pytest.mark.parametrize("text", [7, None, ["phone-b", 3], {"phone-b": True}])
def test_a_relay_policy_is_a_keyword_or_phone_names(text: object) -> None:
    with pytest.raises(ValueError, match="relay policy"):
        parse_policy(text)
