"""The kernel forwards between the router's interfaces; nothing is translated.

Not a NAT: the baseline that benchmarks compare natlab's dataplane with,
and a way to check a topology's wiring with the NAT out of the picture.
"""

from __future__ import annotations

from pathlib import Path

from natlab.plumbing.namespaces import set_sysctls
from natlab.router.launch import Launch
from natlab.topology.model import Router, Topology


class KernelForwarding:
    """Plain IPv4 routing by the router namespace's own kernel."""

    name = "kernel"

    def translates(self, router: Router) -> bool:
        return False

    def configure(self, namespace: str, router: Router) -> None:
        set_sysctls(
            namespace,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.send_redirects": "0",
            },
        )

    def start(self, topology: Topology, lab: str, directory: Path, launch: Launch) -> list:
        return []

    def wait_ready(self, daemons: list) -> None:
        """Nothing to wait for: the kernel forwards as soon as it is configured."""
