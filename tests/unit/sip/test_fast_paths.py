"""The codec's fast paths give what the slow ones give: the header index of
SipMessage.values, split_list's shortcut, the remembered Via and address parsers,
the one-search check of header lines and the canonical-name table (each added for
the PBX's registrations per second, benchmarks/bench_sip.py)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.sip import headers, message
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, Via, read_name_addr, read_via
from natlab.sip.message import (
    COMPACT_FORMS,
    LIST_VALUED,
    SipMessage,
    canonical_name,
    parse,
    split_list,
    split_list_walking,
)
from tests.unit.sip.test_fuzz import mutated

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGISTER = (
    b"REGISTER sip:203.0.113.9 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK7;rport\r\n"
    b"From: <sip:alice@203.0.113.9>;tag=1\r\nTo: <sip:alice@203.0.113.9>\r\n"
    b"Call-ID: c@10.0.1.2\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@10.0.1.2>\r\n"
    b"Max-Forwards: 70\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
)
HEADER_TEXT = st.text(alphabet='<>",;=@:. abz\\\t', max_size=40)
NAMES = st.sampled_from(
    ["Via", "v", "VIA", "Contact", "m", "To", "t", "From", "Call-ID", "i", "CSeq", "X-Other"]
)


def _outcome(function, value):
    """What a parser makes of a value: its result, or the refusal's reason."""
    try:
        return ("ok", function(value))
    except SipError as error:
        return ("refused", error.reason)


def _scanned(sip: SipMessage, name: str) -> list[str]:
    """values() as it was before the index: one scan of every field per lookup."""
    wanted = canonical_name(name)
    found: list[str] = []
    for field_name, value in sip.headers:
        if field_name == wanted:
            found.extend(split_list(value) if wanted in LIST_VALUED else [value])
    return found


@FAST
@given(mutated(), st.lists(NAMES, min_size=1, max_size=6))
def test_the_header_index_answers_as_a_scan_of_the_fields(data: bytes, names: list[str]):
    try:
        sip = parse(data)
    except SipError:
        return
    for name in names:  # asked in any order, again and again: the same answers
        assert _outcome(sip.values, name) == _outcome(lambda n: _scanned(sip, n), name)
        first = _outcome(lambda n: (_scanned(sip, n) or [None])[0], name)
        assert _outcome(sip.get, name) == first


@FAST
@given(st.lists(st.tuples(NAMES.map(canonical_name), HEADER_TEXT), max_size=6), NAMES)
def test_the_index_refuses_a_bad_list_only_when_that_header_is_asked(fields, name):
    sip = SipMessage(message.RequestLine("OPTIONS", "sip:x"), tuple(fields))
    assert _outcome(sip.values, name) == _outcome(lambda n: _scanned(sip, n), name)


def test_values_hands_out_a_copy_the_caller_may_change():
    sip = parse(REGISTER)
    sip.values("Via").append("changed")
    assert sip.values("Via") == ["SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK7;rport"]


@FAST
@given(HEADER_TEXT)
def test_split_list_shortcut_equals_the_walk(value: str):
    assert _outcome(split_list, value) == _outcome(split_list_walking, value)


@FAST
@given(st.one_of(HEADER_TEXT, st.just("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport")))
def test_remembered_parsers_equal_a_fresh_read_every_time(value: str):
    for _ in range(2):  # the second time from memory
        assert _outcome(Via.parse, value) == _outcome(read_via, value)
        assert _outcome(NameAddr.parse, value) == _outcome(read_name_addr, value)


def test_long_values_are_not_remembered():
    long = "<sip:" + "a" * headers.MEMO_MAX_LENGTH + "@h>"
    assert NameAddr.parse(long) == read_name_addr(long)
    assert NameAddr.parse(long) is not NameAddr.parse(long)
    short = "<sip:a@h>"
    assert NameAddr.parse(short) is NameAddr.parse(short)


def test_the_message_the_tests_change_is_accepted_as_it_is():
    assert parse(REGISTER).get("Expires") == "60"


@FAST
@given(st.integers(0, 9), st.sampled_from("\x00\x01\x0b\x1f\x7f\r\n"))
def test_a_control_character_in_any_header_line_is_still_refused(line: int, char: str):
    lines = REGISTER.decode().split("\r\n")[:-2]
    where = 1 + line % (len(lines) - 1)
    lines[where] = lines[where][:3] + char + lines[where][3:]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        parse(data)
    except SipError as error:
        assert "control byte" in error.reason or "bare CR or LF" in error.reason
    else:
        raise AssertionError(f"accepted a control character in {lines[where]!r}")


@FAST
@given(
    st.one_of(
        st.sampled_from(sorted(message._SPELLED)),
        st.from_regex(r"[A-Za-z\-]{1,12}", fullmatch=True),
    )
)
def test_the_canonical_name_table_equals_the_rule(name: str):
    lowered = name.lower()
    assert canonical_name(name) == (
        COMPACT_FORMS.get(lowered) or message._CANONICAL.get(lowered, name)
    )


@FAST
@given(st.text(alphabet='ab\\"xyz ', max_size=20))
def test_digest_values_unescape_as_before(text: str):
    from natlab.sip import digest

    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    with contextlib.suppress(SipError):
        assert digest.parse_params(f'Digest realm="{quoted}"') == {"realm": text}
