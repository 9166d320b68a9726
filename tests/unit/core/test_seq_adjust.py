"""TCP sequence adjustment around rewritten payloads (natlab.core.seq_adjust), against a model.

The model is a byte stream the sender chops into segments, some of which the
router rewrites to another length. Whatever order they are sent, retransmitted
or lost in after the router, each segment must land in the receiver's stream
exactly where its rewritten bytes lie, and every ack or SACK edge the receiver
sends must come back to the sender as the boundary in its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from natlab.core.seq_adjust import MAX_CORRECTIONS, MOD, SeqAdjust, Way, adjust_segment, after

SEQ = st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 4000, MOD - 1))  # wraps often
SEGMENT = st.tuples(
    st.integers(1, 60), st.one_of(st.none(), st.integers(1, 120))
)  # SIP is never empty


@dataclass(frozen=True)
class Stream:
    """Segments as sent (lengths) and as forwarded (a rewrite's length, or the same)."""

    isn: int
    sent: tuple[int, ...]
    forwarded: tuple[int, ...]

    def sent_at(self, index: int) -> int:
        return (self.isn + sum(self.sent[:index])) % MOD

    def forwarded_at(self, index: int) -> int:
        return (self.isn + sum(self.forwarded[:index])) % MOD


def _stream(isn: int, segments: list[tuple[int, int | None]]) -> Stream:
    sent = tuple(length for length, _ in segments)
    forwarded = tuple(length if new is None else new for length, new in segments)
    return Stream(isn, sent, forwarded)


def _retransmittable(stream: Stream, index: int, sent_so_far: int) -> bool:
    """What the module promises to get right: at most MAX_CORRECTIONS rewrites from it on."""
    changed = sum(1 for i in range(index, sent_so_far) if stream.sent[i] != stream.forwarded[i])
    return changed <= MAX_CORRECTIONS


@settings(max_examples=400, deadline=None)
@given(SEQ, st.lists(SEGMENT, min_size=1, max_size=30), st.data())
def test_segments_land_where_their_rewritten_bytes_lie_and_acks_come_back_exactly(
    isn, segments, data
):
    stream = _stream(isn, segments)
    way = Way()
    received: set[int] = set()
    sent_so_far = 0
    while sent_so_far < len(segments) or data.draw(st.booleans(), "more"):
        candidates = [i for i in range(sent_so_far) if _retransmittable(stream, i, sent_so_far)]
        if sent_so_far < len(segments) and (not candidates or data.draw(st.booleans(), "new")):
            index = sent_so_far
            sent_so_far += 1
        elif candidates:
            index = data.draw(st.sampled_from(candidates), "retransmit")
        else:
            break
        seq = stream.sent_at(index)
        assert way.record(seq, stream.sent[index], stream.forwarded[index])
        assert way.shift(seq) == stream.forwarded_at(index), f"segment {index}"
        if not data.draw(st.booleans(), "lost"):
            received.add(index)
        _check_acks(stream, way, received, sent_so_far)


def _check_acks(stream: Stream, way: Way, received: set[int], sent_so_far: int) -> None:
    """The cumulative ack and the SACK blocks of the receiver, in the sender's space."""
    hole = next((i for i in range(sent_so_far) if i not in received), sent_so_far)
    if _retransmittable(stream, hole, sent_so_far):
        assert way.unshift(stream.forwarded_at(hole)) == stream.sent_at(hole)
    for index in received:
        if index > hole and _retransmittable(stream, index, sent_so_far):
            if index - 1 not in received:  # a SACK block's left edge
                left = way.unshift(stream.forwarded_at(index), round_up=True)
                assert left == stream.sent_at(index)
            if index + 1 not in received:  # and its right edge
                assert way.unshift(stream.forwarded_at(index + 1)) == stream.sent_at(index + 1)


@settings(max_examples=300, deadline=None)
@given(SEQ, st.lists(SEGMENT, min_size=1, max_size=MAX_CORRECTIONS), st.data())
def test_an_ack_inside_a_rewritten_segment_never_acks_more_than_arrived(isn, segments, data):
    """Any byte of the forwarded stream maps back to a sender's byte that arrived whole."""
    stream = _stream(isn, segments)
    way = Way()
    for index in range(len(segments)):
        way.record(stream.sent_at(index), stream.sent[index], stream.forwarded[index])
    starts = list(accumulate(stream.forwarded, initial=0))
    offset = data.draw(st.integers(0, starts[-1]), "offset")
    index = max(i for i, start in enumerate(starts) if start <= offset)
    inside = offset - starts[index]
    if index == len(segments) or inside == 0:
        down = up = stream.sent_at(index)
    elif stream.sent[index] == stream.forwarded[index]:
        down = up = (stream.sent_at(index) + inside) % MOD
    else:  # inside a rewrite: the ack rounds down to its start, a SACK left edge up to its end
        down, up = stream.sent_at(index), stream.sent_at(index + 1)
    target = (isn + offset) % MOD
    assert way.unshift(target) == down
    assert way.unshift(target, round_up=True) == up


@given(SEQ, st.integers(1, 100), st.integers(0, 200), st.integers(0, 200))
def test_a_retransmission_rewritten_otherwise_or_an_older_first_rewrite_is_refused(
    seq, sent, forwarded, other
):
    way = Way()
    way.record(seq, sent, forwarded)
    if forwarded != sent:
        assert way.record(seq, sent, forwarded)
        assert way.record(seq, sent, other) is (other == forwarded)
        older = (seq - 1000) % MOD
        assert not way.record(older, 10, 11)
        assert way.record(older, 10, 10), "a rewrite that keeps the length shifts nothing"
    assert len(way.corrections) == (forwarded != sent)


@given(SEQ, st.integers(1, 100), st.integers(1, 100), st.integers(0, 99))
def test_bytes_that_passed_as_they_were_are_never_rewritten_later(seq, length, new, inside):
    """A message first split across segments passed untouched; joined in a retransmission
    it would be rewritten, which its receiver, holding the first copy, could not match."""
    way = Way()
    way.saw(seq, length)
    start = (seq + inside % length) % MOD
    assert way.record(start, length, new) is (new == length)
    assert way.record((seq + length) % MOD, 10, 12), "what follows may be"


@given(SEQ, st.lists(st.integers(1, 50), min_size=1, max_size=MAX_CORRECTIONS), st.data())
def test_next_rewrite_is_the_first_rewrite_strictly_inside(isn, lengths, data):
    way = Way()
    starts = [(isn + sum(lengths[:i])) % MOD for i in range(len(lengths))]
    for start, length in zip(starts, lengths, strict=True):
        way.record(start, length, length + 1)
    total = sum(lengths)
    low = data.draw(st.integers(0, total), "from")
    high = data.draw(st.integers(low, total), "to")
    inside = [s for i, s in enumerate(starts) if low < sum(lengths[:i]) < high]
    found = way.next_rewrite((isn + low) % MOD, (isn + high) % MOD)
    assert found == (inside[0] if inside else None)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 100)), max_size=40), SEQ)
def test_memory_stays_bounded(rewrites, isn):
    way = Way()
    seq = isn
    for sent, forwarded in rewrites:
        way.record(seq, sent, forwarded)
        seq = (seq + sent) % MOD
    assert len(way.corrections) <= MAX_CORRECTIONS
    total = sum(forwarded - sent for sent, forwarded in rewrites)
    assert way.shift(seq) == (seq + total) % MOD, "a rewrite that fell off still counts"


def test_after_compares_modulo_two_to_the_32():
    assert after(5, MOD - 5) and not after(MOD - 5, 5)
    assert not after(7, 7)


def _segment(seq: int, ack: int, sack: list[tuple[int, int]], flags: str = "A") -> bytearray:
    options = [("NOP", None), ("NOP", None), ("SAck", tuple(e for b in sack for e in b))]
    built = IP(src="10.0.0.2", dst="198.51.100.1") / TCP(
        sport=40000, dport=5060, seq=seq, ack=ack, flags=flags, options=options if sack else []
    )
    return bytearray(bytes(built / b"data"))


def _valid(data: bytearray) -> TCP:
    segment = IP(bytes(data))
    again = segment.copy()
    del again[TCP].chksum
    assert segment[TCP].chksum == IP(bytes(again))[TCP].chksum, "the TCP checksum is right"
    return segment[TCP]


@settings(max_examples=300, deadline=None)
@given(SEQ, SEQ, st.integers(1, 30), st.integers(1, 60), st.integers(1, 30), st.integers(1, 60))
def test_a_segment_s_seq_ack_and_sack_blocks_are_shifted_each_by_its_own_way(
    out_isn, in_isn, out_sent, out_new, in_sent, in_new
):
    """Way 0 rewrote a segment at out_isn, way 1 one at in_isn; a way-0 segment after both."""
    adjust = SeqAdjust()
    adjust.record(0, out_isn, out_sent, out_new)
    adjust.record(1, in_isn, in_sent, in_new)
    seq = (out_isn + out_sent) % MOD
    ack = (in_isn + in_new) % MOD  # the receiver has all of way 1's rewritten segment
    later = (ack + 100) % MOD
    data = _segment(seq, ack, [(later, (later + 50) % MOD)])
    adjust_segment(data, 20, adjust, 0)
    tcp = _valid(data)
    assert tcp.seq == (seq + out_new - out_sent) % MOD
    assert tcp.ack == (in_isn + in_sent) % MOD
    shift = in_new - in_sent
    (edges,) = [v for k, v in tcp.options if k == "SAck"]
    assert edges == ((later - shift) % MOD, (later + 50 - shift) % MOD)


def test_a_sack_block_inside_a_rewrite_goes_and_the_option_keeps_its_place_with_nops():
    adjust = SeqAdjust()
    adjust.record(1, 1000, 100, 150)  # forwarded as 1000..1150
    data = _segment(5, 1000, [(1010, 1140), (1200, 1300)])
    length = len(data)
    adjust_segment(data, 20, adjust, 0)
    tcp = _valid(data)
    assert len(data) == length
    assert [v for k, v in tcp.options if k == "SAck"] == [(1150, 1250)]
    assert tcp.ack == 1000


def test_a_segment_without_ack_keeps_its_ack_field_and_nothing_shifts_without_a_rewrite():
    adjust = SeqAdjust()
    data = _segment(5, 77, [], flags="S")
    before = bytes(data)
    adjust_segment(data, 20, adjust, 0)
    assert bytes(data) == before and not adjust.shifting
    adjust.record(1, 70, 5, 9)
    adjust_segment(data, 20, adjust, 0)
    assert bytes(data) == before, "a SYN's ack field means nothing: left alone"
