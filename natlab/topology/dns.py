"""A topology's `dns:` section checked against the rest of it: names, addresses, segments.

Record names are relative to the zone (`pbx`, `sip.office`, `@` for the zone
itself) or written in full (`pbx.example.test`). A value is an address, a
node's name (a host's addresses; a router's WAN addresses: what the outside
sees of it), or a list of them: an A record may have several addresses.
Every address must lie in one of the lab's segments, so a name can never
send a lab program towards a real network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import AddressValueError, IPv4Address

from natlab.errors import NatlabError
from natlab.topology.model import Dns, Role, Router, Topology
from natlab.topology.schema import DnsSpec, RecordValue
from natlab.topology.yaml_source import Path

Fail = Callable[[Path, str, str | None], NatlabError]

LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
NAME_MAX = 253
APEX = "@"
MAX_ADDRESSES = 16  # per name: what fits in one plain DNS answer with room to spare


def dns_name_problem(name: str) -> str | None:
    """Why `name` (lower case, no trailing dot) is not a host name (RFC 1123), or None."""
    if not name:
        return "it is empty"
    if len(name) > NAME_MAX:
        return f"it is longer than {NAME_MAX} characters"
    for label in name.split("."):
        if not LABEL.match(label):
            return (
                f"its label '{label}' is not 1 to 63 letters, digits or '-' "
                "(not starting or ending with '-')"
            )
    return None


def qualify(name: str, zone: str) -> str:
    """The full name a record's key stands for; ValueError if it lies outside the zone."""
    name = name.strip().lower()
    if name == APEX:
        return zone
    if name.endswith("."):
        name = name[:-1]
        if name != zone and not name.endswith("." + zone):
            raise ValueError(f"'{name}.' lies outside the zone '{zone}'")
        return name
    if name == zone or name.endswith("." + zone):
        return name
    return f"{name}.{zone}"


def seen_from(topology: Topology, segment: str) -> dict[str, tuple[IPv4Address, ...]]:
    """Every name as a node on segment gets it answered: its LAN's overrides, then those of
    the LANs its resolver forwards through (a router behind a router), then the public ones.
    """
    dns = topology.dns
    if dns is None:
        return {}
    layers = []
    current: str | None = segment
    while current is not None:
        layers.append(dns.overrides.get(current, {}))
        gateway = topology.segments[current].gateway
        current = None if gateway is None else topology.routers[gateway].wan.segment
    answers = dict(dns.records)
    for layer in reversed(layers):
        answers.update(layer)
    return answers


def resolve_dns(spec: DnsSpec | None, topology: Topology, fail: Fail) -> Dns | None:
    """The topology's Dns, or None when it has no `dns:` section (and no dns-server host)."""
    servers = [h for h in topology.hosts.values() if h.role is Role.DNS_SERVER]
    if spec is None:
        if servers:
            raise fail(
                ("hosts", servers[0].name, "role"),
                "a dns-server host serves the names of a `dns:` section, and there is none",
                "add dns: {zone: example.test, records: {...}}, or give the host another role",
            )
        return None
    zone = spec.zone.strip().lower().removesuffix(".")
    problem = dns_name_problem(zone)
    if problem is not None:
        raise fail(("dns", "zone"), f"zone '{spec.zone}' is not a DNS name: {problem}", _NAME_FIX)
    if len(servers) != 1:
        raise fail(
            ("dns",),
            "a `dns:` section needs exactly one host with role dns-server, "
            f"found {len(servers)}"
            + (f" ({', '.join(h.name for h in servers)})" if servers else ""),
            "add one, e.g. hosts: {dns1: {segment: internet, role: dns-server}}",
        )
    server = servers[0]
    if topology.segments[server.interfaces[0].segment].gateway is not None:
        raise fail(
            ("hosts", server.name, "segment"),
            f"the dns-server host '{server.name}' sits on a LAN; the public DNS server "
            "belongs on the internet, where every router reaches it",
            "put it on a segment that is no router's LAN",
        )
    entries = _Entries(zone, topology, fail)
    records = entries.table(("dns", "records"), spec.records)
    overrides = {}
    for segment, names in spec.overrides.items():
        path: Path = ("dns", "overrides", segment)
        if segment not in topology.segments:
            raise fail(
                path,
                f"unknown segment '{segment}'",
                f"use one of the segments: {', '.join(topology.segments)}",
            )
        if topology.segments[segment].gateway is None:
            raise fail(
                path,
                f"segment '{segment}' is no router's LAN: it sees the public names",
                "put its names under dns.records, or name a LAN segment here",
            )
        overrides[segment] = entries.table(path, names)
    known = set(records).union(*overrides.values())
    pbx = (
        None
        if spec.phones.pbx is None
        else entries.used(("dns", "phones", "pbx"), spec.phones.pbx, known)
    )
    stun_names = [spec.phones.stun] if isinstance(spec.phones.stun, str) else spec.phones.stun
    stun = tuple(
        entries.used(("dns", "phones", "stun", index), name, known)
        for index, name in enumerate(stun_names)
    )
    return Dns(zone, server.name, records, overrides, pbx, stun)


_NAME_FIX = "use letters, digits and '-' in dot-separated labels, e.g. pbx.example.test"


class _Entries:
    """Reads names and values of one zone, failing at the field that is wrong."""

    def __init__(self, zone: str, topology: Topology, fail: Fail) -> None:
        self.zone = zone
        self.topology = topology
        self.fail = fail

    def name(self, path: Path, written: str) -> str:
        try:
            name = qualify(written, self.zone)
        except ValueError as error:
            raise self.fail(
                path,
                f"name {error}",
                f"write it relative to the zone ('pbx') or ending in '.{self.zone}'",
            ) from None
        problem = dns_name_problem(name)
        if problem is not None:
            raise self.fail(path, f"'{written}' is not a DNS name: {problem}", _NAME_FIX)
        return name

    def table(
        self, path: Path, given: dict[str, RecordValue]
    ) -> dict[str, tuple[IPv4Address, ...]]:
        found: dict[str, tuple[IPv4Address, ...]] = {}
        for written, value in given.items():
            where = (*path, written)
            name = self.name(where, written)
            if name in found:
                raise self.fail(where, f"'{name}' is given twice", "list its addresses once")
            found[name] = self.addresses(where, value)
        return found

    def addresses(self, path: Path, value: RecordValue) -> tuple[IPv4Address, ...]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise self.fail(path, "a name needs at least one address", "give an address or a node")
        found: dict[IPv4Address, None] = {}
        for index, item in enumerate(items):
            where = path if isinstance(value, str) else (*path, index)
            for address in self.value(where, item.strip()):
                found[address] = None
        if len(found) > MAX_ADDRESSES:
            raise self.fail(path, f"more than {MAX_ADDRESSES} addresses", "give fewer addresses")
        return tuple(found)

    def value(self, path: Path, item: str) -> tuple[IPv4Address, ...]:
        node = self.topology.nodes.get(item)
        if node is not None:
            uplink = node.wan if isinstance(node, Router) else node.interfaces[0]
            return tuple(a.ip for a in uplink.addresses)
        try:
            address = IPv4Address(item)
        except AddressValueError:
            raise self.fail(
                path,
                f"'{item}' is neither an IPv4 address nor a node of this topology",
                f"give an address or one of the nodes: {', '.join(self.topology.nodes)}",
            ) from None
        if not any(address in s.subnet for s in self.topology.segments.values()):
            raise self.fail(
                path,
                f"address {address} lies outside every segment of this lab",
                "point names at addresses inside the lab's segments: "
                + ", ".join(f"{s.name} {s.subnet}" for s in self.topology.segments.values()),
            )
        return (address,)

    def used(self, path: Path, written: str, known: set[str]) -> str:
        name = self.name(path, written)
        if name not in known:
            raise self.fail(
                path,
                f"no record for '{name}'",
                "add it under dns.records (or a LAN's dns.overrides)",
            )
        return name
