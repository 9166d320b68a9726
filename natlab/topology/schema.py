"""The shape of a topology file, as pydantic models of exactly what users write.

Only structure and value types are checked here; cross-references (unknown
segment, address outside its subnet...) are checked in `resolve.py`, where
messages can name both ends.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from natlab.topology.model import Role

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class SegmentSpec(_Spec):
    subnet: IPv4Network


class InterfaceSpec(_Spec):
    segment: str
    address: IPv4Address | None = None
    addresses: int | list[IPv4Address] | None = None
    impair: dict[str, Any] | None = None  # a router's link impairment (core/impair.py)


class ForwardSpec(_Spec):
    proto: Literal["tcp", "udp"]
    port: StrictInt | str  # strict: YAML's `true` is not port 1
    to: str


class StunSpec(_Spec):
    port: StrictInt = 3478
    alt_port: StrictInt = 3479


class CgnatSpec(_Spec):
    """A carrier-grade NAT's port blocks; `pool` is its public addresses (the WAN's)."""

    pool: StrictInt | list[IPv4Address] | None = None
    port_block: StrictInt = 512
    blocks_per_subscriber: StrictInt = 4
    port_quota: StrictInt | None = None


class RouterSpec(_Spec):
    wan: InterfaceSpec
    lan: InterfaceSpec | None = None
    lans: list[InterfaceSpec] | None = None
    nat: str | dict[str, Any] = "port-restricted"
    stun: bool | StunSpec = False
    forwards: list[ForwardSpec] = Field(default_factory=list)
    port_control: list[Literal["pcp", "natpmp", "upnp"]] = Field(default_factory=list)
    cgnat: CgnatSpec | None = None
    sip_alg: StrictBool | str = "off"  # YAML reads a bare `off` as false; resolve.py checks it


class SipSpec(_Spec):
    user: str | None = None  # default: the host's name
    password: str | None = None  # default: natlab's default password
    keepalive: Literal["crlf", "options"] | None = None  # default: CRLF on TCP/TLS, OPTIONS on UDP
    # in sip_transport.TRANSPORTS' order: typing caches equal Literals as one, order and all
    transport: Literal["tcp", "tls", "udp"] | None = None  # default: TCP (natlab's), UDP (baresip)


class HostSpec(_Spec):
    segment: str
    address: IPv4Address | None = None
    addresses: int | list[IPv4Address] | None = None
    role: Role = Role.PLAIN
    run: str | list[str] | None = None  # a program natlab starts in the host at `up`
    agent: str | None = None  # a phone's real SIP softphone (model.SIP_AGENTS) instead of natlab's
    server: str | None = None  # a PBX's real SIP server (model.SIP_SERVERS) instead of natlab's
    sip: SipSpec | None = None  # a phone's SIP credentials
    nat_aware: bool | None = None  # a PBX's registrar: NAT-aware (default) or naive
    relay: str | list[str] | None = None  # a PBX's media relay policy (endpoints.pbx.parse_policy)


# A DNS record's value: an address, a node's name (its addresses), or a list of them.
RecordValue = str | list[str]


class DnsPhonesSpec(_Spec):
    pbx: str | None = None  # the name phones register with the PBX at
    stun: str | list[str] = Field(default_factory=list)  # the names of their STUN servers


class DnsSpec(_Spec):
    zone: str
    records: dict[str, RecordValue] = Field(default_factory=dict)
    overrides: dict[str, dict[str, RecordValue]] = Field(default_factory=dict)  # segment -> ...
    phones: DnsPhonesSpec = Field(default_factory=DnsPhonesSpec)


class TopologySpec(_Spec):
    name: str  # also its lab's name: checked by lab_name.check_lab_name
    segments: dict[str, SegmentSpec]
    routers: dict[str, RouterSpec] = Field(default_factory=dict)
    hosts: dict[str, HostSpec] = Field(default_factory=dict)
    dns: DnsSpec | None = None
