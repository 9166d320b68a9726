"""Known answers for the SIP codec, in the manner of RFC 4475's torture tests (messages
written here): valid ones read field by field, invalid ones refused with the reason."""

from __future__ import annotations

import pytest

from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via
from natlab.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_BYTES,
    RequestLine,
    StatusLine,
    parse,
    parse_cseq,
    split_stream,
)

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.1.2\r\ns=-\r\nc=IN IP4 10.0.1.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)

INVITE = (
    b"INVITE sip:bob@203.0.113.9 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@203.0.113.9>\r\n'
    b'From: "Alice, A." <sip:alice@10.0.1.2>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@10.0.1.2\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@10.0.1.2:5060;transport=udp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def _message(
    *headers: bytes, body: bytes = b"", start: bytes = b"OPTIONS sip:x@h SIP/2.0"
) -> bytes:
    base = [
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        b"From: <sip:a@h>;tag=1",
        b"To: <sip:x@h>",
        b"Call-ID: c1",
        b"CSeq: 1 OPTIONS",
    ]
    return b"\r\n".join([start, *base, *headers]) + b"\r\n\r\n" + body


def test_a_typical_invite_reads_field_by_field():
    message = parse(INVITE)
    assert message.start == RequestLine("INVITE", "sip:bob@203.0.113.9")
    via = Via.parse(message.values("via")[0])
    assert (via.transport, via.host, via.port) == ("UDP", "10.0.1.2", 5060)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.rport == ""
    assert via.received is None
    sender = NameAddr.parse(message.get("From") or "")
    assert sender.display == '"Alice, A."'
    assert sender.tag == "1928301774"
    assert NameAddr.parse(message.get("To") or "").tag is None
    assert message.get("call-id") == "a84b4c76e66710@10.0.1.2"
    assert parse_cseq(message.get("CSeq") or "") == (314159, "INVITE")
    contact = SipUri.parse(NameAddr.parse(message.values("Contact")[0]).uri)
    assert (contact.user, contact.host, contact.port, contact.rest) == (
        "alice",
        "10.0.1.2",
        5060,
        ";transport=udp",
    )
    assert message.body == SDP


def test_compact_forms_and_case_mean_the_same_headers():
    compact = (
        b"REGISTER sip:203.0.113.9 SIP/2.0\r\n"
        b"v: SIP/2.0/TCP 10.0.1.2:5070;branch=z9hG4bK9;rport=5071;received=198.51.100.7\r\n"
        b"f: <sip:alice@203.0.113.9>;tag=x\r\nt: <sip:alice@203.0.113.9>\r\n"
        b"i: reg1\r\ncSeQ: 2 REGISTER\r\nm: <sip:alice@10.0.1.2>, <sip:alice@10.0.1.3>\r\n"
        b"l: 0\r\n\r\n"
    )
    message = parse(compact)
    via = Via.parse(message.get("Via") or "")
    assert (via.rport, via.received, via.port) == (5071, "198.51.100.7", 5070)
    assert message.get("CALL-ID") == "reg1"
    assert message.values("Contact") == ["<sip:alice@10.0.1.2>", "<sip:alice@10.0.1.3>"]
    assert b"Content-Length: 0" in message.to_bytes()


def test_several_via_fields_and_values_keep_their_order():
    message = parse(
        _message(b"Via: SIP/2.0/UDP p1;branch=z9hG4bKa, SIP/2.0/UDP p2;branch=z9hG4bKb")
    )
    hosts = [Via.parse(value).host for value in message.values("Via")]
    assert hosts == ["h", "p1", "p2"]


def test_folded_headers_are_unfolded_per_rfc3261_7_3_1():
    message = parse(_message(b"Subject: I know you're there,\r\n   pick up\r\n\tthe phone"))
    assert message.get("Subject") == "I know you're there, pick up the phone"


def test_a_response_reads_its_status():
    message = parse(_message(start=b"SIP/2.0 486 Busy Here"))
    assert message.start == StatusLine(486, "Busy Here")
    assert not message.is_request


def test_round_trip_is_stable():
    once = parse(INVITE).to_bytes()
    assert parse(once).to_bytes() == once
    assert parse(once) == parse(INVITE)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_message()[:-2], "truncated"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "exceeds"),
        (
            _message(*[b"X-Pad: %d" % i for i in range(MAX_HEADERS)]),
            f"more than {MAX_HEADERS} header fields",
        ),
        (_message(b"Content-Length: 5", body=b"abc"), "Content-Length 5 but the body has 3"),
        (_message(b"Content-Length: 1", body=b"abc"), "Content-Length 1 but the body has 3"),
        (_message(b"Content-Length: -1"), "bad Content-Length"),
        (_message(b"Content-Length: 0", b"l: 0"), "duplicated Content-Length"),
        (_message(b"Call-ID: c2"), "duplicated Call-ID"),
        (_message(b"f: <sip:b@h>;tag=2"), "duplicated From"),
        (_message(b"Subject: a\rInjected: b"), "bare CR or LF"),
        (_message(b"Subject: a\nInjected: b"), "bare CR or LF"),
        (_message(b"Subject: a\x00b"), "control byte 0x00"),
        (_message(b"Subject: caf\xe9"), "not UTF-8"),
        (_message(b"NoColonHere"), "bad header line"),
        (_message(b"Bad Name: x"), "bad header line"),
        (b"OPTIONS sip:x@h SIP/2.0\r\n continued: x\r\n\r\n", "continuation line before"),
        (_message(start=b"OPTIONS sip:x@h SIP/3.0"), "bad request line"),
        (_message(start=b"OPTIONS  sip:x@h SIP/2.0"), "bad request line"),
        (_message(start=b"OPT<IONS sip:x@h SIP/2.0"), "bad method"),
        (_message(start=b"OPTIONS nocolon SIP/2.0"), "bad Request-URI"),
        (_message(start=b"SIP/2.0 99 Too Low"), "bad status line"),
        (_message(start=b"SIP/2.0 700 Too High"), "bad status line"),
        (_message(start=b"INVITE sip:x@h SIP/2.0"), "CSeq method OPTIONS differs"),
        (_message().replace(b"CSeq: 1 OPTIONS", b"CSeq: 99999999999 OPTIONS"), "bad CSeq"),
        (_message().replace(b"Call-ID: c1\r\n", b""), "missing Call-ID"),
        (_message().replace(b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", b""), "missing Via"),
    ],
)
def test_invalid_messages_are_refused_with_the_reason(data: bytes, reason: str):
    with pytest.raises(SipError) as refused:
        parse(data)
    assert reason in refused.value.reason
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("SIP/2.0/UDP", "bad Via"),
        ("SIP/2.0/UDP h:99999", "bad port"),
        ("SIP/2.0/UDP h;rport=x", None),
        ("SIP/2.0/UDP h;=x", "bad parameter"),
    ],
)
def test_invalid_via_values_are_refused(value: str, reason: str | None):
    with pytest.raises(SipError) as refused:
        via = Via.parse(value)
        assert via.rport is not None  # reading a malformed rport is where it fails
    if reason:
        assert reason in refused.value.reason


def test_a_header_value_with_a_line_break_cannot_be_set():
    message = parse(_message())
    with pytest.raises(SipError, match="control characters"):
        message.with_headers((*message.headers, ("Subject", "a\r\nInjected: b")))


def test_split_stream_frames_by_content_length():
    first = _message(b"Content-Length: 3", body=b"abc")
    second = _message(b"Content-Length: 0")
    buffer = first + second
    assert split_stream(buffer[: len(first) - 1]) is None
    assert split_stream(buffer) == (first, second)
    with pytest.raises(SipError, match="required on a stream"):
        split_stream(_message())
    with pytest.raises(SipError, match="no end of headers"):
        split_stream(b"x" * (MAX_MESSAGE_BYTES + 1))
