"""RTP as the lab's phones send it, and what a call's media really did.

A phone sends a G.711-sized stream (20 ms packets: 12-byte RTP header and
160 bytes of payload) for the length of the call and counts the RTP that
reaches it. The verdict comes from those counts alone, never from ICE
state: a direction flows when its receiver got at least half of what its
sender sent. The receiver also measures what RFC 3550 (6.4.1, A.3, A.8)
has it report: packets lost, the interarrival jitter, and packets late
for a fixed jitter buffer of JITTER_BUFFER (or out of order).
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from natlab.records import (
    CALLEE_DEAF,
    CALLER_DEAF,
    NO_MEDIA,
    TWO_WAY,
    CallReport,
    RtpCounts,
)

PAYLOAD_TYPE = 0  # PCMU
PAYLOAD = b"\xff" * 160  # 20 ms of G.711 mu-law silence
INTERVAL = 0.020
SAMPLES = 160  # per packet, at G.711's 8000 Hz clock
HEADER = struct.Struct("!BBHII")
VERSION = 2
CLOCK_RATE = 8000  # G.711's RTP clock, Hz
JITTER_BUFFER = 0.060  # seconds a packet may trail the fastest one so far and still play


@dataclass(frozen=True)
class RtpHeader:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload_size: int


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload: bytes = PAYLOAD) -> bytes:
    """RTP version 2, no padding, extension or CSRCs (RFC 3550 5.1)."""
    header = HEADER.pack(VERSION << 6, PAYLOAD_TYPE, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + payload


def parse_rtp(data: bytes) -> RtpHeader | None:
    """The header of an RTP packet; None for anything else (STUN, garbage, RTCP)."""
    if len(data) < HEADER.size:
        return None
    first, second, seq, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != VERSION or 72 <= second & 0x7F <= 76:  # 72-76 would be RTCP (RFC 5761)
        return None
    size = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: 4 bytes, then its length in words
        if len(data) < size + 4:
            return None
        size += 4 + 4 * struct.unpack_from("!H", data, size + 2)[0]
    padding = data[-1] if first & 0x20 and len(data) > size else 0
    if len(data) < size + padding:
        return None
    return RtpHeader(second & 0x7F, seq, timestamp, ssrc, len(data) - size - padding)


def _signed(delta: int, bits: int) -> int:
    """A difference of two wrapping counters, as the nearer signed value."""
    half = 1 << (bits - 1)
    return ((delta + half) % (1 << bits)) - half


class Reception:
    """A receiver's view of one RTP source (RFC 3550): loss, late packets, jitter.

    Loss is expected less received, expected counted from the first sequence
    number to the highest (A.3, extended over wraps). The jitter is A.8's
    running estimate of the variation in transit time, J += (|D| - J) / 16,
    kept in seconds. A packet is late when it comes after one with a higher
    sequence number, or when its transit is more than JITTER_BUFFER beyond
    the shortest seen: a phone playing it out would have skipped it.
    """

    def __init__(self) -> None:
        self.first: tuple[int, int, float] | None = None  # seq, timestamp, arrival
        self.highest = 0  # extended sequence number, relative to the first
        self.received = 0
        self.late = 0
        self.jitter = 0.0
        self.transit: float | None = None
        self.shortest = 0.0

    def add(self, seq: int, timestamp: int, at: float) -> None:
        if self.first is None:
            self.first = (seq, timestamp, at)
            self.received, self.transit = 1, 0.0
            return
        first_seq, first_timestamp, first_at = self.first
        self.received += 1
        position = self.highest + _signed(seq - first_seq - self.highest, 16)
        # relative transit: arrival less sending time, both counted from the first packet
        transit = (at - first_at) - _signed(timestamp - first_timestamp, 32) / CLOCK_RATE
        if position > self.highest:
            self.highest = position
            late = transit - min(self.shortest, transit) > JITTER_BUFFER
        else:
            late = position < self.highest  # overtaken: its turn to play has passed
        self.late += late
        self.shortest = min(self.shortest, transit)
        assert self.transit is not None
        self.jitter += (abs(transit - self.transit) - self.jitter) / 16
        self.transit = transit

    @property
    def lost(self) -> int:
        return max(0, self.highest + 1 - self.received) if self.first else 0


class RtpStream:
    """The packets one phone sends and the count of the peer's packets it receives."""

    def __init__(self, ssrc: int | None = None) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.counts = RtpCounts()
        self.reception = Reception()
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)

    def next_packet(self) -> bytes:
        packet = rtp_packet(self._seq, self._timestamp, self.ssrc)
        self._seq += 1
        self._timestamp += SAMPLES
        self.counts.sent += 1
        return packet

    def receive(self, data: bytes, at: float) -> bool:
        """Count data if it is the peer's RTP (our own, looped back, is not); wall time `at`."""
        header = parse_rtp(data)
        if header is None or header.ssrc == self.ssrc:
            return False
        counts, reception = self.counts, self.reception
        counts.received += 1
        if counts.first_received_at is None:
            counts.first_received_at = at
        reception.add(header.seq, header.timestamp, at)
        counts.lost, counts.late = reception.lost, reception.late
        counts.jitter_ms = round(reception.jitter * 1000, 3)
        return True


async def send_rtp(
    stream: RtpStream, send: Callable[[bytes], Awaitable[None] | None], stop: asyncio.Event
) -> None:
    """A packet every 20 ms until stop is set, paced on the clock so that lateness never adds up."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while not stop.is_set():
        pending = send(stream.next_packet())
        if pending is not None:
            await pending
        sent += 1
        await asyncio.sleep(max(0.0, start + sent * INTERVAL - loop.time()))


NO_PEER_COUNTS = "the other phone's RTP counts never came back"


def flowing(sent: int, received: int) -> bool:
    """Does a direction carry media: did its receiver get at least half of what was sent?"""
    return sent > 0 and 2 * received >= sent


def verdict(caller: RtpCounts, callee: RtpCounts) -> str:
    caller_hears = flowing(callee.sent, caller.received)
    callee_hears = flowing(caller.sent, callee.received)
    if caller_hears and callee_hears:
        return TWO_WAY
    if callee_hears:
        return CALLER_DEAF
    if caller_hears:
        return CALLEE_DEAF
    return NO_MEDIA


def finish(report: CallReport) -> CallReport:
    """Stamp the report's end and judge the media from both sides' counts.

    Without the peer's counts only this side's direction can be judged, and
    only as "something arrived"; the report says why.
    """
    report.ended_at = time.time()
    peer = report.peer_rtp
    if peer is None:
        peer = RtpCounts(sent=report.rtp.received)
        if report.error is None:
            report.error = NO_PEER_COUNTS
    mine, theirs = report.rtp, peer
    report.verdict = verdict(mine, theirs) if report.role == "caller" else verdict(theirs, mine)
    return report
