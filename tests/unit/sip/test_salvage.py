"""The 400 owed to a request the codec refused: built when it can be, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.sip import message as sip
from natlab.sip.salvage import bad_request

REQUEST = (
    b"OPTIONS sip:pbx@203.0.113.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bK1;rport\r\n"
    b"From: <sip:a@203.0.113.1>;tag=1\r\n"
    b"To: <sip:pbx@203.0.113.1>\r\n"
    b"Call-ID: abc\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    "broken",
    [
        REQUEST.replace(b"Content-Length: 0", b"Content-Length: 99"),  # a wrong length
        REQUEST.replace(b"Call-ID: abc\r\n", b"Call-ID: abc\r\nTo: <sip:x@y>\r\n"),  # twice To
        REQUEST.replace(b"Call-ID: abc\r\n", b"Call-ID: abc\r\nSubject: a\rInjected: 1\r\n"),
        REQUEST.replace(b"Call-ID: abc\r\n", b"Call-ID: abc\r\nX-Bad: \xff\xfe\r\n"),  # not UTF-8
    ],
)
def test_a_request_whose_answer_headers_are_readable_gets_a_400(broken: bytes) -> None:
    with pytest.raises(sip.SipError) as refused:
        sip.parse(broken)
    answer = bad_request(broken, refused.value.reason)
    assert answer is not None
    parsed = sip.parse(answer)
    assert (parsed.start.code, parsed.get("Call-ID")) == (400, "abc")  # type: ignore[union-attr]
    assert parsed.values("Via") == ["SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bK1;rport"]
    assert b"Injected" not in answer.split(b"\r\n\r\n")[0].split(b"\r\n", 1)[1]


@pytest.mark.parametrize(
    "unanswerable",
    [
        REQUEST.replace(b"OPTIONS sip", b"ACK sip").replace(b"1 OPTIONS", b"1 ACK"),  # never
        REQUEST.replace(b"OPTIONS sip:pbx@203.0.113.1 SIP/2.0", b"SIP/2.0 200 OK"),  # a response
        REQUEST.replace(b"Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bK1;rport\r\n", b""),
        REQUEST.replace(b"Call-ID: abc", b"Call-ID: abc\rInjected: 1"),  # in a header it needs
        REQUEST.replace(b"Call-ID: abc", b"Call-ID:\r\n  abc"),  # folded: no Call-ID to echo
        b"\xff\xfe\x00",
        b"",
    ],
)
def test_what_cannot_be_answered_is_none(unanswerable: bytes) -> None:
    assert bad_request(unanswerable, "bad") is None


@settings(max_examples=500)
@given(st.binary(max_size=600), st.text(max_size=300))
def test_any_bytes_give_none_or_a_400_the_codec_reads(data: bytes, reason: str) -> None:
    for candidate in (data, REQUEST[: len(data) % len(REQUEST)] + data):
        answer = bad_request(candidate, reason)
        if answer is not None:
            assert sip.parse(answer).start.code == 400  # type: ignore[union-attr]
