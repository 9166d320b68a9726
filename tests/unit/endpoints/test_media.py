"""RTP as the phones send it, and the verdict that counts of packets really received give."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.endpoints.media import (
    CALLEE_DEAF,
    CALLER_DEAF,
    NO_MEDIA,
    PAYLOAD,
    TWO_WAY,
    RtpStream,
    finish,
    flowing,
    parse_rtp,
    rtp_packet,
    verdict,
)
from natlab.records import CallReport, RtpCounts
from natlab.stun import Message, MessageClass, Method, encode

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300)
@given(u16, u32, u32)
def test_a_packet_is_a_g711_frame_behind_a_12_byte_header(seq: int, ts: int, ssrc: int) -> None:
    packet = rtp_packet(seq, ts, ssrc)
    assert len(packet) == 12 + 160
    header = parse_rtp(packet)
    assert header is not None
    assert (header.payload_type, header.seq, header.timestamp, header.ssrc) == (0, seq, ts, ssrc)
    assert header.payload_size == 160


def test_csrcs_an_extension_and_padding_are_not_payload() -> None:
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\0" * 4
    padding = b"\0\0\x03"
    first = 0x80 | 0x20 | 0x10 | 2  # version 2, padding, extension, two CSRCs
    packet = struct.pack("!BBHII", first, 0, 1, 2, 3) + csrcs + extension + PAYLOAD + padding
    header = parse_rtp(packet)
    assert header is not None and header.payload_size == len(PAYLOAD)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        rtp_packet(1, 2, 3)[:11],
        encode(Message(Method.BINDING, MessageClass.REQUEST, b"\1" * 12)),  # STUN: version 0
        struct.pack("!BBHII", 0x80, 200, 1, 2, 3),  # RTCP sender report
        struct.pack("!BBHII", 0x82, 0, 1, 2, 3) + b"\0" * 4,  # two CSRCs announced, one there
        struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"\0\x09",  # more padding than packet
    ],
)
def test_what_is_not_rtp_is_not_counted_as_rtp(data: bytes) -> None:
    assert parse_rtp(data) is None


def test_a_stream_counts_what_it_sends_and_only_the_peers_rtp() -> None:
    mine, theirs = RtpStream(ssrc=1), RtpStream(ssrc=2)
    sent = [mine.next_packet() for _ in range(3)]
    assert mine.counts.sent == 3
    headers = [h for h in map(parse_rtp, sent) if h is not None]
    steps = [
        ((h.seq - headers[0].seq) & 0xFFFF, (h.timestamp - headers[0].timestamp) & 0xFFFFFFFF)
        for h in headers
    ]
    assert steps == [
        (0, 0),
        (1, 160),
        (2, 320),
    ]
    assert not mine.receive(sent[0], at=1.0)  # our own packet, looped back
    assert not mine.receive(b"garbage", at=1.5)
    assert mine.receive(theirs.next_packet(), at=2.0)
    assert mine.receive(theirs.next_packet(), at=3.0)
    # the second came 980 ms behind its 20 ms schedule: late, and a jump of the jitter by 980 / 16
    assert mine.counts == RtpCounts(
        sent=3, received=2, first_received_at=2.0, late=1, jitter_ms=61.25
    )


@pytest.mark.parametrize(
    ("sent", "received", "flows"),
    [(0, 0, False), (100, 0, False), (100, 49, False), (100, 50, True), (1, 1, True), (3, 2, True)],
)
def test_a_direction_flows_when_half_of_what_was_sent_arrived(
    sent: int, received: int, flows: bool
) -> None:
    assert flowing(sent, received) is flows


@pytest.mark.parametrize(
    ("caller", "callee", "expected"),
    [
        ((100, 98), (100, 99), TWO_WAY),
        ((100, 0), (100, 99), CALLER_DEAF),  # the callee hears the caller, not the other way
        ((100, 99), (100, 0), CALLEE_DEAF),
        ((100, 0), (100, 0), NO_MEDIA),
        ((0, 0), (0, 0), NO_MEDIA),  # ICE failed: nothing sent is no media, not "flowing"
        ((100, 10), (100, 10), NO_MEDIA),
    ],
)
def test_verdicts(caller: tuple[int, int], callee: tuple[int, int], expected: str) -> None:
    assert verdict(RtpCounts(*caller), RtpCounts(*callee)) == expected


@settings(max_examples=300)
@given(u16, u16, u16, u16)
def test_each_side_of_a_call_reaches_the_same_verdict(a: int, b: int, c: int, d: int) -> None:
    caller_counts, callee_counts = RtpCounts(a, b), RtpCounts(c, d)
    caller = CallReport("x", "phone-b", "phone-c", "ice", "caller", rtp=caller_counts)
    caller.peer_rtp = callee_counts
    callee = CallReport("x", "phone-b", "phone-c", "ice", "callee", rtp=callee_counts)
    callee.peer_rtp = caller_counts
    assert finish(caller).verdict == finish(callee).verdict == verdict(caller_counts, callee_counts)
    assert caller.error is None


def test_without_the_peers_counts_only_what_arrived_can_be_said() -> None:
    heard = CallReport("x", "phone-b", "phone-c", "srflx", "caller", rtp=RtpCounts(100, 97))
    assert finish(heard).verdict == CALLEE_DEAF  # we heard them; that they heard us is unproven
    assert heard.error is not None and "counts never came back" in heard.error
    deaf = CallReport("x", "phone-b", "phone-c", "srflx", "callee", rtp=RtpCounts(100, 0))
    deaf.error = "no answer in time"
    assert finish(deaf).verdict == NO_MEDIA
    assert deaf.error == "no answer in time"  # the first cause is kept


def test_a_report_is_json_with_the_contract_fields() -> None:
    report = CallReport("x", "phone-b", "phone-c", "ice", "caller", rtp=RtpCounts(3, 2, 1.5))
    report.peer_rtp = RtpCounts(2, 3)
    out = finish(report).to_json()
    assert set(out) >= {
        "call", "caller", "callee", "mode", "role", "selected_pair", "checks", "rtp",
        "peer_rtp", "verdict", "error", "started_at", "ended_at",
    }  # fmt: skip
    assert out["rtp"] == {
        "sent": 3, "received": 2, "first_received_at": 1.5, "lost": 0, "late": 0, "jitter_ms": 0.0
    }  # fmt: skip
    assert out["peer_rtp"]["received"] == 3
    assert out["ended_at"] >= out["started_at"]
    assert CallReport.from_json(out) == report
