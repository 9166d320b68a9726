"""Which way a pair went, from what each router delivered on its LAN (pair_path.py)."""

from __future__ import annotations

import io
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from natlab.scenario.pair_path import DIRECT, NO_PATH, RELAYED, pair_path, udp_flows

A_IN, B_IN = "10.1.0.2", "10.2.0.2"
A_PUB, B_PUB = "203.0.113.2", "203.0.113.3"
TURN = "203.0.113.5"
RELAYS = [(TURN, 1, 65535), ("203.0.113.1", 40000, 40099)]


def frame(src: str, sport: int, dst: str, dport: int, proto: int = 17) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        28,
        0,
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8, 0)


def pcap(frames: list[bytes], snaplen: int = 64, order: str = "<") -> bytes:
    out = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for data in frames:
        kept = data[:snaplen]
        out += struct.pack(order + "IIII", 1, 2, len(kept), len(data)) + kept
    return out


def test_udp_flows_are_read_from_either_byte_order_and_the_rest_skipped():
    frames = [frame(B_PUB, 5000, A_IN, 6000), frame(B_PUB, 1, A_IN, 2, proto=6)]
    for order in "<>":
        assert list(udp_flows(io.BytesIO(pcap(frames, order=order)))) == [(B_PUB, 5000, A_IN, 6000)]


def test_a_cut_or_foreign_capture_gives_what_is_whole():
    whole = pcap([frame(B_PUB, 5000, A_IN, 6000)] * 2)
    assert len(list(udp_flows(io.BytesIO(whole[:-5])))) == 1
    assert list(udp_flows(io.BytesIO(b"not a pcap at all, really"))) == []
    assert list(udp_flows(io.BytesIO(b""))) == []


@given(st.binary(max_size=400))
def test_garbage_after_a_header_never_raises(tail):
    list(udp_flows(io.BytesIO(pcap([]) + tail)))


def test_the_reader_is_bounded():
    many = pcap([frame(B_PUB, 5000, A_IN, 6000)] * 50)
    assert len(list(udp_flows(io.BytesIO(many), limit=10))) == 10


def test_each_side_hearing_the_other_public_side_is_direct_with_the_pair():
    a = [(B_PUB, 7001, A_IN, 6000)] * 3 + [(TURN, 3478, A_IN, 6000)]
    b = [(A_PUB, 6000, B_IN, 7000)] * 3
    path = pair_path(a, b, {A_PUB, A_IN}, {B_PUB, B_IN}, RELAYS)
    assert path.way == DIRECT
    assert path.selected == f"{A_IN}:6000 ({A_PUB}:6000) <-> {B_IN}:7000 ({B_PUB}:7001)"


def test_one_side_only_is_not_direct():
    a = [(B_PUB, 7001, A_IN, 6000)]
    assert pair_path(a, [], {A_PUB}, {B_PUB}, RELAYS).way == NO_PATH


def test_both_sides_through_a_relay_is_relayed():
    a, b = [(TURN, 3478, A_IN, 6000)], [(TURN, 50123, B_IN, 7000)]
    path = pair_path(a, b, {A_PUB}, {B_PUB}, RELAYS)
    assert path.way == RELAYED and TURN in (path.selected or "")


def test_a_pbx_relay_counts_only_on_its_relay_ports():
    stun_answer = [("203.0.113.1", 3478, A_IN, 6000)]  # the same router's STUN responder
    rtp = [("203.0.113.1", 40002, B_IN, 7000)]
    assert pair_path(stun_answer, rtp, {A_PUB}, {B_PUB}, RELAYS).way == NO_PATH
    assert pair_path(rtp, rtp, {A_PUB}, {B_PUB}, RELAYS).way == RELAYED
