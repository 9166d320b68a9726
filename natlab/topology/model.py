"""A topology after validation: every name resolved, every address planned.

These frozen objects are what the lab builds and what scenarios reason about;
nothing downstream needs to look at the YAML again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from natlab.core.behaviour import Behaviour
from natlab.core.cgnat import CgnatSettings
from natlab.core.impair import LinkImpairment
from natlab.errors import NatlabError

SIP_AGENTS = ("baresip",)  # `agent:` of a phone: real softphones natlab configures and starts
SIP_AGENT_TRANSPORTS = {"baresip": ("udp", "tcp")}  # no TLS: natlab gives it no CA to trust
SIP_SERVERS = ("kamailio",)  # `server:` of a PBX: real SIP servers natlab configures and starts


class Role(StrEnum):
    """What runs on a host; the lab starts the matching endpoint later."""

    PLAIN = "plain"
    PHONE = "phone"
    PBX = "pbx"
    STUN_SERVER = "stun-server"
    TURN_SERVER = "turn-server"
    DNS_SERVER = "dns-server"


@dataclass(frozen=True)
class Segment:
    """One L2 segment (a bridge), with the router that is its gateway, if any."""

    name: str
    subnet: IPv4Network
    gateway: str | None = None  # router whose LAN this segment is


@dataclass(frozen=True)
class Interface:
    """A node's attachment to a segment; the interface is named after the segment."""

    segment: str
    addresses: tuple[IPv4Interface, ...]
    impair: LinkImpairment | None = None  # a router's interface only: its link impairment

    @property
    def name(self) -> str:
        return self.segment

    @property
    def address(self) -> IPv4Address:
        return self.addresses[0].ip


@dataclass(frozen=True)
class Route:
    """A route in a node: destination None is the default route."""

    destination: IPv4Network | None
    via: IPv4Address

    def __str__(self) -> str:
        return f"{self.destination or 'default'} via {self.via}"


@dataclass(frozen=True)
class Forward:
    """A static inbound map: external ports to a host's internal ports."""

    proto: str  # "tcp" | "udp"
    external_ports: tuple[int, int]  # inclusive range; one port is (p, p)
    host: str
    address: IPv4Address
    internal_ports: tuple[int, int]


@dataclass(frozen=True)
class Stun:
    """The router's built-in STUN responder on its WAN address."""

    port: int = 3478
    alt_port: int = 3479


@dataclass(frozen=True)
class SipAccount:
    """A phone's SIP account: the user it registers as, its digest password, how it keeps alive."""

    user: str
    password: str
    keepalive: str = "auto"  # "crlf" | "options"; auto: CRLF on TCP and TLS, OPTIONS on UDP
    transport: str | None = None  # udp | tcp | tls, how it registers; None: its phone's default


@dataclass(frozen=True)
class Node:
    name: str
    interfaces: tuple[Interface, ...]

    def interface_on(self, segment: str) -> Interface | None:
        return next((i for i in self.interfaces if i.segment == segment), None)


@dataclass(frozen=True)
class Host(Node):
    role: Role = Role.PLAIN
    run: tuple[str, ...] = ()  # the program natlab starts and supervises in it (lab/programs.py)
    agent: str | None = None  # a phone's softphone (SIP_AGENTS); None: natlab's own phone
    server: str | None = None  # a PBX's SIP server (SIP_SERVERS); None: natlab's own PBX

    @property
    def sip_software(self) -> str | None:
        """The real SIP program natlab runs in this host instead of its own endpoint, if any."""
        return self.agent or self.server

    sip: SipAccount | None = None  # a phone's credentials; None: its name, the default password
    nat_aware: bool = True  # a PBX: route to the source it saw (False: trust Contact and Via)
    relay: str | frozenset[str] = "none"  # natlab's PBX: whose media it relays (pbx.RELAY_POLICIES)


@dataclass(frozen=True)
class Router(Node):
    """interfaces[0] is the WAN; the rest are LANs."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    forwards: tuple[Forward, ...] = ()
    stun: Stun | None = None
    port_control: tuple[str, ...] = ()  # "pcp", "natpmp", "upnp": served on the LAN side
    cgnat: CgnatSettings | None = None  # a carrier-grade NAT: port blocks per subscriber
    sip_alg: str = "off"  # "off", "rewrite" or "broken" (natlab.router.sip_alg)

    @property
    def wan(self) -> Interface:
        return self.interfaces[0]

    @property
    def lans(self) -> tuple[Interface, ...]:
        return self.interfaces[1:]

    def interface_named(self, name: str) -> Interface | None:
        """`wan`, `lan` (a router with one LAN), or an interface's own name (its segment)."""
        if name == "wan":
            return self.wan
        if name == "lan" and len(self.lans) == 1:
            return self.lans[0]
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True)
class Dns:
    """The lab's names: one public view, and per LAN segment the names it sees otherwise.

    Names are fully qualified, lower case, without the trailing dot.
    """

    zone: str
    server: str  # the dns-server host that serves the public view
    records: dict[str, tuple[IPv4Address, ...]]
    overrides: dict[str, dict[str, tuple[IPv4Address, ...]]]  # segment -> name -> addresses
    pbx: str | None = None  # the name phones find the PBX at
    stun: tuple[str, ...] = ()  # the names of the phones' STUN servers


@dataclass(frozen=True)
class Topology:
    name: str
    source: str  # the file it came from, for messages
    segments: dict[str, Segment]
    routers: dict[str, Router]
    hosts: dict[str, Host]
    text: str = field(default="", repr=False, compare=False)  # the file's YAML, kept with a lab
    dns: Dns | None = None

    def with_behaviours(self, behaviours: dict[str, Behaviour]) -> Topology:
        """This topology with these routers' NAT behaviour replaced (a scenario's `nat:`).

        Nothing else depends on a router's behaviour, so nothing else is
        checked again; `text` stays the file's (a lab keeps its routers'
        behaviours beside it).
        """
        unknown = [name for name in behaviours if name not in self.routers]
        if unknown:
            raise NatlabError(
                f"no router named '{unknown[0]}' in topology '{self.name}'",
                fix=f"routers: {', '.join(self.routers)}",
            )
        routers = {
            name: replace(router, behaviour=behaviours.get(name, router.behaviour))
            for name, router in self.routers.items()
        }
        return replace(self, routers=routers)

    def with_impairments(self, profile: dict[str, LinkImpairment]) -> Topology:
        """Every router's interface that `profile` names (wan, lan, or by name) impaired so
        (`natlab matrix --impair`); a router without such an interface is left as it is,
        but each name must fit some router."""
        for key in profile:
            if not any(router.interface_named(key) for router in self.routers.values()):
                raise NatlabError(
                    f"no router of topology '{self.name}' has an interface '{key}'",
                    field="--impair",
                    fix="name wan, lan, or an interface (a segment a router is on)",
                )
        routers = {}
        for name, router in self.routers.items():
            named = {
                iface.name: impairment
                for key, impairment in profile.items()
                if (iface := router.interface_named(key)) is not None
            }
            interfaces = tuple(
                replace(i, impair=named[i.name]) if i.name in named else i
                for i in router.interfaces
            )
            routers[name] = replace(router, interfaces=interfaces)
        return replace(self, routers=routers)

    @property
    def nodes(self) -> dict[str, Node]:
        return {**self.routers, **self.hosts}

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NatlabError(
                f"no node named '{name}' in topology '{self.name}'",
                fix=f"use one of: {', '.join(self.nodes)}",
            ) from None
