"""What one router daemon needs to know, computed by the lab from the topology.

The lab (natlab.lab.routers) writes it as a JSON file and starts the daemon
with that file's path as its one argument, so the daemon starts without
parsing YAML or argv, never has to work out routes itself, and imports
nothing of the topology's. to_json and from_json are each other's inverse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from natlab.core.behaviour import Behaviour
from natlab.core.cgnat import CgnatSettings
from natlab.core.engine import NatConfig, StaticMap
from natlab.core.impair import LinkImpairment


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
    behaviour: Behaviour
    static_maps: tuple[StaticMap, ...]
    stun_ports: tuple[int, ...]  # the built-in responder's (port, alt_port); () when off
    port_control: tuple[str, ...] = ()  # "pcp", "natpmp", "upnp" served on the LANs
    impairments: dict[str, LinkImpairment] = field(default_factory=dict)  # by port name
    cgnat: CgnatSettings | None = None  # a carrier-grade NAT's port blocks
    sip_alg: str = "off"  # "off", "rewrite" or "broken" (natlab.router.sip_alg)

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "router": self.router,
            "ports": [{"name": p.name, "addresses": list(p.addresses)} for p in self.ports],
            "routes": [list(route) for route in self.routes],
            "internal_networks": list(self.internal_networks),
            "behaviour": self.behaviour.as_json(),
            "static_maps": [
                {
                    "proto": m.proto.name.lower(),
                    "external_ports": list(m.external_ports),
                    "internal_address": m.internal_address,
                    "internal_ports": list(m.internal_ports),
                }
                for m in self.static_maps
            ],
            "stun_ports": list(self.stun_ports),
            "port_control": list(self.port_control),
            "impairments": {name: link.to_json() for name, link in self.impairments.items()},
            "cgnat": None if self.cgnat is None else self.cgnat.as_json(),
            "sip_alg": self.sip_alg,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonConfig:
        return cls(
            lab=data["lab"],
            router=data["router"],
            ports=tuple(PortConfig(p["name"], tuple(p["addresses"])) for p in data["ports"]),
            routes=tuple((destination, via) for destination, via in data["routes"]),
            internal_networks=tuple(data["internal_networks"]),
            behaviour=Behaviour(**data["behaviour"]),
            static_maps=tuple(
                StaticMap(
                    proto=m["proto"],
                    external_ports=tuple(m["external_ports"]),
                    internal_address=m["internal_address"],
                    internal_ports=tuple(m["internal_ports"]),
                )
                for m in data["static_maps"]
            ),
            stun_ports=tuple(data["stun_ports"]),
            port_control=tuple(data.get("port_control", ())),
            impairments={
                name: LinkImpairment.from_json(link)
                for name, link in data.get("impairments", {}).items()
            },
            cgnat=CgnatSettings(**data["cgnat"]) if data.get("cgnat") else None,
            sip_alg=data.get("sip_alg", "off"),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: Path) -> DaemonConfig:
        return cls.from_json(json.loads(path.read_text()))

    @property
    def wan(self) -> PortConfig:
        return self.ports[0]

    def nat_config(self) -> NatConfig:
        return NatConfig(
            behaviour=self.behaviour,
            external_addresses=tuple(str(IPv4Interface(a).ip) for a in self.wan.addresses),
            internal_networks=self.internal_networks,
            static_maps=self.static_maps,
            local_udp_ports=self.stun_ports,
            cgnat=self.cgnat,
            router_addresses=tuple(
                str(IPv4Interface(a).ip) for port in self.ports[1:] for a in port.addresses
            ),
            wan_broadcasts=tuple(
                str(network.broadcast_address)
                for network in (IPv4Interface(a).network for a in self.wan.addresses)
                if network.prefixlen <= 30  # a /31 or /32 has no broadcast address
            ),
        )
