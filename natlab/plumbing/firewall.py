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
