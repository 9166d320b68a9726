"""Bridges, veth pairs, addresses and routes, over an open pyroute2 socket."""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool

from natlab.plumbing.namespaces import entered, open_fd


def index_of(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname}")
    return found[0]


def add_bridge(ipr: IPRoute, ifname: str) -> int:
    """A segment: a bridge that forwards at once (no STP, no forward delay)."""
    ipr.link("add", ifname=ifname, kind="bridge", br_forward_delay=0, br_stp_state=0)
    index = index_of(ipr, ifname)
    ipr.link("set", index=index, state="up")
    return index


def add_veth(
    ipr: IPRoute, ifname: str, peer_namespace: str, peer_ifname: str, master: int | None
) -> None:
    """A veth whose near end joins a bridge here and whose far end is in another namespace."""
    fd = open_fd(peer_namespace)
    try:
        ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": peer_ifname, "net_ns_fd": fd})
    finally:
        os.close(fd)
    index = index_of(ipr, ifname)
    ipr.link("set", index=index, master=master, state="up")


def bring_up(ipr: IPRoute, ifname: str) -> int:
    index = index_of(ipr, ifname)
    ipr.link("set", index=index, state="up")
    return index


def add_address(ipr: IPRoute, index: int, address: IPv4Interface) -> None:
    ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)


def add_route(ipr: IPRoute, destination: IPv4Network | None, via: IPv4Address) -> None:
    ipr.route("add", dst=str(destination or "0.0.0.0/0"), gateway=str(via))


def disable_offloads(namespace: str, ifnames: list[str], *, receive: bool = False) -> None:
    """Have veths send finished checksums and, with `receive`, unmerged packets.

    A frame read with AF_PACKET off a veth may otherwise carry only a partial
    checksum, and a NAT that rewrites it incrementally sends packets the
    receiver silently drops (docs/design.md, known pitfalls). A router daemon also
    needs every frame as it was sent: receive offload could merge TCP segments
    into one packet larger than the MTU it has to send on.
    """
    prefixes = ("tx-checksum", "rx-gro") if receive else ("tx-checksum",)
    with entered(namespace):
        ethtool = Ethtool()
        try:
            for ifname in ifnames:
                features = ethtool.get_features(ifname)
                for name, feature in features.features.items():
                    if name.startswith(prefixes):
                        feature.enable = False
                ethtool.set_features(ifname, features)
        finally:
            ethtool.close()
