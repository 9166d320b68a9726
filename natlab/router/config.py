"""What one router daemon needs to know, computed by the lab from the topology.

The daemon gets this as a JSON file instead of the topology, so it starts
without parsing YAML and never has to work out routes itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from natlab.core.behaviour import Behaviour
from natlab.core.engine import NatConfig, StaticMap
from natlab.core.packets import Proto
from natlab.topology.model import Router, Topology
from natlab.topology.routing import plan_routes


@dataclass(frozen=True)
class PortConfig:
    """One interface of the router: the WAN first, then the LANs."""

    name: str
    addresses: tuple[str, ...]  # CIDR, e.g. 203.0.113.1/24


@dataclass(frozen=True)
class DaemonConfig:
    lab: str
    router: str
    ports: tuple[PortConfig, ...]
    routes: tuple[tuple[str, str], ...]  # (destination CIDR, next hop); 0.0.0.0/0 is default
    internal_networks: tuple[str, ...]
    behaviour: dict
    static_maps: tuple[dict, ...]
    stun_ports: tuple[int, ...]  # the built-in responder's (port, alt_port); () when off

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> DaemonConfig:
        data = json.loads(path.read_text())
        return cls(
            lab=data["lab"],
            router=data["router"],
            ports=tuple(PortConfig(p["name"], tuple(p["addresses"])) for p in data["ports"]),
            routes=tuple((d, v) for d, v in data["routes"]),
            internal_networks=tuple(data["internal_networks"]),
            behaviour=data["behaviour"],
            static_maps=tuple(data["static_maps"]),
            stun_ports=tuple(data["stun_ports"]),
        )

    @property
    def wan(self) -> PortConfig:
        return self.ports[0]

    def nat_config(self) -> NatConfig:
        return NatConfig(
            behaviour=Behaviour.model_validate(self.behaviour),
            external_addresses=tuple(str(IPv4Interface(a).ip) for a in self.wan.addresses),
            internal_networks=self.internal_networks,
            static_maps=tuple(
                StaticMap(
                    proto=Proto[m["proto"].upper()],
                    external_ports=tuple(m["external_ports"]),
                    internal_address=m["internal_address"],
                    internal_ports=tuple(m["internal_ports"]),
                )
                for m in self.static_maps
            ),
            local_udp_ports=self.stun_ports,
        )


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
        behaviour=router.behaviour.model_dump(mode="json"),
        static_maps=tuple(
            {
                "proto": forward.proto,
                "external_ports": list(forward.external_ports),
                "internal_address": str(forward.address),
                "internal_ports": list(forward.internal_ports),
            }
            for forward in router.forwards
        ),
        stun_ports=(router.stun.port, router.stun.alt_port) if router.stun else (),
    )
