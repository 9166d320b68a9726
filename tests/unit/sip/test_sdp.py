"""SDP (RFC 4566) with ICE (RFC 8839): field by field, refusals, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.sip import sdp
from natlab.sip.errors import SipError

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 10.0.1.2\r\n"
    b"s=-\r\n"
    b"c=IN IP4 10.0.1.2\r\n"
    b"t=0 0\r\n"
    b"a=ice-ufrag:8hhY\r\n"
    b"a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"
    b"m=audio 45664 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=candidate:1 1 UDP 2130706431 10.0.1.2 45664 typ host\r\n"
    b"a=candidate:2 1 UDP 1694498815 198.51.100.7 45664 typ srflx raddr 10.0.1.2 rport 45664"
    b" generation 0\r\n"
    b"a=end-of-candidates\r\n"
)


def test_an_ice_offer_reads_field_by_field():
    offer = sdp.parse(OFFER)
    assert sdp.connection_address(offer) == "10.0.1.2"
    assert sdp.attribute_values(offer, "ice-ufrag") == ["8hhY"]
    assert sdp.attribute_values(offer, "ice-pwd") == ["asd88fgpdd777uzjYhagZg"]
    (audio,) = offer.media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == (
        "audio",
        45664,
        "RTP/AVP",
        ("0",),
    )
    assert sdp.connection_address(offer, audio) == "10.0.1.2"
    host, srflx = (sdp.Candidate.parse(v) for v in sdp.attribute_values(audio, "candidate"))
    assert (host.address, host.port, host.type, host.priority) == (
        "10.0.1.2",
        45664,
        "host",
        2130706431,
    )
    assert (srflx.type, srflx.related_address, srflx.related_port) == ("srflx", "10.0.1.2", 45664)
    assert srflx.extensions == (("generation", "0"),)
    assert sdp.attribute_values(audio, "end-of-candidates") == [""]


def test_round_trip_is_byte_exact_for_crlf_input():
    assert sdp.parse(OFFER).to_bytes() == OFFER


def test_bare_lf_is_read_and_written_back_with_crlf():
    assert sdp.parse(OFFER.replace(b"\r\n", b"\n")).to_bytes() == OFFER


def test_ice_lines_build_what_parse_reads():
    candidate = sdp.Candidate("1", 1, "UDP", 2130706431, "10.0.1.2", 4000, "host")
    lines = sdp.ice_lines("uf", "pw", [candidate])
    built = sdp.Sdp(
        (("v", "0"), ("o", "- 1 1 IN IP4 10.0.1.2"), ("s", "-"), ("t", "0 0")),
        (sdp.Media("audio", 4000, "RTP/AVP", ("0",), (("c", "IN IP4 10.0.1.2"), *lines)),),
    )
    again = sdp.parse(built.to_bytes())
    assert again == built
    assert [sdp.Candidate.parse(v) for v in sdp.attribute_values(again.media[0], "candidate")] == [
        candidate
    ]


candidates = st.builds(
    sdp.Candidate,
    foundation=st.text("abc123+/", min_size=1, max_size=32),
    component=st.integers(1, 256),
    transport=st.sampled_from(["UDP", "TCP"]),
    priority=st.integers(0, 2**32 - 1),
    address=st.sampled_from(["10.0.1.2", "203.0.113.5", "fe80::1"]),
    port=st.integers(0, 65535),
    type=st.sampled_from(["host", "srflx", "prflx", "relay"]),
    related_address=st.one_of(st.none(), st.just("10.0.0.1")),
    related_port=st.one_of(st.none(), st.integers(0, 65535)),
    extensions=st.lists(st.tuples(st.sampled_from(["generation", "network-id"]), st.just("1"))).map(
        tuple
    ),
)


@given(candidates)
def test_candidates_round_trip(candidate: sdp.Candidate):
    assert sdp.Candidate.parse(str(candidate)) == candidate


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\ns=-\r\n", "must start with v=0"),
        (b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "must start with v=0"),
        (OFFER + b"x=unknown\r\n", "bad SDP line"),
        (OFFER + b"a=bad\x01\r\n", "bad SDP line"),
        (OFFER.replace(b"c=IN IP4 10.0.1.2", b"c=IN IP9 10.0.1.2"), "bad c= line"),
        (OFFER.replace(b"m=audio 45664", b"m=audio 70000"), "bad port in m= line"),
        (OFFER.replace(b"m=audio 45664 RTP/AVP 0", b"m=audio 45664"), "bad m= line"),
        (OFFER.replace(b"typ host", b"host"), "bad candidate"),
        (OFFER.replace(b"2130706431", b"4294967296"), "candidate out of range"),
        (OFFER.replace(b"rport 45664", b"rport x"), "bad rport in candidate"),
        (OFFER + b"a=x\r\n" * 200, "more than 200 lines"),
        (b"v=0\r\no=\xff\r\ns=-\r\n", "not UTF-8"),
    ],
)
def test_invalid_sdp_is_refused_with_the_reason(data: bytes, reason: str):
    with pytest.raises(SipError) as refused:
        sdp.parse(data)
    assert reason in refused.value.reason
