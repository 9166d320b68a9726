"""What a receiving phone measures of RTP (RFC 3550): loss, late packets, interarrival jitter."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from natlab.endpoints.media import (
    CLOCK_RATE,
    INTERVAL,
    JITTER_BUFFER,
    SAMPLES,
    Reception,
    RtpStream,
)
from natlab.endpoints.media import rtp_packet as packet_of

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def stream(first_seq: int, first_ts: int, count: int) -> list[tuple[int, int, float]]:
    """A phone's packets: (seq, timestamp, sent at), wrapping as the real counters do."""
    return [
        ((first_seq + i) & 0xFFFF, (first_ts + i * SAMPLES) & 0xFFFFFFFF, 100.0 + i * INTERVAL)
        for i in range(count)
    ]


@given(u16, u32, st.floats(0, 0.5))
def test_a_clean_stream_has_no_loss_lateness_or_jitter(seq: int, ts: int, transit: float) -> None:
    reception = Reception()
    for s, t, sent in stream(seq, ts, 300):
        reception.add(s, t, sent + transit)
    assert (reception.received, reception.lost, reception.late) == (300, 0, 0)
    assert reception.jitter < 1e-9


@given(u16, u32, st.sets(st.integers(1, 398), max_size=200))
def test_lost_is_what_never_came(seq: int, ts: int, missing: set[int]) -> None:
    """Across sequence-number and timestamp wraps (the stream starts anywhere)."""
    reception = Reception()
    for i, (s, t, sent) in enumerate(stream(seq, ts, 400)):
        if i not in missing:
            reception.add(s, t, sent + 0.01)
    assert reception.lost == len(missing)
    assert reception.late == 0


def test_late_packets_out_of_order_or_beyond_the_jitter_buffer() -> None:
    reception = Reception()
    packets = stream(0, 0, 10)
    for s, t, sent in packets[:5]:
        reception.add(s, t, sent)
    s, t, sent = packets[5]
    reception.add(s, t, sent + JITTER_BUFFER + 0.005)  # too late to play
    reception.add(*packets[7][:2], packets[7][2])
    reception.add(*packets[6][:2], packets[7][2] + 0.001)  # overtaken by 7
    assert (reception.late, reception.lost) == (2, 0)
    reception.add(*packets[8][:2], packets[8][2] + JITTER_BUFFER - 0.005)  # still in time
    assert reception.late == 2


@given(st.integers(0, 1000))
def test_jitter_estimates_the_mean_transit_variation(seed: int) -> None:
    """Transit uniform in [0, a): the mean |D| between packets is a / 3 (RFC 3550 A.8)."""
    spread = 0.030
    draw = random.Random(seed)
    reception = Reception()
    estimates = []
    for i, (s, t, sent) in enumerate(stream(1000, 5, 3000)):
        reception.add(s, t, sent + draw.uniform(0, spread))
        if i > 100:
            estimates.append(reception.jitter)
    assert abs(sum(estimates) / len(estimates) - spread / 3) < 0.1 * spread / 3


def test_the_stream_counts_what_the_peer_sent() -> None:
    phone = RtpStream(ssrc=1)
    for i in range(50):
        if i % 10 != 3:
            phone.receive(packet_of(i, i * SAMPLES, ssrc=2), 10.0 + i * INTERVAL + (i % 2) * 0.004)
    counts = phone.counts
    assert (counts.received, counts.lost, counts.late) == (45, 5, 0)
    assert 1.0 < counts.jitter_ms < 4.0  # transit alternates by 4 ms: J tends to 4 ms
    assert CLOCK_RATE == 8000
