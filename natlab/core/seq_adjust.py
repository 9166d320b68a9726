"""TCP sequence numbers shifted past payloads a rewrite made longer or shorter.

What Linux's nf_nat_seq_adjust does for its ALGs. Once the SIP ALG changes the
length of a TCP segment's payload, every later byte of that direction sits
`delta` further on in the receiver's sequence space than in the sender's: the
segments that follow need their seq shifted by the sum of the deltas before them,
and the acks coming back (with their SACK blocks) shifted back by the same, or
the receiver sees a hole and the sender acks for data it never sent.

Per connection and direction a `Way` keeps the rewrites it saw (`Correction`:
where the rewritten bytes started in the sender's space, their length as sent
and as forwarded, the total shift before them; the SIP ALG records each
message of a segment on its own, so that a retransmission joining a rewritten
message with the next ones fits), oldest first, at most MAX_CORRECTIONS:
Linux keeps one (and the shift before it), which rewrites a retransmission
of the latest rewritten segment right and of no older one. Keeping a few more
costs nothing and lets a retransmission of any segment from the
MAX_CORRECTIONS-th latest rewrite on come out right; a rewrite that falls off
the front still counts in the shift of everything after it.

- A segment that starts where a rewritten one started is its retransmission:
  it gets the same seq (the shift before that rewrite) and, rewritten again by
  the caller, no second delta (`record` answers whether it matched).
- A segment after it gets the total shift up to and including it.
- Bytes that passed as they were (`saw`) are never rewritten later: a
  message first split across segments and whole in a retransmission stays
  as the receiver first got it (`record` refuses).
- An ack (or SACK edge) in the receiver's space that falls inside a rewritten
  segment's forwarded bytes cannot be told in the sender's: an ack or a SACK
  block's right edge is rounded down to the segment's start, a left edge up to
  its end (never acking what the receiver did not get); a SACK block left
  empty is removed from the option, which keeps its place with NOPs.

Sequence numbers compare modulo 2**32 as TCP does (RFC 793's "after"), so a
connection that wraps around keeps working. Pure: no clock, no I/O;
`adjust_segment` rewrites a TCP header in place and fixes its checksum
incrementally (RFC 1624), so a corrupt segment stays corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass

from natlab.core.checksum import incremental_update
from natlab.core.packets import TCP_ACK

MOD = 1 << 32
HALF = 1 << 31
MAX_CORRECTIONS = 8  # rewrites remembered per direction (Linux: 1)
SACK = 5
NOP = 1
END_OF_OPTIONS = 0


def after(a: int, b: int) -> bool:
    """a lies after b in sequence space (modulo 2**32, within half of it)."""
    return 0 < (a - b) % MOD < HALF


@dataclass(frozen=True, slots=True)
class Correction:
    """One rewritten payload (a SIP message), in its sender's sequence space."""

    seq: int  # where it started
    sent: int  # its payload's length as the sender sent it
    forwarded: int  # and as the router forwarded it
    shift_before: int  # the total shift of the bytes before it

    @property
    def shift_after(self) -> int:
        """The total shift of the bytes after it."""
        return self.shift_before + self.forwarded - self.sent

    @property
    def forwarded_seq(self) -> int:
        """Where it starts in the receiver's space."""
        return (self.seq + self.shift_before) % MOD


class Way:
    """One direction of a connection: the rewrites of what its sender sent."""

    __slots__ = ("corrections", "end")

    def __init__(self) -> None:
        self.corrections: list[Correction] = []
        self.end: int | None = None  # where the bytes seen so far end; None: none seen

    def saw(self, seq: int, length: int) -> None:
        """The sender's `length` bytes at `seq` passed (rewritten or not)."""
        end = (seq + length) % MOD
        if self.end is None or after(end, self.end):
            self.end = end

    def record(self, seq: int, sent: int, forwarded: int) -> bool:
        """The `sent` bytes at `seq` (a SIP message) the router rewrote to `forwarded` bytes.

        False when that cannot be kept consistent: a retransmission rewritten to
        another length than the first time, or a first rewrite of bytes that
        passed before (`saw`) as they were, a message first split across
        segments, say, whose receiver holds them so. The caller then forwards
        them as they came.
        """
        corrections = self.corrections
        for correction in reversed(corrections):
            if correction.seq == seq:
                return (correction.sent, correction.forwarded) == (sent, forwarded)
        if sent == forwarded:
            return True  # nothing shifts
        latest = corrections[-1] if corrections else None
        if latest is not None and not after(seq, latest.seq):
            return False
        if self.end is not None and after(self.end, seq):
            return False
        corrections.append(Correction(seq, sent, forwarded, latest.shift_after if latest else 0))
        if len(corrections) > MAX_CORRECTIONS:
            del corrections[0]
        return True

    def next_rewrite(self, start: int, end: int) -> int | None:
        """Where the first rewrite recorded strictly after `start` and before `end` begins:
        a message to resynchronise on inside bytes that hold no whole message."""
        for correction in self.corrections:
            if after(correction.seq, start) and after(end, correction.seq):
                return correction.seq
        return None

    def shift(self, seq: int) -> int:
        """The receiver's seq for a segment the sender sent at `seq`.

        A retransmission of a rewritten segment (at its very seq) is not after
        it: it gets the shift before it, as the first time.
        """
        for correction in reversed(self.corrections):
            if after(seq, correction.seq):
                return (seq + correction.shift_after) % MOD
        first = self.corrections[0] if self.corrections else None
        return seq if first is None else (seq + first.shift_before) % MOD

    def unshift(self, seq: int, *, round_up: bool = False) -> int:
        """The sender's seq of the receiver's `seq` (an ack or a SACK edge).

        Inside a rewritten segment's forwarded bytes it rounds down to the
        segment's start, or up to its end with `round_up`.
        """
        for correction in reversed(self.corrections):
            start = correction.forwarded_seq
            if not after(seq, start):
                continue
            if after((start + correction.forwarded) % MOD, seq):
                return (correction.seq + (correction.sent if round_up else 0)) % MOD
            return (seq - correction.shift_after) % MOD
        first = self.corrections[0] if self.corrections else None
        return seq if first is None else (seq - first.shift_before) % MOD


class SeqAdjust:
    """One TCP connection's two directions: 0 and 1, whichever the caller calls which."""

    __slots__ = ("ways",)

    def __init__(self) -> None:
        self.ways = (Way(), Way())

    def record(self, way: int, seq: int, sent: int, forwarded: int) -> bool:
        return self.ways[way].record(seq, sent, forwarded)

    @property
    def shifting(self) -> bool:
        """Some length changed: segments of this connection need adjusting."""
        return bool(self.ways[0].corrections or self.ways[1].corrections)


def adjust_segment(data: bytearray, l4: int, adjust: SeqAdjust, way: int) -> None:
    """Shift the seq, ack and SACK blocks of the TCP segment at `l4` of `data`, sent in `way`.

    Its seq is the sender's, shifted by this way's rewrites; its ack and SACK
    edges are the receiver's, of the other way, shifted back. The TCP
    checksum follows incrementally.
    """
    sending, acking = adjust.ways[way], adjust.ways[1 - way]
    header = (data[l4 + 12] >> 4) * 4
    old = bytes(data[l4 : l4 + header])
    if sending.corrections:
        seq = int.from_bytes(data[l4 + 4 : l4 + 8], "big")
        data[l4 + 4 : l4 + 8] = sending.shift(seq).to_bytes(4, "big")
    if acking.corrections and data[l4 + 13] & TCP_ACK:
        ack = int.from_bytes(data[l4 + 8 : l4 + 12], "big")
        data[l4 + 8 : l4 + 12] = acking.unshift(ack).to_bytes(4, "big")
        _adjust_sack(data, l4 + 20, l4 + header, acking)
    new = bytes(data[l4 : l4 + header])
    if new != old:
        checksum = int.from_bytes(data[l4 + 16 : l4 + 18], "big")
        data[l4 + 16 : l4 + 18] = incremental_update(checksum, old, new).to_bytes(2, "big")


def _adjust_sack(data: bytearray, at: int, end: int, acking: Way) -> None:
    """The SACK option's blocks (RFC 2018) back in the sender's space; empty ones removed."""
    while at < end:
        kind = data[at]
        if kind == END_OF_OPTIONS:
            return
        if kind == NOP:
            at += 1
            continue
        if at + 1 >= end or data[at + 1] < 2 or at + data[at + 1] > end:
            return  # a malformed option list: left as it came
        length = data[at + 1]
        if kind == SACK:
            blocks = []
            for edge in range(at + 2, at + length - 7, 8):
                left = int.from_bytes(data[edge : edge + 4], "big")
                right = int.from_bytes(data[edge + 4 : edge + 8], "big")
                left, right = acking.unshift(left, round_up=True), acking.unshift(right)
                if after(right, left):
                    blocks.append(left.to_bytes(4, "big") + right.to_bytes(4, "big"))
            kept = b"".join(blocks)
            option = bytes((SACK, 2 + len(kept))) + kept if kept else b""
            data[at : at + length] = option + bytes((NOP,)) * (length - len(option))
        at += length
