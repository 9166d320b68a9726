"""One router interface as the daemon sees it: raw Ethernet frames in and out, and ARP.

The daemon reads frames with AF_PACKET (before the kernel's IP layer, which
is told to drop them, see plumbing/firewall.py) and writes frames it built
itself, so it resolves next hops on its own. The kernel still answers ARP
for the router's addresses; this side only asks, and learns from every ARP
packet it sees on the segment.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

ETH_P_ALL = 0x0003
ETH_IP = b"\x08\x00"
ETH_ARP = b"\x08\x06"
BROADCAST = b"\xff" * 6
ARP_ETHERNET_IPV4 = b"\x00\x01\x08\x00\x06\x04"  # hardware 1, protocol IPv4, sizes 6 and 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_STATISTICS = 6  # struct tpacket_stats {unsigned tp_packets, tp_drops}; reading resets it
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 8 << 20
ARP_RETRY = 0.2  # seconds between requests for the same address
ARP_GIVE_UP = 3.0  # packets waiting this long for an answer are dropped
WAITING_MAX = 64  # packets kept per unresolved next hop


class Port:
    """An AF_PACKET socket on one interface, with a neighbour table."""

    def __init__(self, name: str, addresses: tuple[str, ...]) -> None:
        self.name = name
        self.addresses = [IPv4Interface(a) for a in addresses]
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((name, ETH_P_ALL))
        self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self.sock.setblocking(False)
        self.mac: bytes = self.sock.getsockname()[4]
        # How an IPv4 frame leaves: straight onto the socket, or through the link's
        # impairment (the daemon's RouterDaemon.impair); ARP is never impaired.
        self.transmit: Callable[[bytes | bytearray | memoryview], object] = self.sock.send
        self.headers: dict[str, bytes] = {}  # next hop -> Ethernet header to it
        self.waiting: dict[str, list[bytes]] = {}
        self.asked: dict[str, float] = {}  # next hop -> when we first asked
        self.last_ask: dict[str, float] = {}
        self.arp_failures = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, next_hop: str, packet: bytes | bytearray, now: float) -> None:
        """Send an IPv4 packet to next_hop, asking ARP first if its address is not known."""
        header = self.headers.get(next_hop)
        if header is not None:
            self.transmit(header + packet)
            return
        queue = self.waiting.setdefault(next_hop, [])
        if len(queue) < WAITING_MAX:
            queue.append(bytes(packet))
        self.asked.setdefault(next_hop, now)
        if now - self.last_ask.get(next_hop, -ARP_RETRY) >= ARP_RETRY:
            self.last_ask[next_hop] = now
            self._ask(next_hop)

    def arp(self, frame: memoryview) -> None:
        """Learn the sender of any ARP packet on the segment; flush what waited for it."""
        if len(frame) < 42 or frame[14:20] != ARP_ETHERNET_IPV4:
            return
        sender_mac = bytes(frame[22:28])
        sender = str(IPv4Address(bytes(frame[28:32])))
        if not self.on_link(sender):
            return
        self.headers[sender] = sender_mac + self.mac + ETH_IP
        for packet in self.waiting.pop(sender, ()):
            self.transmit(self.headers[sender] + packet)
        self.asked.pop(sender, None)
        self.last_ask.pop(sender, None)

    def overflowed(self) -> int:
        """Frames the kernel dropped since the last call: the socket's buffer was full."""
        _, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return drops

    def on_link(self, address: str) -> bool:
        ip = IPv4Address(address)
        return any(ip in a.network for a in self.addresses)

    def expire(self, now: float) -> int:
        """Drop packets that waited too long for an ARP answer; how many were dropped."""
        dropped = 0
        for next_hop, since in list(self.asked.items()):
            if now - since >= ARP_GIVE_UP:
                dropped += len(self.waiting.pop(next_hop, ()))
                del self.asked[next_hop]
                self.last_ask.pop(next_hop, None)
        self.arp_failures += dropped
        return dropped

    def _ask(self, target: str) -> None:
        ip = IPv4Address(target)
        source = next((a.ip for a in self.addresses if ip in a.network), self.addresses[0].ip)
        request = struct.pack(
            "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.mac, source.packed, b"\0" * 6, ip.packed
        )
        self.sock.send(BROADCAST + self.mac + ETH_ARP + request)

    def close(self) -> None:
        self.sock.close()
