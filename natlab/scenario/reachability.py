"""Who can reach whom: every node pings every other node's addresses.

The first check a user runs on a new topology, and a plain picture of what
NAT hides: a LAN behind a translating router is unreachable from outside.
Pings run in parallel with a one-second deadline, so a whole matrix takes
about a second however many pairs fail.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address

from natlab.lab import Lab


@dataclass(frozen=True)
class Probe:
    source: str
    target: str
    address: IPv4Address
    reached: bool


def reachability(lab: Lab, timeout: float = 1.0) -> list[Probe]:
    """Ping each address of every node from every other node, all at once."""
    nodes = lab.topology.nodes
    pending = []
    for source in nodes:
        for target, node in nodes.items():
            if target == source:
                continue
            for iface in node.interfaces:
                for address in iface.addresses:
                    argv = ["ping", "-n", "-q", "-c", "1", "-W", str(timeout), str(address.ip)]
                    process = lab.popen(
                        source,
                        argv,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    pending.append((source, target, address.ip, process))
    return [
        Probe(source, target, address, process.wait() == 0)
        for source, target, address, process in pending
    ]
