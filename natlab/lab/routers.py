"""A router's dataplane, as the lab sees it: set a router's namespace up, start what runs it.

- NatDataplane, the default: natlab's own NAT daemon. The router's kernel
  forwards nothing and drops every IPv4 packet it receives; the daemon
  (natlab.router.daemon, a fresh interpreter in the router's namespace)
  moves and translates every packet. The lab writes each daemon's typed
  config (natlab.router.config) as a JSON file and hands the daemon its
  path; each router's files sit in the lab's state directory
  (natlab.router.files).
- KernelForwarding: the namespace's own kernel routes between the router's
  interfaces and translates nothing; the baseline benchmarks compare with,
  and a way to check a topology's wiring with the NAT out of the picture.

Either one tells the route plan whether a router translates (so it knows
which LANs stay hidden).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from natlab.control_socket import answers
from natlab.core.engine import StaticMap
from natlab.core.portcontrol.upnp import HTTP_PORT as UPNP_HTTP_PORT
from natlab.errors import NatlabError
from natlab.lab.launch import Launch, wait_started
from natlab.plumbing.firewall import accept_tcp_to, drop_incoming_ipv4
from natlab.plumbing.links import disable_offloads
from natlab.plumbing.namespaces import set_sysctls
from natlab.records import PingRequest
from natlab.router.config import DaemonConfig, PortConfig
from natlab.router.eventlog import limits
from natlab.router.files import config_path, log_path, socket_path
from natlab.topology.model import Router, Topology
from natlab.topology.routing import plan_routes

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


PING = PingRequest().to_json()


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
        if "upnp" in router.port_control:  # its HTTP server is a kernel TCP socket of the daemon
            for lan in router.lans:
                accept_tcp_to(namespace, lan.name, str(lan.addresses[0].ip), UPNP_HTTP_PORT)
        disable_offloads(namespace, [iface.name for iface in router.interfaces], receive=True)

    def start(self, topology: Topology, lab: str, directory: Path, launch: Launch) -> list[Daemon]:
        """Start one daemon per router (all at once); wait_ready() tells when they serve."""
        try:
            limits(os.environ)  # the daemons read them too: a mistake is told here, once
        except ValueError as error:
            raise NatlabError(str(error), fix="fix or unset the variable") from None
        daemons = []
        for router in topology.routers.values():
            config = config_path(directory, router.name)
            config.parent.mkdir(parents=True, exist_ok=True)
            daemon_config(topology, router, lab, self.translates).save(config)
            pid = launch(router.name, partial(_exec_daemon, config), log_path(config))
            daemons.append(Daemon(router.name, pid, config))
        return daemons

    def wait_ready(self, daemons: list[Daemon], timeout: float = READY_TIMEOUT) -> None:
        """Return once every daemon answers its control socket; else fail naming the router."""
        deadline = time.monotonic() + timeout
        for daemon in daemons:
            what = f"the NAT daemon of router '{daemon.router}'"
            ready = partial(answers, socket_path(daemon.config), PING)
            wait_started(ready, daemon.pid, daemon.log, what, deadline)


def _exec_daemon(config: Path) -> None:
    """Become a fresh interpreter that runs only the daemon (in the forked lab child).

    A forked child keeps every page of whatever forked it (the CLI, pytest,
    a benchmark); a daemon that imports only what it uses stays small.
    """
    os.execv(sys.executable, [sys.executable, "-m", "natlab.router.daemon", str(config)])


def daemon_config(topology: Topology, router: Router, lab: str, translates) -> DaemonConfig:
    routes = plan_routes(topology, translates)[router.name]
    lan_networks = [IPv4Interface(iface.addresses[0]).network for iface in router.lans]
    behind = [
        route.destination
        for route in routes
        if route.destination is not None and any(route.via in net for net in lan_networks)
    ]
    return DaemonConfig(
        lab=lab,
        router=router.name,
        ports=tuple(
            PortConfig(iface.name, tuple(str(a) for a in iface.addresses))
            for iface in router.interfaces
        ),
        routes=tuple(
            (str(route.destination or IPv4Network("0.0.0.0/0")), str(route.via)) for route in routes
        ),
        internal_networks=tuple(str(net) for net in [*lan_networks, *behind]),
        behaviour=router.behaviour,
        static_maps=tuple(
            StaticMap(
                forward.proto, forward.external_ports, str(forward.address), forward.internal_ports
            )
            for forward in router.forwards
        ),
        stun_ports=(router.stun.port, router.stun.alt_port) if router.stun else (),
        port_control=router.port_control,
        impairments={iface.name: iface.impair for iface in router.interfaces if iface.impair},
        cgnat=router.cgnat,
        sip_alg=router.sip_alg,
    )


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


Dataplane = NatDataplane | KernelForwarding
DATAPLANES: dict[str, type[Dataplane]] = {"natlab": NatDataplane, "kernel": KernelForwarding}
