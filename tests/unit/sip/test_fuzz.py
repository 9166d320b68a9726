"""Property tests of the SIP and SDP decoders: whatever the wire throws at them, they
answer with a message or SipError, never anything else, and what they accept
re-serialises stably."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.sip import sdp
from natlab.sip.alg import Untouched, rewrite, rewrite_inbound
from natlab.sip.errors import SipError
from natlab.sip.message import MAX_MESSAGE_BYTES, parse, split_stream

VALID = (
    b"INVITE sip:bob@203.0.113.9 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK7;rport\r\n"
    b"From: <sip:alice@10.0.1.2>;tag=1\r\nTo: <sip:bob@203.0.113.9>\r\n"
    b"Call-ID: c@10.0.1.2\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.1.2>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 102\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 10.0.1.2\r\ns=-\r\nc=IN IP4 10.0.1.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
REGISTER = (
    b"REGISTER sip:203.0.113.9 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 10.0.1.2:40000;branch=z9hG4bK8;rport\r\n"
    b"From: <sip:alice@203.0.113.9>;tag=2\r\nTo: <sip:alice@203.0.113.9>\r\n"
    b"Call-ID: r@10.0.1.2\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@10.0.1.2:5060;transport=tcp>;expires=60\r\n"
    b"Expires: 60\r\nContent-Length: 0\r\n\r\n"
)

MODES = ("rewrite", "broken")
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_refuse(data: bytes) -> None:
    try:
        message = parse(data)
    except SipError:
        return
    again = message.to_bytes()
    assert parse(again).to_bytes() == again


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from((VALID, REGISTER))))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            chunk = draw(st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b":", b",", b"\xff", b";"]))
            data[position:position] = chunk
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        else:
            del data[position:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_sip_error(data: bytes):
    _decode_or_refuse(data)


@FUZZ
@given(mutated())
def test_mutated_messages_only_raise_sip_error(data: bytes):
    _decode_or_refuse(data)


@FUZZ
@given(mutated())
def test_the_alg_never_raises_on_mutated_messages(data: bytes):
    result = rewrite(
        data,
        mode="rewrite",
        private=("10.0.1.2", 5060),
        public=("203.0.113.5", 40000),
        map_media=lambda address: ("203.0.113.5", address[1] + 30000),
        map_contact=lambda transport, address, lifetime: ("203.0.113.5", address[1] + 20000),
    )
    assert len(result.events) >= 1


@FUZZ
@given(st.binary(max_size=1024))
def test_sdp_random_bytes_only_raise_sip_error(data: bytes):
    with contextlib.suppress(SipError):
        sdp.parse(data)


@FUZZ
@given(mutated())
def test_split_stream_only_raises_sip_error(data: bytes):
    with contextlib.suppress(SipError):
        split_stream(data)


def test_oversized_input_is_refused_before_any_work():
    data = VALID + b"a" * MAX_MESSAGE_BYTES
    try:
        parse(data)
    except SipError as refused:
        assert "exceeds" in refused.reason
    else:
        raise AssertionError("an oversized message was accepted")


HOSTILE = st.sampled_from(
    [
        b"\r\nVia: SIP/2.0/UDP 6.6.6.6;branch=z9hG4bKx",  # CRLF injection in a value
        b"\xc3\x28\xff",  # not UTF-8
        b"\r\n ",  # a folded line
        b"\x00",
        b"a" * 70_000,  # oversized
        b"\r\nContent-Length: 9\r\n",  # a second Content-Length
    ]
)


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """VALID with a hostile piece put somewhere in it."""
    position = draw(st.integers(0, len(VALID)))
    return VALID[:position] + draw(HOSTILE) + VALID[position:]


def _alg_both_ways(data: bytes, mode: str) -> None:
    outbound = rewrite(
        data,
        mode=mode,  # type: ignore[arg-type]
        private=("10.0.1.2", 5060),
        public=("203.0.113.5", 40000),
        map_media=lambda address: ("203.0.113.5", address[1] + 30000),
        map_contact=lambda transport, address, lifetime: ("203.0.113.5", address[1] + 20000),
    )
    inbound = rewrite_inbound(data, public=("203.0.113.5", 40000), private=("10.0.1.2", 5060))
    for result in (outbound, inbound):
        assert result.events
        if any(isinstance(event, Untouched) for event in result.events):
            assert result.payload == data, "what the ALG cannot read passes byte for byte"
        else:
            parse(result.payload)  # what it rewrote is SIP natlab reads back


@FUZZ
@given(st.one_of(mutated(), hostile(), st.binary(max_size=1500)), st.sampled_from(MODES))
def test_the_alg_never_raises_and_writes_only_sip_it_can_read_back(data: bytes, mode: str):
    _alg_both_ways(data, mode)


def test_crlf_injected_into_a_header_value_is_passed_untouched():
    injected = VALID.replace(b"tag=1", b"tag=1\rVia: SIP/2.0/UDP 6.6.6.6")
    result = rewrite_inbound(injected, public=("203.0.113.5", 40000), private=("10.0.1.2", 5060))
    assert result.payload == injected
    (event,) = result.events
    assert isinstance(event, Untouched)
