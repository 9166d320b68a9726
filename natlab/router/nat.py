"""natlab's own NAT dataplane, as the lab sees it: set a router up, start its daemon.

The router's kernel forwards nothing and drops every IPv4 packet it
receives; the daemon (daemon.py) moves and translates every packet. Each
router's files sit in the lab's state directory (files.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from natlab.plumbing.firewall import drop_incoming_ipv4
from natlab.plumbing.links import disable_offloads
from natlab.plumbing.namespaces import set_sysctls
from natlab.router.config import daemon_config
from natlab.router.control import call
from natlab.router.daemon import serve
from natlab.router.files import config_path, log_path, socket_path
from natlab.router.launch import Launch, wait_started
from natlab.topology.model import Router, Topology

READY_TIMEOUT = 10.0
DAEMON = "nat daemon"  # what the lab's ledger calls these processes


@dataclass
class Daemon:
    router: str
    pid: int
    config: Path

    @property
    def log(self) -> Path:
        return log_path(self.config)


class NatDataplane:
    """Every router runs natlab's NAT daemon; presets `none` route without translating."""

    name = "natlab"

    def translates(self, router: Router) -> bool:
        return router.behaviour.translate

    def configure(self, namespace: str, router: Router) -> None:
        set_sysctls(
            namespace,
            {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.send_redirects": "0"},
        )
        drop_incoming_ipv4(namespace)
        disable_offloads(namespace, [iface.name for iface in router.interfaces], receive=True)

    def start(self, topology: Topology, lab: str, directory: Path, launch: Launch) -> list[Daemon]:
        """Start one daemon per router (all at once); wait_ready() tells when they serve."""
        daemons = []
        for router in topology.routers.values():
            config = config_path(directory, router.name)
            config.parent.mkdir(parents=True, exist_ok=True)
            daemon_config(topology, router, lab, self.translates).save(config)
            pid = launch(router.name, partial(serve, config), log_path(config))
            daemons.append(Daemon(router.name, pid, config))
        return daemons

    def wait_ready(self, daemons: list[Daemon], timeout: float = READY_TIMEOUT) -> None:
        """Return once every daemon answers its control socket; else fail naming the router."""
        deadline = time.monotonic() + timeout
        for daemon in daemons:
            control = socket_path(daemon.config)
            what = f"the NAT daemon of router '{daemon.router}'"
            wait_started(control.exists, daemon.pid, daemon.log, what, deadline)
            call(control, {"op": "ping"})
