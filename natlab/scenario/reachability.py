"""Who can reach whom: every host pings every other node's addresses.

The first check a user runs on a new topology, and a plain picture of what
NAT hides: a LAN behind a translating router is unreachable from outside,
while everything outside stays reachable from inside. Each ping is held to
what the topology says it should do (routing.sees), so a NAT that leaks or
a route that is missing both show. Pings run in parallel with a one-second
deadline, so a whole matrix takes about a second however many pairs fail.

With natlab's dataplane, a router's own kernel receives no IPv4 packet (its
daemon owns them all), so routers are pinged but do not ping.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address

from natlab.lab import Lab
from natlab.lab.routers import NatDataplane
from natlab.topology.model import Router
from natlab.topology.routing import sees


@dataclass(frozen=True)
class Probe:
    source: str
    target: str
    address: IPv4Address
    expected: bool
    reached: bool

    @property
    def as_expected(self) -> bool:
        return self.expected == self.reached


def reachability(lab: Lab, timeout: float = 1.0) -> list[Probe]:
    """Ping each address of every node from every other node, all at once."""
    topology = lab.topology
    translates = lab.dataplane.translates
    own_dataplane = isinstance(lab.dataplane, NatDataplane)
    pending = []
    for source, node in topology.nodes.items():
        if own_dataplane and isinstance(node, Router):
            continue
        for target, other in topology.nodes.items():
            if target == source:
                continue
            for iface in other.interfaces:
                expected = sees(topology, translates, node, iface.segment)
                for address in iface.addresses:
                    argv = ["ping", "-n", "-q", "-c", "1", "-W", str(timeout), str(address.ip)]
                    process = lab.popen(
                        source, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    pending.append((source, target, address.ip, expected, process))
    return [
        Probe(source, target, address, expected, process.wait() == 0)
        for source, target, address, expected, process in pending
    ]
