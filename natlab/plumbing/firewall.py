"""Keep a router namespace's own kernel out of the IPv4 dataplane.

natlab's router daemon reads every frame with AF_PACKET, which sees a frame
before the kernel's IP layer does. If the kernel then handled the same
packet it would answer translated traffic on its own (TCP RST, ICMP port
unreachable) and, with Linux's NAT and conntrack, move mappings around
(docs/design.md, known pitfalls). One nftables chain at the very start of
prerouting, with policy drop and no rules, stops that: the kernel never
sees an IPv4 packet arrive. ARP is not IPv4, so the kernel still answers
ARP for the router's addresses.
"""

from __future__ import annotations

from pyroute2.nftables.expressions import genex, ipv4addr, verdict
from pyroute2.nftables.main import NFTables

from natlab.plumbing.namespaces import entered

TABLE = "natlab"
CHAIN = "daemon-owns-ipv4"
NF_DROP = 0
BEFORE_EVERYTHING = -500  # lower than raw (-300) and conntrack (-200)


def drop_incoming_ipv4(namespace: str) -> None:
    """Drop every IPv4 packet the namespace's kernel receives, before conntrack."""
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
        finally:
            nft.close()


NF_ACCEPT = 1
NFT_META_L4PROTO = 16
NFT_META_IIFNAME = 6
IFNAMSIZ = 16
NFT_PAYLOAD_TRANSPORT_HEADER = 2


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
            nft.rule(
                "add",
                table=TABLE,
                chain=CHAIN,
                expressions=(
                    [genex("meta", {"dreg": 1, "key": NFT_META_IIFNAME})],
                    [_equals(interface.encode().ljust(IFNAMSIZ, b"\0"))],
                    [genex("meta", {"dreg": 1, "key": NFT_META_L4PROTO})],
                    [_equals(bytes([6]))],
                    ipv4addr(dst=address),
                    [
                        genex(
                            "payload",
                            {
                                "dreg": 1,
                                "base": NFT_PAYLOAD_TRANSPORT_HEADER,
                                "offset": 2,
                                "len": 2,
                            },
                        )
                    ],
                    [_equals(port.to_bytes(2, "big"))],
                    verdict(NF_ACCEPT),
                ),
            )
        finally:
            nft.close()


def _equals(value: bytes) -> dict:
    """An nftables cmp: register 1 equals `value`."""
    return genex("cmp", {"sreg": 1, "op": 0, "data": {"attrs": [("NFTA_DATA_VALUE", value)]}})
