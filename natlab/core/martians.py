"""Martian sources: addresses no packet arriving on a router's WAN can honestly carry.

A packet that comes in on the WAN claiming to be from the router itself,
from "this network" (0.0.0.0/8), loopback (127.0.0.0/8), link-local
(169.254.0.0/16), a multicast or reserved address (224.0.0.0/4, 240.0.0.0/4
with the limited broadcast 255.255.255.255), the WAN segment's broadcast
address, or from a network that lies on the router's LAN side was forged or
misrouted (RFC 1812 5.3.7 and 5.2.3). Let through a port forward, it makes
the inside host answer the router itself or a whole segment: one forged
datagram from the router's own address to its own forwarded port once kept
a PBX and the router echoing each other's replies until the lab went down.

Only the LAN-side networks of *this* router count, not every private range:
a router's WAN may sit on another router's private LAN (double NAT,
carrier-grade NAT), where private sources are what every packet carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

CACHE_LIMIT = 4096  # sources remembered; a spoofing flood of random sources stays bounded

# (network, how a drop names it), most specific first: the limited broadcast is in 240/4
_ALWAYS = tuple(
    (IPv4Network(network), what)
    for network, what in (
        ("255.255.255.255/32", "the limited broadcast address"),
        ("0.0.0.0/8", '"this network" 0.0.0.0/8'),
        ("127.0.0.0/8", "loopback 127.0.0.0/8"),
        ("169.254.0.0/16", "link-local 169.254.0.0/16"),
        ("224.0.0.0/4", "multicast 224.0.0.0/4"),
        ("240.0.0.0/4", "reserved 240.0.0.0/4"),
    )
)


@dataclass(frozen=True)
class RouterFacts:
    """What a router knows about itself that makes a source impossible on its WAN.

    own_addresses: every address of every interface; lan_networks: the
    networks on its LAN side (its LAN subnets and what it routes behind
    them); wan_broadcasts: the broadcast address of each WAN subnet that has
    one (a /31 or /32 has none).
    """

    own_addresses: tuple[str, ...]
    lan_networks: tuple[str, ...]
    wan_broadcasts: tuple[str, ...] = ()


class MartianSources:
    """Tells why a source address cannot arrive on this router's WAN, or None if it can."""

    def __init__(self, facts: RouterFacts) -> None:
        self.facts = facts
        self._own = frozenset(str(IPv4Address(a)) for a in facts.own_addresses)
        self._broadcasts = frozenset(str(IPv4Address(a)) for a in facts.wan_broadcasts)
        self._ranges = (
            *(((int(n.network_address), int(n.netmask)), what) for n, what in _ALWAYS),
            *(
                (
                    (int(n.network_address), int(n.netmask)),
                    f"{n}, a network on the router's LAN side",
                )
                for n in (IPv4Network(text, strict=False) for text in facts.lan_networks)
            ),
        )
        self._cache: dict[str, str | None] = {}

    def reason(self, source: str) -> str | None:
        """What `source` is, said for a drop ("loopback 127.0.0.0/8"), or None if honest."""
        cache = self._cache
        if source in cache:
            return cache[source]
        found = self._classify(source)
        if len(cache) < CACHE_LIMIT:
            cache[source] = found
        return found

    def _classify(self, source: str) -> str | None:
        if source in self._own:
            return "the router's own address"
        if source in self._broadcasts:
            return "the broadcast address of the WAN segment"
        value = int(IPv4Address(source))
        for (network, mask), what in self._ranges:
            if value & mask == network:
                return what
        return None
