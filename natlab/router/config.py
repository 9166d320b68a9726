"""What one router daemon needs to know, computed by the lab from the topology.

The daemon gets this as a JSON file instead of the topology, so it starts
without parsing YAML, never has to work out routes itself, and imports
nothing of the topology's (natlab.router.nat writes the file).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from natlab.core.behaviour import Behaviour
from natlab.core.engine import NatConfig, StaticMap
from natlab.core.packets import Proto


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
            behaviour=Behaviour(**self.behaviour),
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
            router_addresses=tuple(
                str(IPv4Interface(a).ip) for port in self.ports[1:] for a in port.addresses
            ),
            wan_broadcasts=tuple(
                str(network.broadcast_address)
                for network in (IPv4Interface(a).network for a in self.wan.addresses)
                if network.prefixlen <= 30  # a /31 or /32 has no broadcast address
            ),
        )
