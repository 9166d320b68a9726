"""The kernel forwards between the router's interfaces; nothing is translated."""

from __future__ import annotations

from natlab.plumbing.namespaces import set_sysctls
from natlab.topology.model import Router


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
