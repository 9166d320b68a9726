"""RTP as the lab's phones send it, and what a call's media really did.

A phone sends a G.711-sized stream (20 ms packets: 12-byte RTP header and
160 bytes of payload) for the length of the call and counts the RTP that
reaches it. The verdict comes from those counts alone, never from ICE
state: a direction flows when its receiver got at least half of what its
sender sent.
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


class RtpStream:
    """The packets one phone sends and the count of the peer's packets it receives."""

    def __init__(self, ssrc: int | None = None) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.counts = RtpCounts()
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
        self.counts.received += 1
        if self.counts.first_received_at is None:
            self.counts.first_received_at = at
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
