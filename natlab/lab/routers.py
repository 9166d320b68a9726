"""A router's dataplane, as the lab sees it: set a router's namespace up, start what runs it.

- NatDataplane, the default: natlab's own NAT daemon. The router's kernel
  forwards nothing and drops every IPv4 packet it receives; the daemon
  (natlab.router.daemon, in the router's namespace) moves and translates
  every packet. The daemons are forked by one fresh interpreter that
  imported the daemon while the lab was being built (natlab.router.spawner,
  started by prepare()). The lab writes each daemon's typed
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

import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from natlab.control_socket import answers
from natlab.core.engine import StaticMap
from natlab.core.portcontrol.upnp import HTTP_PORT as UPNP_HTTP_PORT
from natlab.errors import NatlabError
from natlab.lab.dns import kernel_served
from natlab.lab.launch import log_tail, wait_started
from natlab.lab.naming import node_namespace
from natlab.lab.processes import SPAWNER
from natlab.plumbing.firewall import KernelService, accept_tcp_to, drop_incoming_ipv4
from natlab.plumbing.links import disable_offloads
from natlab.plumbing.namespaces import open_fd, set_sysctls
from natlab.records import PingRequest
from natlab.router.config import DaemonConfig, PortConfig
from natlab.router.eventlog import limits
from natlab.router.files import config_path, log_path, socket_path
from natlab.topology.model import Router, Topology
from natlab.topology.routing import plan_routes

READY_TIMEOUT = 10.0
DAEMON = "nat daemon"  # what the lab's ledger calls these processes
APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND  # how a process's log is opened
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

# adopt(pid, node, what): record a process the lab started, so that `down` stops it.
Adopt = Callable[[int, str, str], None]


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

    def configure(self, namespace: str, router: Router, services: list[KernelService]) -> None:
        """Keep the kernel out of the dataplane, but for what it serves itself (services)."""
        set_sysctls(
            namespace,
            {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.send_redirects": "0"},
        )
        drop_incoming_ipv4(namespace, services)
        if "upnp" in router.port_control:  # its HTTP server is a kernel TCP socket of the daemon
            for lan in router.lans:
                accept_tcp_to(namespace, lan.name, str(lan.addresses[0].ip), UPNP_HTTP_PORT)
        disable_offloads(namespace, [iface.name for iface in router.interfaces], receive=True)

    def prepare(self, topology: Topology, directory: Path, adopt: Adopt) -> Spawner | None:
        """Start the interpreter that will fork the daemons, early: it imports meanwhile."""
        return Spawner(directory, adopt) if topology.routers else None

    def start(
        self, topology: Topology, lab: str, directory: Path, spawner: Spawner | None
    ) -> list[Daemon]:
        """Start one daemon per router (all at once); wait_ready() tells when they serve."""
        try:
            limits(os.environ)  # the daemons read them too: a mistake is told here, once
        except ValueError as error:
            raise NatlabError(str(error), fix="fix or unset the variable") from None
        configs = {}
        for router in topology.routers.values():
            config = configs[router.name] = config_path(directory, router.name)
            config.parent.mkdir(parents=True, exist_ok=True)
            daemon_config(topology, router, lab, self.translates).save(config)
        if spawner is None:
            return []
        namespaces = {router: node_namespace(lab, router) for router in configs}
        pids = spawner.spawn({router: (namespaces[router], c) for router, c in configs.items()})
        return [Daemon(router, pids[router], config) for router, config in configs.items()]

    def wait_ready(self, daemons: list[Daemon], timeout: float = READY_TIMEOUT) -> None:
        """Return once every daemon answers its control socket; else fail naming the router."""
        deadline = time.monotonic() + timeout
        for daemon in daemons:
            what = f"the NAT daemon of router '{daemon.router}'"
            ready = partial(answers, socket_path(daemon.config), PING)
            wait_started(ready, daemon.pid, daemon.log, what, deadline)


class Spawner:
    """natlab.router.spawner, running: it forks each router's daemon when asked.

    Its daemons become the lab's own children (the lab is their subreaper
    while the spawner ends), so the lab collects their exit status as it
    does its other processes'.
    """

    def __init__(self, directory: Path, adopt: Adopt) -> None:
        self.adopt = adopt
        self.log = directory / "routers" / "spawner.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.requests, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.requests.settimeout(READY_TIMEOUT)  # its import, then each fork
        # Ctrl-C and SIGTERM wait until it is recorded, as for every process the lab starts.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            with theirs:
                self.pid = os.posix_spawn(
                    sys.executable,
                    [sys.executable, "-m", "natlab.router.spawner"],
                    os.environ,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, theirs.fileno(), 0),
                        (os.POSIX_SPAWN_OPEN, 1, str(self.log), APPEND, 0o644),
                        (os.POSIX_SPAWN_DUP2, 1, 2),
                    ],
                    setsid=True,  # Ctrl-C in the terminal is for natlab, not for it
                    setsigmask=(),
                    setsigdef=(signal.SIGINT, signal.SIGTERM),
                )
            try:
                adopt(self.pid, "", SPAWNER)
            except BaseException:
                self.requests.close()  # it ends at once, for want of requests
                os.waitpid(self.pid, 0)
                raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def spawn(self, daemons: dict[str, tuple[str, Path]]) -> dict[str, int]:
        """Fork the daemon of each router (its namespace, its config): each one's PID."""
        pids = {}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        was_subreaper = _subreaper(True)
        try:
            with self.requests:
                for router, (namespace, config) in daemons.items():
                    pids[router] = self._fork(router, namespace, config)
                self.requests.shutdown(socket.SHUT_WR)  # no more: it exits
            os.waitpid(self.pid, 0)  # and its daemons are the lab's children now
        finally:
            _subreaper(was_subreaper)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return pids

    def _fork(self, router: str, namespace: str, config: Path) -> int:
        fds = [open_fd(namespace), os.open(log_path(config), APPEND, 0o644)]
        try:
            socket.send_fds(self.requests, [os.fsencode(config)], fds)
            answer = self.requests.recv(32)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            answer = b""  # it has ended, or hangs (Ctrl-C is held meanwhile)
        finally:
            for fd in fds:
                os.close(fd)
        if not answer:
            raise NatlabError(
                f"the NAT daemon of router '{router}' did not start: "
                "the process that starts daemons has ended or does not answer",
                fix=f"its log ({self.log}) says: {log_tail(self.log)}",
            )
        pid = int(answer)
        self.adopt(pid, router, DAEMON)
        return pid


def _subreaper(on: bool) -> bool:
    """Make this process the subreaper of its orphaned descendants, or not; was it one?"""
    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int()
    if (
        libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was)) != 0
        or libc.prctl(PR_SET_CHILD_SUBREAPER, int(on)) != 0
    ):
        error = ctypes.get_errno()
        raise OSError(error, f"cannot adopt the NAT daemons: {os.strerror(error)}")
    return bool(was.value)


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
        kernel_served=kernel_served(topology, router),
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

    def configure(self, namespace: str, router: Router, services: list[KernelService]) -> None:
        """Route; the kernel serves everything of its own anyway (services)."""
        set_sysctls(
            namespace,
            {
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.send_redirects": "0",
            },
        )
        disable_offloads(namespace, [iface.name for iface in router.interfaces])

    def prepare(self, topology: Topology, directory: Path, adopt: Adopt) -> None:
        """Nothing to prepare: no daemons."""

    def start(self, topology: Topology, lab: str, directory: Path, spawner: None) -> list:
        return []

    def wait_ready(self, daemons: list) -> None:
        """Nothing to wait for: the kernel forwards as soon as it is configured."""


Dataplane = NatDataplane | KernelForwarding
DATAPLANES: dict[str, type[Dataplane]] = {"natlab": NatDataplane, "kernel": KernelForwarding}
