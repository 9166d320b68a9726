"""Cross-checks and address planning: from what the file says to a Topology.

Checks run in the order a reader would: names, segments, attachments,
explicit addresses, NAT and forwards. Addresses not given are planned from
the segment's subnet, lowest free first: gateways (router LANs) first, so a
LAN's gateway is its .1 unless the file says otherwise, then router WANs,
then hosts, each in file order.
"""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

import netaddr

from natlab.core.behaviour import Behaviour
from natlab.core.impair import LinkImpairment, link_impairment
from natlab.endpoints.pbx import RELAY_POLICIES, parse_policy
from natlab.endpoints.sip_dialogs import DEFAULT_PASSWORD as DEFAULT_SIP_PASSWORD
from natlab.errors import NatlabError
from natlab.router.sip_alg import MODES as SIP_ALG_MODES
from natlab.topology.behaviour_input import NatForm, NatFormError, nat_behaviour
from natlab.topology.cgnat import cgnat_settings, check_shared_space, move_pools_to_wans
from natlab.topology.command import split_command
from natlab.topology.dns import resolve_dns
from natlab.topology.lab_name import check_lab_name
from natlab.topology.model import (
    SIP_AGENT_TRANSPORTS,
    SIP_AGENTS,
    SIP_SERVERS,
    Forward,
    Host,
    Interface,
    Role,
    Router,
    Segment,
    SipAccount,
    Stun,
    Topology,
)
from natlab.topology.schema import (
    NAME_PATTERN,
    ForwardSpec,
    HostSpec,
    InterfaceSpec,
    RouterSpec,
    TopologySpec,
)
from natlab.topology.yaml_source import Path, YamlDocument, dotted

IFNAME_MAX = 15  # Linux IFNAMSIZ less the NUL
SIP_TOKEN = re.compile(r"^[A-Za-z0-9\-_.!~*'()]{1,64}$")  # RFC 3261 unreserved characters
NODE_NAME_MAX = 32
MAX_ADDRESSES = 16

# Network safety: a lab only ever uses private and documentation ranges.
LAB_RANGES = netaddr.IPSet(
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "192.0.2.0/24",  # documentation (RFC 5737): the emulated internet
        "198.51.100.0/24",
        "203.0.113.0/24",
    ]
)


def resolve(spec: TopologySpec, doc: YamlDocument, filename: str) -> Topology:
    return _Resolver(spec, doc, filename).topology()


class _Resolver:
    def __init__(self, spec: TopologySpec, doc: YamlDocument, filename: str) -> None:
        self.spec = spec
        self.doc = doc
        self.filename = filename
        self.taken: dict[IPv4Address, str] = {}  # address -> field path that holds it

    def fail(self, path: Path, problem: str, fix: str | None = None) -> NatlabError:
        return NatlabError(
            problem,
            file=self.filename,
            line=self.doc.line_of(path),
            field=dotted(path),
            fix=fix,
        )

    def topology(self) -> Topology:
        self._check_names()
        segments = self._segments()
        gateways = self._attachments()
        check_shared_space(self.spec, segments, self.fail)
        move_pools_to_wans(self.spec, self.fail)
        self._check_router_chains(gateways)
        requests = self._explicit_addresses(segments)
        planned = self._plan(segments, requests)
        routers = {
            name: self._router(name, spec, planned) for name, spec in self.spec.routers.items()
        }
        hosts = {
            name: Host(
                name=name,
                interfaces=(Interface(spec.segment, planned[("hosts", name)]),),
                role=spec.role,
                run=self._run(name, spec.run),
                agent=self._sip_software(name, spec, "agent", Role.PHONE, SIP_AGENTS),
                server=self._sip_software(name, spec, "server", Role.PBX, SIP_SERVERS),
                sip=self._sip(name, spec),
                nat_aware=self._nat_aware(name, spec),
                relay=self._relay(name, spec),
            )
            for name, spec in self.spec.hosts.items()
        }
        topology = Topology(
            name=self.spec.name,
            source=self.filename,
            segments={
                name: Segment(name, subnet, gateways.get(name)) for name, subnet in segments.items()
            },
            routers=routers,
            hosts=hosts,
        )
        return replace(topology, dns=resolve_dns(self.spec.dns, topology, self.fail))

    def _run(self, host: str, run: str | list[str] | None) -> tuple[str, ...]:
        if run is None:
            return ()
        try:
            return split_command(run)
        except ValueError as error:
            raise self.fail(
                ("hosts", host, "run"),
                str(error),
                "write the command as a shell would, run: \"prog --flag 'a b'\", "
                "or as a list of arguments",
            ) from None

    def _sip_software(
        self, host: str, spec: HostSpec, key: str, role: Role, known: tuple[str, ...]
    ) -> str | None:
        """A phone's `agent:` or a PBX's `server:`: a program natlab knows, in its own host."""
        name = getattr(spec, key)
        if name is None:
            return None
        path = ("hosts", host, key)
        self._only_for(role, host, spec, key, f"{key}: names the {role.value}'s SIP program")
        if name not in known:
            raise self.fail(
                path,
                f"unknown {key} '{name}'",
                f"use one of: {', '.join(known)}; or start your own program with run:",
            )
        if spec.run is not None:
            raise self.fail(
                path,
                f"host '{host}' has both {key}: and run:, and a host runs one program",
                f"leave out run:, or {key}: and start {name} yourself with run:",
            )
        return name

    def _sip(self, host: str, spec: HostSpec) -> SipAccount | None:
        if spec.sip is None:
            return None
        self._only_for(Role.PHONE, host, spec, "sip", "only phones have SIP credentials")
        for field_name in ("user", "password"):
            value = getattr(spec.sip, field_name)
            if value is not None and not SIP_TOKEN.match(value):
                raise self.fail(
                    ("hosts", host, "sip", field_name),
                    f"'{value}' cannot be a SIP {field_name}",
                    "use 1 to 64 letters, digits or - _ . ! ~ * ' ( ) characters",
                )
        self._check_transport(host, spec, spec.sip.transport)
        return SipAccount(
            spec.sip.user or host,
            spec.sip.password or DEFAULT_SIP_PASSWORD,
            spec.sip.keepalive or "auto",
            spec.sip.transport,
        )

    def _check_transport(self, host: str, spec: HostSpec, transport: str | None) -> None:
        """A phone's `sip: transport:`, if its softphone and its registrar both speak it."""
        if transport is None:
            return
        path = ("hosts", host, "sip", "transport")
        speaks = SIP_AGENT_TRANSPORTS.get(spec.agent or "")
        if speaks is not None and transport not in speaks:
            raise self.fail(
                path,
                f"natlab runs {spec.agent} over {' or '.join(speaks)} only, not {transport}",
                f"use transport: {' or '.join(speaks)}, or leave out agent: to run natlab's "
                f"phone, which speaks {transport}",
            )
        pbx = next((h for h in self.spec.hosts.values() if h.role == Role.PBX), None)
        if transport == "tls" and pbx is not None and pbx.server is not None:
            raise self.fail(
                path,
                f"{pbx.server} here serves SIP over UDP and TCP only, not TLS",
                "use transport: tcp or udp, or leave out the PBX's server: to run natlab's "
                "PBX, which serves TLS",
            )

    def _nat_aware(self, host: str, spec: HostSpec) -> bool:
        if spec.nat_aware is None:
            return True
        self._only_for(Role.PBX, host, spec, "nat_aware", "nat_aware is a PBX's setting")
        return spec.nat_aware

    def _relay(self, host: str, spec: HostSpec) -> str | frozenset[str]:
        """A PBX's relay policy: a keyword of RELAY_POLICIES or the SIP users of phones."""
        if spec.relay is None:
            return "none"
        path = ("hosts", host, "relay")
        self._only_for(Role.PBX, host, spec, "relay", "relay is the PBX's media relay policy")
        if spec.server is not None:
            raise self.fail(
                path,
                f"{spec.server} relays no media: relay: is natlab's own PBX's setting",
                "remove relay:, or server: to run natlab's PBX",
            )
        keywords = ", ".join(RELAY_POLICIES)
        try:
            policy = parse_policy(spec.relay)
        except ValueError:
            raise self.fail(path, "relay needs a keyword or phones", f"use {keywords}") from None
        users = {
            (other.sip.user if other.sip and other.sip.user else name)
            for name, other in self.spec.hosts.items()
            if other.role == Role.PHONE
        }
        unknown = sorted(set(policy) - users) if isinstance(policy, frozenset) else []
        if unknown:
            raise self.fail(
                path,
                f"relay names '{unknown[0]}', which is no phone's SIP user",
                f"use one of {keywords}, or a list of phones: {', '.join(sorted(users))}",
            )
        return policy

    def _only_for(self, role: Role, host: str, spec: HostSpec, field: str, why: str) -> None:
        if spec.role != role:
            raise self.fail(
                ("hosts", host, field),
                f"host '{host}' is not a {role.value}: {why}",
                f"remove {field}:, or give the host role: {role.value}",
            )

    # -- names ---------------------------------------------------------------

    def _check_names(self) -> None:
        check_lab_name(self.spec.name, "name", self.filename, self.doc.line_of(("name",)))
        pattern = re.compile(NAME_PATTERN)
        for name in self.spec.segments:
            if not pattern.match(name) or len(name) > IFNAME_MAX:
                raise self.fail(
                    ("segments", name),
                    f"segment name '{name}' cannot become a Linux interface name",
                    f"use at most {IFNAME_MAX} letters, digits, '-', '_' or '.', "
                    "starting with a letter or digit",
                )
        seen: dict[str, str] = {}
        for group in ("routers", "hosts"):
            for name in getattr(self.spec, group):
                if not pattern.match(name) or len(name) > NODE_NAME_MAX:
                    raise self.fail(
                        (group, name),
                        f"node name '{name}' cannot name a network namespace",
                        f"use at most {NODE_NAME_MAX} letters, digits, '-', '_' or '.', "
                        "starting with a letter or digit",
                    )
                if name in seen:
                    raise self.fail(
                        (group, name),
                        f"'{name}' is both a router and a host",
                        "give every node its own name",
                    )
                seen[name] = group

    # -- segments ------------------------------------------------------------

    def _segments(self) -> dict[str, IPv4Network]:
        segments: dict[str, IPv4Network] = {}
        for name, seg in self.spec.segments.items():
            path = ("segments", name, "subnet")
            subnet = seg.subnet
            if netaddr.IPNetwork(str(subnet)) not in LAB_RANGES:
                raise self.fail(
                    path,
                    f"subnet {subnet} is outside the ranges a lab may use",
                    "use a private range (10/8, 172.16/12, 192.168/16, 100.64/10) for LANs "
                    "and a documentation range (203.0.113.0/24, 198.51.100.0/24, "
                    "192.0.2.0/24) for the emulated internet",
                )
            if subnet.prefixlen > 30:
                raise self.fail(path, f"subnet {subnet} is too small", "use a /30 or larger")
            for other, other_subnet in segments.items():
                if subnet.overlaps(other_subnet):
                    raise self.fail(
                        path,
                        f"subnet {subnet} overlaps segment '{other}' ({other_subnet})",
                        "give every segment its own, non-overlapping subnet",
                    )
            segments[name] = subnet
        return segments

    # -- attachments ---------------------------------------------------------

    def _interfaces(self, spec: RouterSpec) -> list[tuple[Path, InterfaceSpec]]:
        lans: list[tuple[Path, InterfaceSpec]] = []
        if spec.lan is not None:
            lans.append((("lan",), spec.lan))
        for index, lan in enumerate(spec.lans or []):
            lans.append((("lans", index), lan))
        return [(("wan",), spec.wan), *lans]

    def _attachments(self) -> dict[str, str]:
        """Check every segment reference; return segment -> the router that is its gateway."""
        known = ", ".join(self.spec.segments)
        gateways: dict[str, str] = {}
        for name, router in self.spec.routers.items():
            base = ("routers", name)
            if router.lan is not None and router.lans:
                raise self.fail(
                    (*base, "lans"),
                    "give either lan or lans, not both",
                    "list every LAN under lans",
                )
            if router.lan is None and not router.lans:
                raise self.fail(
                    base, "a router needs a LAN", "add lan: {segment: ...} under the router"
                )
            used: dict[str, Path] = {}
            for sub, iface in self._interfaces(router):
                path = (*base, *sub, "segment")
                if iface.segment not in self.spec.segments:
                    raise self.fail(
                        path,
                        f"unknown segment '{iface.segment}'",
                        f"use one of the segments: {known}",
                    )
                if iface.segment in used:
                    raise self.fail(
                        path,
                        f"router '{name}' already has an interface on '{iface.segment}'",
                        "attach each interface of a router to a different segment",
                    )
                used[iface.segment] = path
                if sub[0] == "wan":
                    continue
                if iface.segment in gateways:
                    raise self.fail(
                        path,
                        f"segment '{iface.segment}' is already the LAN of router "
                        f"'{gateways[iface.segment]}'",
                        "a LAN has one gateway router; give this router its own LAN segment",
                    )
                gateways[iface.segment] = name
        for name, host in self.spec.hosts.items():
            if host.segment not in self.spec.segments:
                raise self.fail(
                    ("hosts", name, "segment"),
                    f"unknown segment '{host.segment}'",
                    f"use one of the segments: {known}",
                )
        return gateways

    def _check_router_chains(self, gateways: dict[str, str]) -> None:
        """A router's WAN may sit on another router's LAN, but never in a loop."""
        for name in self.spec.routers:
            chain = [name]
            current = name
            while (upstream := gateways.get(self.spec.routers[current].wan.segment)) is not None:
                if upstream in chain:
                    raise self.fail(
                        ("routers", name, "wan", "segment"),
                        f"routers form a loop: {' -> '.join([*chain, upstream])}",
                        "a router's WAN must lead towards the internet, not back behind itself",
                    )
                chain.append(upstream)
                current = upstream

    # -- addresses -----------------------------------------------------------

    def _explicit_addresses(
        self, segments: dict[str, IPv4Network]
    ) -> list[tuple[Path, str, list[IPv4Address], int]]:
        """Every interface's (owner key, segment, given addresses, how many in all)."""
        requests = []
        for name, router in self.spec.routers.items():
            lan_first = sorted(self._interfaces(router), key=lambda item: item[0][0] == "wan")
            for sub, iface in lan_first:
                base = ("routers", name, *sub)
                given, count = self._count(base, iface.address, iface.addresses, 1)
                requests.append((base, iface.segment, given, count))
        for name, host in self.spec.hosts.items():
            base = ("hosts", name)
            minimum = 2 if host.role is Role.STUN_SERVER else 1
            given, count = self._count(base, host.address, host.addresses, minimum)
            if count < minimum:
                raise self.fail(
                    (*base, "addresses"),
                    f"a {host.role} needs {minimum} addresses (RFC 5780 answers from a second "
                    "address)",
                    f"write addresses: {minimum}, or leave it out",
                )
            requests.append((base, host.segment, given, count))
        for base, segment, given, _ in requests:
            subnet = segments[segment]
            for index, address in enumerate(given):
                path = self._address_path(base, index)
                if address not in subnet:
                    raise self.fail(
                        path,
                        f"address {address} is outside segment '{segment}' ({subnet})",
                        f"pick an address in {subnet}, or leave it out to have one planned",
                    )
                if address in (subnet.network_address, subnet.broadcast_address):
                    raise self.fail(
                        path,
                        f"address {address} is the network or broadcast address of {subnet}",
                        f"pick a host address in {subnet}",
                    )
                if address in self.taken:
                    raise self.fail(
                        path,
                        f"address {address} is already used by {self.taken[address]}",
                        "give every interface its own address, or leave it out to have one planned",
                    )
                self.taken[address] = dotted(path)
        return requests

    def _count(
        self, base: Path, address: IPv4Address | None, addresses: object, default: int
    ) -> tuple[list[IPv4Address], int]:
        if address is not None and addresses is not None:
            raise self.fail(
                (*base, "addresses"),
                "give either address or addresses, not both",
                "list every address under addresses",
            )
        if address is not None:
            return [address], 1
        if isinstance(addresses, list):
            if not addresses:
                raise self.fail((*base, "addresses"), "addresses is empty", "list an address")
            return list(addresses), len(addresses)
        if isinstance(addresses, int):
            if not 1 <= addresses <= MAX_ADDRESSES:
                raise self.fail(
                    (*base, "addresses"),
                    f"addresses: {addresses} is out of range",
                    f"ask for 1 to {MAX_ADDRESSES} addresses",
                )
            return [], addresses
        return [], default

    @staticmethod
    def _plan_rank(base: Path) -> int:
        """0 for a router LAN, 1 for a router WAN, 2 for a host."""
        if base[0] == "hosts":
            return 2
        return 1 if base[2] == "wan" else 0

    @staticmethod
    def _address_path(base: Path, index: int) -> Path:
        return (*base, "addresses", index) if index else (*base, "address")

    def _plan(
        self,
        segments: dict[str, IPv4Network],
        requests: list[tuple[Path, str, list[IPv4Address], int]],
    ) -> dict[Path, tuple[IPv4Interface, ...]]:
        # Gateways (lan, lans[i]) first, then WANs, then hosts: sorted() is stable.
        ranked = sorted(requests, key=lambda r: self._plan_rank(r[0]))
        free = {
            name: (IPv4Address(int(a)) for a in netaddr.IPNetwork(str(subnet)).iter_hosts())
            for name, subnet in segments.items()
        }
        planned: dict[Path, tuple[IPv4Interface, ...]] = {}
        for base, segment, given, count in ranked:
            addresses = list(given)
            while len(addresses) < count:
                candidate = next(free[segment], None)
                if candidate is None:
                    raise self.fail(
                        base,
                        f"segment '{segment}' ({segments[segment]}) has no free address left",
                        "use a larger subnet for that segment",
                    )
                if candidate not in self.taken:
                    self.taken[candidate] = dotted(base)
                    addresses.append(candidate)
            prefix = segments[segment].prefixlen
            planned[base] = tuple(IPv4Interface(f"{a}/{prefix}") for a in addresses)
        return planned

    # -- routers -------------------------------------------------------------

    def _router(
        self, name: str, spec: RouterSpec, planned: dict[Path, tuple[IPv4Interface, ...]]
    ) -> Router:
        base = ("routers", name)
        interfaces = tuple(
            Interface(
                iface.segment,
                planned[(*base, *sub)],
                self._impairment((*base, *sub, "impair"), iface.impair),
            )
            for sub, iface in self._interfaces(spec)
        )
        stun = None
        if spec.stun is True:
            stun = Stun()
        elif spec.stun:
            stun = Stun(
                self._port((*base, "stun", "port"), spec.stun.port),
                self._port((*base, "stun", "alt_port"), spec.stun.alt_port),
            )
            if stun.port == stun.alt_port:
                raise self.fail(
                    (*base, "stun", "alt_port"),
                    "alt_port must differ from port",
                    "RFC 5780 answers change requests from a second port; pick another one",
                )
        lan_segments = {iface.segment for iface in interfaces[1:]}
        forwards = tuple(
            self._forward((*base, "forwards", index), name, lan_segments, forward, planned)
            for index, forward in enumerate(spec.forwards)
        )
        self._check_forward_overlap(base, forwards)
        behaviour = self._behaviour((*base, "nat"), spec.nat)
        return Router(
            name=name,
            interfaces=interfaces,
            behaviour=behaviour,
            forwards=forwards,
            stun=stun,
            port_control=self._port_control((*base, "port_control"), spec),
            cgnat=spec.cgnat and cgnat_settings(name, self.spec, behaviour, self.fail),
            sip_alg=self._sip_alg((*base, "sip_alg"), spec.sip_alg, behaviour),
        )

    def _port_control(self, path: Path, spec: RouterSpec) -> tuple[str, ...]:
        """The port control protocols, once each; only a router that translates has them."""
        protocols = tuple(dict.fromkeys(spec.port_control))
        if len(protocols) != len(spec.port_control):
            raise self.fail(path, "a protocol is listed twice", "list pcp, natpmp, upnp once each")
        if protocols and spec.cgnat is not None:
            raise self.fail(
                path,
                "port control on a carrier-grade NAT is not built (its ports come in blocks)",
                "serve port control on the home routers behind it",
            )
        if protocols and not self._behaviour((*path[:-1], "nat"), spec.nat).translate:
            raise self.fail(
                path,
                "a router that does not translate (nat: none) has no mappings to control",
                "remove port_control, or give the router a NAT",
            )
        return protocols

    def _impairment(self, path: Path, impair: dict[str, Any] | None) -> LinkImpairment | None:
        if impair is None:
            return None
        try:
            return link_impairment(impair)
        except ValueError as error:
            raise self.fail(
                path,
                str(error),
                "write impair: {loss: 2%, delay: 80ms, jitter: 10ms, rate: 1mbit, seed: 7}, "
                "or in: / out: mappings for one direction (docs/topology.md)",
            ) from None

    def _sip_alg(self, path: Path, value: bool | str, behaviour: Behaviour) -> str:
        mode = "off" if value is False else value  # YAML reads a bare `off` as false
        if mode not in SIP_ALG_MODES:
            raise self.fail(
                path,
                f"sip_alg {'true' if value is True else repr(value)} is not a mode",
                f"use one of {', '.join(SIP_ALG_MODES)}",
            )
        if mode != "off" and not behaviour.translate:
            raise self.fail(
                path,
                "a SIP ALG rewrites addresses to the router's public mapping, and this router "
                "does not translate (nat: none)",
                "remove sip_alg, or give the router a NAT behaviour",
            )
        return str(mode)

    def _behaviour(self, path: Path, nat: NatForm) -> Behaviour:
        try:
            return nat_behaviour(nat)
        except NatFormError as error:
            raise self.fail((*path, *error.at), error.problem, error.fix) from None

    def _port(self, path: Path, port: int) -> int:
        if not 1 <= port <= 65535:
            raise self.fail(path, f"port {port} is out of range", "ports run from 1 to 65535")
        return port

    def _ports(
        self, path: Path, text: int | str, form: str = "a port (8000) or a range (8000-8010)"
    ) -> tuple[int, int]:
        """'8000' or 8000 or '8000-8010' to an inclusive range."""
        parts = str(text).split("-")
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            raise self.fail(path, f"bad port '{text}'", f"write {form}")
        low, high = (self._port(path, int(p)) for p in (parts[0], parts[-1]))
        if low > high:
            raise self.fail(path, f"port range {text} runs backwards", f"write {high}-{low}")
        return low, high

    def _forward(
        self,
        path: Path,
        router: str,
        lan_segments: set[str],
        spec: ForwardSpec,
        planned: dict[Path, tuple[IPv4Interface, ...]],
    ) -> Forward:
        external = self._ports((*path, "port"), spec.port)
        host_name, colon, port_text = spec.to.partition(":")
        host = self.spec.hosts.get(host_name)
        if host is None:
            behind = [n for n, h in self.spec.hosts.items() if h.segment in lan_segments]
            raise self.fail(
                (*path, "to"),
                f"forward to unknown host '{host_name}'",
                f"use a host on {router}'s LAN: {', '.join(behind) or '(none)'}",
            )
        if host.segment not in lan_segments:
            raise self.fail(
                (*path, "to"),
                f"host '{host_name}' is not on a LAN of router '{router}'",
                "a port forward points at a host behind this router",
            )
        form = f"{host_name}, {host_name}:80 or {host_name}:8000-8010"
        internal = self._ports((*path, "to"), port_text, form) if colon else external
        span = external[1] - external[0]
        if colon and "-" not in port_text:  # one port: the first of a range as long as external
            internal = (internal[0], internal[0] + span)
            if internal[1] > 65535:
                raise self.fail(
                    (*path, "to"),
                    f"{spec.to} with the {span + 1} ports of {spec.port} runs past port 65535",
                    f"start the range at {65535 - span} or lower",
                )
        if internal[1] - internal[0] != span:
            raise self.fail(
                (*path, "to"),
                f"{spec.to} does not match the size of port range {spec.port}",
                "map a range to a range of the same size, or give only the first port",
            )
        address = planned[("hosts", host_name)][0].ip
        return Forward(spec.proto, external, host_name, address, internal)

    def _check_forward_overlap(self, base: Path, forwards: tuple[Forward, ...]) -> None:
        for index, forward in enumerate(forwards):
            for other in forwards[:index]:
                low, high = forward.external_ports
                if other.proto == forward.proto and not (
                    high < other.external_ports[0] or low > other.external_ports[1]
                ):
                    raise self.fail(
                        (*base, "forwards", index, "port"),
                        f"{forward.proto} port {_span(low, high)} is already forwarded "
                        f"to {other.host}",
                        "forward each external port once",
                    )


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"
