"""Which way a pair's traffic went, as natlab saw it: direct, through a relay, or not at all.

While a matrix cell runs, each side's router captures the UDP that it
delivers to its node on the LAN (tcpdump on the router's LAN interface,
after translation). The pair went **direct** when each side received
packets from the other side's public address: A's router let in traffic
from B's router's WAN address (or from B itself when B's router only
routes), and B's from A's; it went through a **relay** when instead both
received from a relay's address (a TURN server, the PBX's media relay).
The most frequent of those flows on each side is the selected pair as
natlab saw it.

Pure: pcap bytes and addresses in, a PairPath out. The pcap reader is
bounded: it stops after MAX_PACKETS and reads only the headers it needs.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

DIRECT, RELAYED, NO_PATH = "direct", "relayed", "none"
MAX_PACKETS = 200_000  # per capture: a cell's programs exchange a few hundred datagrams
_ETHERNET, _IPV4, _UDP = 1, 0x0800, 17
_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<"}
_MAGICS[b"\xa1\xb2\x3c\x4d"] = ">"  # nanosecond-resolution pcap, either byte order

Flow = tuple[str, int, str, int]  # source address, port, destination address, port
Relay = tuple[str, int, int]  # a relay's address and its ports, first and last


def udp_flows(stream: BinaryIO, limit: int = MAX_PACKETS) -> Iterator[Flow]:
    """(src, sport, dst, dport) of each UDP/IPv4 packet of a classic Ethernet pcap."""
    header = stream.read(24)
    if len(header) < 24 or header[:4] not in _MAGICS:
        return
    order = _MAGICS[header[:4]]
    if struct.unpack(order + "I", header[20:24])[0] & 0xFFFF != _ETHERNET:
        return
    for _ in range(limit):
        record = stream.read(16)
        if len(record) < 16:
            return
        captured = struct.unpack(order + "I", record[8:12])[0]
        frame = stream.read(captured)
        if len(frame) < captured:
            return
        if len(frame) < 14 + 20 + 8 or struct.unpack("!H", frame[12:14])[0] != _IPV4:
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[14 + 9] != _UDP or len(frame) < 14 + ihl + 4:
            continue
        src, dst = frame[26:30], frame[30:34]
        sport, dport = struct.unpack("!HH", frame[14 + ihl : 14 + ihl + 4])
        yield _address(src), sport, _address(dst), dport


def _address(raw: bytes) -> str:
    return ".".join(str(octet) for octet in raw)


def read_flows(path: Path) -> list[Flow]:
    try:
        with path.open("rb") as stream:
            return list(udp_flows(stream))
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class PairPath:
    way: str  # DIRECT | RELAYED | NO_PATH
    selected: str | None  # "10.1.0.2:5000 (203.0.113.2:5000) <-> 10.2.0.2:6000 (...)"

    def as_json(self) -> dict:
        return {"path": self.way, "selected_pair": self.selected}


def pair_path(
    a_received: list[Flow],
    b_received: list[Flow],
    a_public: Collection[str],
    b_public: Collection[str],
    relays: Collection[Relay],
) -> PairPath:
    """The path from what each side's router delivered to it (its LAN capture).

    a_public: the addresses B sees A's traffic from (A's router's WAN, or A's own when its
    router does not translate); b_public likewise; relays: (address, first, last port).
    """
    a_from_b = Counter(f for f in a_received if f[0] in b_public)
    b_from_a = Counter(f for f in b_received if f[0] in a_public)
    if a_from_b and b_from_a:
        (a_flow, _), (b_flow, _) = a_from_b.most_common(1)[0], b_from_a.most_common(1)[0]
        # a_flow: B's public side -> A inside; b_flow: A's public side -> B inside
        selected = (
            f"{a_flow[2]}:{a_flow[3]} ({b_flow[0]}:{b_flow[1]}) <-> "
            f"{b_flow[2]}:{b_flow[3]} ({a_flow[0]}:{a_flow[1]})"
        )
        return PairPath(DIRECT, selected)
    a_relayed = Counter(f for f in a_received if _relayed(f, relays))
    b_relayed = Counter(f for f in b_received if _relayed(f, relays))
    if a_relayed and b_relayed:
        (a_flow, _), (b_flow, _) = a_relayed.most_common(1)[0], b_relayed.most_common(1)[0]
        selected = (
            f"{a_flow[2]}:{a_flow[3]} <-> relay {a_flow[0]}:{a_flow[1]} / "
            f"{b_flow[0]}:{b_flow[1]} <-> {b_flow[2]}:{b_flow[3]}"
        )
        return PairPath(RELAYED, selected)
    return PairPath(NO_PATH, None)


def _relayed(flow: Flow, relays: Collection[Relay]) -> bool:
    return any(flow[0] == address and first <= flow[1] <= last for address, first, last in relays)
