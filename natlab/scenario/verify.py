"""`natlab up --verify` / `natlab verify`: does every NAT router do what its topology says?

Each router is probed (natlab.scenario.probe) from the first host on its
LAN against the topology's public STUN server, one with two addresses as
RFC 5780 needs, and what the probe saw is held against the router's
declared behaviour:

- a translating router: its mapping and filtering; its hairpinning too,
  where a probe can see it: with endpoint-independent mapping or
  filtering, or with hairpinning `unfiltered` (behind dependent mapping
  *and* filtering a filtered hairpinned packet is dropped whatever the
  router does, see discovery);
- a router that does not translate (`nat: none`, or a lab run with the
  kernel dataplane): that the mapped address is the host's own.

A router with no host on its LAN, or whose WAN is not on the STUN
server's segment (a probe from behind it would see the NATs in front of it
too), is skipped with a note. Routers are probed one after the other.

A router whose NAT daemon died, or a STUN server that died, is a fault
(verdict.py), named as such before and after each probe: a probe that gets
no answer then says which process is gone, not that the server is silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from natlab.core.behaviour import Hairpin
from natlab.endpoints.stun_client import STUN_PORT
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.records import ProbeReport
from natlab.scenario.probe import discover
from natlab.scenario.verdict import fault_text
from natlab.topology.model import Host, Role, Router, Topology

ENDPOINT_INDEPENDENT = "endpoint-independent"


@dataclass(frozen=True)
class Check:
    """One axis of one router: what the topology declares against what a probe saw."""

    axis: str
    expected: str
    observed: str

    @property
    def ok(self) -> bool:
        return self.expected == self.observed


@dataclass(frozen=True)
class RouterCheck:
    """Everything verified (or why nothing could be) about one router."""

    router: str
    host: str | None  # the host the probe ran from; None when skipped
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = field(default=())
    fault: str | None = None  # a process the probe needs died: not verified

    @property
    def mismatches(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


def public_stun_server(topology: Topology) -> Host:
    """The first stun-server host with two addresses (RFC 5780 needs both)."""
    for host in topology.hosts.values():
        if host.role is Role.STUN_SERVER and len(host.interfaces[0].addresses) >= 2:
            return host
    raise NatlabError(
        f"topology '{topology.name}' has no STUN server with two addresses to verify against",
        field="hosts",
        fix="add e.g. 'stun1: {segment: internet, role: stun-server, addresses: 2}'",
    )


def expectations(
    translates: bool, router: Router, report: ProbeReport
) -> tuple[list[Check], list[str]]:
    """The checks of one router's probe report, and notes on what could not be checked."""
    translation = Check("translation", _on_off(translates), _on_off(report.mapped != report.local))
    if not translates:
        return [translation], []
    behaviour = router.behaviour
    checks = [
        translation,
        Check("mapping", behaviour.mapping.value, report.mapping or "unknown"),
        Check("filtering", behaviour.filtering.value, report.filtering or "unknown"),
    ]
    unfiltered = behaviour.hairpin is Hairpin.UNFILTERED
    if not unfiltered and ENDPOINT_INDEPENDENT not in (report.mapping, report.filtering):
        return checks, ["hairpinning is not observable behind dependent mapping and filtering"]
    hairpins = behaviour.hairpin is not Hairpin.OFF
    return [*checks, Check("hairpin", _on_off(hairpins), _on_off(report.hairpin))], []


def _on_off(value: bool | None) -> str:
    return {True: "on", False: "off", None: "unknown"}[value]


def verify(lab: Lab) -> list[RouterCheck]:
    """Probe every router of `lab` and compare; one RouterCheck per router, in topology order."""
    topology = lab.topology
    server = public_stun_server(topology)
    segment = server.interfaces[0].segment
    address = f"{server.interfaces[0].address}:{STUN_PORT}"
    results = []
    for router in topology.routers.values():
        lans = {lan.segment for lan in router.lans}
        host = next((h for h in topology.hosts.values() if h.interfaces[0].segment in lans), None)
        if host is None:
            results.append(RouterCheck(router.name, None, notes=("no host on its LAN to probe",)))
            continue
        if router.wan.segment != segment:
            note = f"its WAN is not on {segment}, where {server.name} is: not probed"
            results.append(RouterCheck(router.name, None, notes=(note,)))
            continue
        needed = {router.name, server.name}
        fault = _fault(lab, needed)
        if fault is None:
            try:
                report = discover(lab, host.name, address)
            except NatlabError:
                fault = _fault(lab, needed)
                if fault is None:  # everything runs: the server really does not answer
                    raise
        if fault is not None:
            results.append(RouterCheck(router.name, host.name, fault=fault))
            continue
        checks, notes = expectations(lab.dataplane.translates(router), router, report)
        results.append(RouterCheck(router.name, host.name, tuple(checks), tuple(notes)))
    return results


def _fault(lab: Lab, nodes: set[str]) -> str | None:
    """Which processes of these nodes (a router's daemon, the STUN server) died, if any."""
    return fault_text(death for death in lab.deaths() if death.node in nodes)
