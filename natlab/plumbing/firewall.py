"""Keep a router namespace's own kernel out of the IPv4 dataplane.

natlab's router daemon reads every frame with AF_PACKET, which sees a frame
before the kernel's IP layer does. If the kernel then handled the same
packet it would answer translated traffic on its own (TCP RST, ICMP port
unreachable) and, with Linux's NAT and conntrack, move mappings around
(docs/design.md, known pitfalls). One nftables chain at the very start of
prerouting, with policy drop and no rules, stops that: the kernel never
sees an IPv4 packet arrive. ARP is not IPv4, so the kernel still answers
ARP for the router's addresses.

The one exception is what the router's own programs serve (its LAN's DNS
resolver): drop_incoming_ipv4() lets exactly those packets through, and
the daemon leaves them alone. Loopback goes through too, so such a program can
be asked from inside the router.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pyroute2.nftables.expressions import genex, verdict
from pyroute2.nftables.main import NFTables

from natlab.plumbing.namespaces import entered

TABLE = "natlab"
CHAIN = "daemon-owns-ipv4"
NF_DROP = 0
NF_ACCEPT = 1
NFT_META_IIFNAME = 6
NETWORK_HEADER, TRANSPORT_HEADER = 1, 2  # NFT_PAYLOAD_* bases
IFNAMSIZ = 16
BEFORE_EVERYTHING = -500  # lower than raw (-300) and conntrack (-200)


@dataclass(frozen=True)
class KernelService:
    """Packets the router's kernel may take: in by `interface`, to address:port over proto."""

    interface: str
    address: str
    proto: int  # socket.IPPROTO_UDP or IPPROTO_TCP
    port: int


def drop_incoming_ipv4(namespace: str, services: Sequence[KernelService] = ()) -> None:
    """Drop every IPv4 packet the namespace's kernel receives, before conntrack.

    With services, loopback and exactly those services' packets still go in
    (rules ahead of the chain's policy).
    """
    with entered(namespace):
        nft = NFTables(nfgen_family=2)  # NFPROTO_IPV4
        try:
            nft.table("add", name=TABLE)
            nft.chain(
                "add",
                table=TABLE,
                name=CHAIN,
                hook="prerouting",
                type="filter",
                priority=BEFORE_EVERYTHING,
                policy=NF_DROP,
            )
            if services:
                _accept(nft, (_iifname("lo"), verdict(NF_ACCEPT)))
            for service in services:
                _accept(nft, _service(service))
        finally:
            nft.close()


def accept_tcp_to(namespace: str, interface: str, address: str, port: int) -> None:
    """Let the kernel have TCP in by `interface` to `address`:`port` (the UPnP HTTP server).

    The daemon owns the dataplane; this one hole in the drop chain lets the
    namespace's kernel run a TCP server the daemon listens on, since
    natlab's dataplane has no TCP stack of its own. Only segments that came
    in by that (LAN) interface to that address and port pass, so nothing on
    the WAN reaches the server; everything else is still dropped.
    """
    with entered(namespace):
        nft = NFTables(nfgen_family=2)
        try:
            _accept(nft, _service(KernelService(interface, address, socket.IPPROTO_TCP, port)))
        finally:
            nft.close()


def _service(service: KernelService) -> tuple:
    """The expressions that match one service's packets and accept them."""
    return (
        _iifname(service.interface),
        _payload(NETWORK_HEADER, 16, socket.inet_aton(service.address)),
        _payload(NETWORK_HEADER, 9, bytes([service.proto])),
        _payload(TRANSPORT_HEADER, 2, struct.pack("!H", service.port)),
        verdict(NF_ACCEPT),
    )


def _accept(nft: NFTables, expressions: tuple) -> None:
    nft.rule("add", table=TABLE, chain=CHAIN, expressions=expressions)


def _iifname(name: str) -> list:
    return [
        genex("meta", {"key": NFT_META_IIFNAME, "dreg": 1}),
        _equals(name.encode().ljust(IFNAMSIZ, b"\0")),
    ]


def _payload(base: int, offset: int, value: bytes) -> list:
    load = genex("payload", {"dreg": 1, "base": base, "offset": offset, "len": len(value)})
    return [load, _equals(value)]


def _equals(value: bytes) -> dict:
    return genex("cmp", {"sreg": 1, "op": 0, "data": {"attrs": [("NFTA_DATA_VALUE", value)]}})
