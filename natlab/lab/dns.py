"""The lab's DNS, served by dnsmasq: a public server, and a resolver at every router's LAN.

A topology with a `dns:` section gets (natlab.topology.dns):

- the public server, dnsmasq on the dns-server host: the zone's public
  records, NXDOMAIN for every other name (the lab has no other internet);
- per LAN, the resolver users expect from a router: dnsmasq in the router's
  namespace on its LAN address, port 53, answering that LAN's overrides and
  forwarding every other question to the resolver of the router's own WAN
  segment (the public server, or the LAN resolver of the router upstream).
  That is the split horizon: the same name, another answer inside.
- every node's resolver in /etc/netns/NAMESPACE/resolv.conf: its segment's
  router, or the public server on a segment that is no router's LAN. Every
  process natlab starts or execs in a node sees it as /etc/resolv.conf
  (natlab.plumbing.namespaces.enter), so getent, phones and users' programs
  resolve through it.

The router's kernel drops every IPv4 packet in natlab's dataplane: the
daemon moves them all. A router's resolver is the one thing its kernel
serves itself. The lab lets in exactly these packets (kernel_services): DNS
to the LAN address from that LAN (UDP and TCP), and the upstream's UDP
answers to the one source port the resolver forwards from
(ROUTER_QUERY_PORT, below every NAT's default port range, so no mapping
ever holds it), and to the few ports its TCP connections upstream leave
from (dnsmasq cannot choose a TCP source port, so the router's kernel is
given them as its only ephemeral ports: router_sysctls); the daemon leaves
the same packets alone (DaemonConfig.kernel_served).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path

from dns import exception as dns_exception
from dns import message as dns_message
from dns import query as dns_query

from natlab.errors import NatlabError
from natlab.lab.launch import wait_started
from natlab.plumbing import namespaces
from natlab.plumbing.firewall import KernelService
from natlab.topology.model import Dns, Router, Topology

DNS_SERVER = "dns server"  # what the ledger calls each dnsmasq
DNS_PORT = 53
ROUTER_QUERY_PORT = 1023  # a router's resolver forwards from here (the next LAN's one down)
TCP_SOURCE_PORTS = 16  # ...and over TCP from one of these, below its query ports
RESOLV_CONF = "resolv.conf"
HOST_RESOLV_CONF = "/etc/resolv.conf"
READY_TIMEOUT = 5.0
PROBE_TIMEOUT = 0.1
DNSMASQ = "dnsmasq"

Launch = Callable[[str, Callable[[], object], Path, str], int]


@dataclass(frozen=True)
class Resolver:
    """One dnsmasq: where it runs and answers, what it knows, where it asks for the rest."""

    node: str
    address: IPv4Address
    names: dict[str, tuple[IPv4Address, ...]]
    upstream: IPv4Address | None = None  # None: the public server, which asks nobody
    lan: str | None = None  # a router's: the LAN interface (segment) it serves
    wan: str | None = None  # ...the router's WAN interface, and the address and port it
    source: IPv4Address | None = None  # forwards from
    query_port: int = ROUTER_QUERY_PORT
    tcp_ports: range = range(0)  # a router's: its kernel's ephemeral ports, for TCP upstream

    @property
    def label(self) -> str:
        return self.node if self.lan is None else f"{self.node}.{self.lan}"


@dataclass(frozen=True)
class Started:
    resolver: Resolver
    pid: int
    log: Path


# -- the plan: pure ----------------------------------------------------------------------------


def resolver_address(topology: Topology, dns: Dns, segment: str) -> IPv4Address:
    """Who answers DNS for nodes on segment: its gateway router, else the public server."""
    gateway = topology.segments[segment].gateway
    if gateway is None:
        return topology.hosts[dns.server].interfaces[0].address
    interface = topology.routers[gateway].interface_on(segment)
    assert interface is not None
    return interface.address


def plan(topology: Topology) -> list[Resolver]:
    """Every dnsmasq the lab runs: the public server first, then each router's LANs."""
    dns = topology.dns
    if dns is None:
        return []
    server = topology.hosts[dns.server].interfaces[0].address
    found = [Resolver(dns.server, server, dns.records)]
    for router in topology.routers.values():
        found += _lan_resolvers(topology, router)
    return found


def _lan_resolvers(topology: Topology, router: Router) -> list[Resolver]:
    """The router's resolvers, one per LAN (none without `dns:`)."""
    dns = topology.dns
    if dns is None:
        return []
    query_ports, tcp_ports = _source_ports(router)
    return [
        Resolver(
            router.name,
            lan.address,
            dns.overrides.get(lan.segment, {}),
            upstream=resolver_address(topology, dns, router.wan.segment),
            lan=lan.name,
            wan=router.wan.name,
            source=router.wan.address,
            query_port=query_port,
            tcp_ports=tcp_ports,
        )
        for lan, query_port in zip(router.lans, query_ports, strict=True)
    ]


def _source_ports(router: Router) -> tuple[list[int], range]:
    """Where the router's resolvers forward from: a UDP port each, and a run of ports for TCP.

    All below every NAT's default port range, and no UDP or TCP forward of the router holds them.
    """
    forwarded = {
        port
        for forward in router.forwards
        for port in range(forward.external_ports[0], forward.external_ports[1] + 1)
    }
    free = [port for port in range(ROUTER_QUERY_PORT, 0, -1) if port not in forwarded]
    query_ports, below = free[: len(router.lans)], free[len(router.lans) :]
    for top, bottom in zip(below, below[TCP_SOURCE_PORTS - 1 :], strict=False):
        if top - bottom == TCP_SOURCE_PORTS - 1:  # a run of ports with no forward in it
            return query_ports, range(bottom, top + 1)
    raise NatlabError(
        f"router '{router.name}' forwards nearly every port below {ROUTER_QUERY_PORT + 1}: "
        f"its DNS resolvers need {len(router.lans)} of them and {TCP_SOURCE_PORTS} in a row",
        fix="forward fewer ports below 1024, or remove the `dns:` section",
    )


def resolv_confs(topology: Topology) -> dict[str, str]:
    """Each node's resolv.conf: its segment's resolver, the zone to search.

    A router asks its own first LAN's resolver, as a home router's own
    programs do (over loopback: the one way its kernel lets them in).
    """
    dns = topology.dns
    if dns is None:
        return {}
    confs = {}
    for node in topology.nodes.values():
        if isinstance(node, Router):
            address = node.lans[0].address
        else:
            address = resolver_address(topology, dns, node.interfaces[0].segment)
        confs[node.name] = (
            "# written by natlab for this lab node; removed at `natlab down`\n"
            f"nameserver {address}\nsearch {dns.zone}\noptions timeout:1 attempts:2\n"
        )
    return confs


def dnsmasq_conf(resolver: Resolver) -> str:
    """dnsmasq's configuration for one resolver (it reads no other file and no resolv.conf)."""
    lines = [
        "no-resolv",
        "no-hosts",
        "bind-interfaces",
        f"listen-address={resolver.address}",
        f"port={DNS_PORT}",
        "log-facility=-",
        "log-queries",
        "cache-size=0",  # every answer is asked for now: a lab changes while it runs
    ]
    for name, addresses in resolver.names.items():
        lines += [f"host-record={name},{address}" for address in addresses]
    if resolver.upstream is None:
        lines.append("local=/#/")  # the lab's names or nothing: there is no other internet
    else:
        lines.append(f"server={resolver.upstream}@{resolver.source}#{resolver.query_port}")
    return "\n".join(lines) + "\n"


def kernel_services(topology: Topology, router: Router) -> list[KernelService]:
    """What the router's kernel must let in for its resolvers (natlab's dataplane)."""
    services = []
    for resolver in _lan_resolvers(topology, router):
        assert resolver.lan is not None and resolver.wan is not None
        lan, wan = str(resolver.address), str(resolver.source)
        services.append(KernelService(resolver.lan, lan, socket.IPPROTO_UDP, DNS_PORT))
        services.append(KernelService(resolver.lan, lan, socket.IPPROTO_TCP, DNS_PORT))
        services.append(KernelService(resolver.wan, wan, socket.IPPROTO_UDP, resolver.query_port))
        tcp = socket.IPPROTO_TCP
        services += [KernelService(resolver.wan, wan, tcp, port) for port in resolver.tcp_ports]
    return list(dict.fromkeys(services))  # a router's resolvers share its TCP ports


def router_sysctls(topology: Topology, router: Router) -> dict[str, str]:
    """The router kernel's ephemeral ports: only its resolvers' TCP ports (in this order:
    the kernel takes no ephemeral port below the first unprivileged one)."""
    if topology.dns is None:
        return {}
    _, tcp_ports = _source_ports(router)
    return {
        "net.ipv4.ip_unprivileged_port_start": str(tcp_ports[0]),
        "net.ipv4.ip_local_port_range": f"{tcp_ports[0]} {tcp_ports[-1]}",
    }


def kernel_served(topology: Topology, router: Router) -> tuple[tuple[str, str, int, int], ...]:
    """kernel_services as the router daemon's config holds them."""
    return tuple(
        (s.interface, s.address, s.proto, s.port) for s in kernel_services(topology, router)
    )


# -- making it real ----------------------------------------------------------------------------


def dns_dir(directory: Path) -> Path:
    return directory / "dns"


def write_resolv_confs(topology: Topology, namespace: Callable[[str], str]) -> None:
    """Give every node its /etc/netns/NAMESPACE/resolv.conf, before anything runs in it."""
    for node, text in resolv_confs(topology).items():
        namespaces.set_etc_file(namespace(node), RESOLV_CONF, text)


def start(topology: Topology, directory: Path, launch: Launch) -> list[Started]:
    """Start every dnsmasq (all at once); wait_ready() tells when they answer."""
    resolvers = plan(topology)
    if not resolvers:
        return []
    dns_dir(directory).mkdir(exist_ok=True)
    started = []
    for resolver in resolvers:
        conf = dns_dir(directory) / f"{resolver.label}.conf"
        conf.write_text(dnsmasq_conf(resolver))
        log = dns_dir(directory) / f"{resolver.label}.log"
        pid = launch(resolver.node, partial(_exec_dnsmasq, conf), log, DNS_SERVER)
        started.append(Started(resolver, pid, log))
    return started


def check_host(topology: Topology, path: str | None) -> None:
    """A lab with names needs dnsmasq, and an /etc/resolv.conf to show its own over:
    say so before anything is built."""
    if topology.dns is None:
        return
    if shutil.which(DNSMASQ, path=path) is None:
        raise NatlabError(
            f"the `dns:` section of {topology.source} needs dnsmasq, which is not installed",
            fix="install Debian's dnsmasq-base (scripts/install.sh does)",
        )
    if not os.path.isfile(HOST_RESOLV_CONF):
        raise NatlabError(
            f"the `dns:` section of {topology.source} needs a file at {HOST_RESOLV_CONF}: "
            "natlab shows each node its own resolv.conf in its place",
            fix=f"create one (an empty {HOST_RESOLV_CONF} will do)",
        )


def _exec_dnsmasq(conf: Path) -> None:
    """Become dnsmasq in the foreground, logging to the log the lab gave us (stderr)."""
    argv = [DNSMASQ, "--keep-in-foreground", "--pid-file=", f"--conf-file={conf}"]
    sys.stdout.flush()
    os.execvp(DNSMASQ, argv)


def wait_ready(
    started: list[Started], namespace: Callable[[str], str], timeout: float = READY_TIMEOUT
) -> None:
    """Return once every dnsmasq answers a question from inside its node; else fail naming it."""
    deadline = time.monotonic() + timeout
    for each in started:
        resolver = each.resolver
        role = "public DNS server" if resolver.lan is None else f"resolver of LAN '{resolver.lan}'"
        what = f"the {role} (dnsmasq) in node '{resolver.node}'"
        ready = partial(answers, namespace(resolver.node), resolver.address)
        wait_started(ready, each.pid, each.log, what, deadline)


def answers(namespace: str, address: IPv4Address) -> bool:
    """Does a DNS server answer at address:53, asked from inside namespace?

    It asks version.bind (class CHAOS), which dnsmasq answers itself.
    """
    query = dns_message.make_query("version.bind", "TXT", "CH")
    with namespaces.entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)  # dnspython keeps its timeout only on a nonblocking socket
    with sock:
        try:
            dns_query.udp(query, str(address), timeout=PROBE_TIMEOUT, sock=sock)
        except (dns_exception.Timeout, OSError):
            return False
    return True
