"""STUN clients natlab did not write, run inside lab nodes, against both responders (issue 4).

- aioice (PyPI; the ICE agent of aiortc) gathers a server-reflexive
  candidate: it must be the mapping the router's own table holds for
  aioice's socket, whether the lab's public server or the router's
  built-in responder answered.
- Debian's `stun-client` (`stun`, the classic RFC 3489 NAT-type client)
  and coturn's `turnutils_natdiscovery` (an RFC 5780 behaviour discovery
  client) must each agree with `natlab probe`, and with the topology, on
  all four presets. coturn's client names the axes; `stun` the classic
  types, which are matched to the presets below.

scripts/install.sh installs all three. One lab for the module: the four
presets side by side, each router with two WAN addresses so that its own
responder can answer change requests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from natlab.core.behaviour import Behaviour
from natlab.lab import Lab
from natlab.lab.build import planned_namespaces
from natlab.plumbing import namespaces
from natlab.scenario.probe import discover, stun_server
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

PRESETS = {"fc": "full-cone", "rc": "restricted", "prc": "port-restricted", "sym": "symmetric"}
TOPOLOGY = """
name: third-party
segments:
  internet: {subnet: 203.0.113.0/24}
  lan-fc: {subnet: 10.0.1.0/24}
  lan-rc: {subnet: 10.0.2.0/24}
  lan-prc: {subnet: 10.0.3.0/24}
  lan-sym: {subnet: 10.0.4.0/24}
routers:
  fc:
    wan: {segment: internet, addresses: 2}
    lan: {segment: lan-fc}
    nat: full-cone
    stun: true
  rc:
    wan: {segment: internet, addresses: 2}
    lan: {segment: lan-rc}
    nat: restricted
    stun: true
  prc:
    wan: {segment: internet, addresses: 2}
    lan: {segment: lan-prc}
    nat: port-restricted
    stun: true
  sym:
    wan: {segment: internet, addresses: 2}
    lan: {segment: lan-sym}
    nat: symmetric
    stun: true
hosts:
  h-fc: {segment: lan-fc}
  h-rc: {segment: lan-rc}
  h-prc: {segment: lan-prc}
  h-sym: {segment: lan-sym}
  stun1: {segment: internet, role: stun-server, addresses: 2}
"""

# aioice gathers candidates against one STUN server; we print the server-reflexive ones.
AIOICE = """
import asyncio, json, sys
import aioice

async def main():
    agent = aioice.Connection(
        ice_controlling=True, stun_server=(sys.argv[1], int(sys.argv[2])), use_ipv6=False
    )
    await agent.gather_candidates()
    print(json.dumps([
        {"mapped": f"{c.host}:{c.port}", "local": f"{c.related_address}:{c.related_port}"}
        for c in agent.local_candidates if c.type == "srflx"
    ]))
    await agent.close()

asyncio.run(main())
"""

# `stun`'s classic types (its "Primary:" line) for the four presets.
CLASSIC = {
    "Independent Mapping, Independent Filter": "full-cone",
    "Independent Mapping, Address Dependent Filter": "restricted",
    "Independent Mapping, Port Dependent Filter": "port-restricted",
    "Dependent Mapping": "symmetric",
}
COTURN_AXIS = {
    "Endpoint Independent": "endpoint-independent",
    "Address Dependent": "address-dependent",
    "Address and Port Dependent": "address-and-port-dependent",
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The four-preset lab, shared by the module; down afterwards, with nothing left."""
    for tool in ("stun", "turnutils_natdiscovery"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/install.sh"
    topology = parse_topology(TOPOLOGY, "test_third_party_stun.py")
    with Lab(topology, unique_lab_name(topology.name)) as running:
        yield running
    left = [n for n in planned_namespaces(topology, running.name) if namespaces.exists(n)]
    assert not left, f"lab {running.name} left namespaces behind: {left}"


def server_of(lab: Lab, router: str, responder: str) -> str:
    """ADDR:PORT of the lab's public STUN server, or of the router's own responder."""
    return stun_server(lab.topology, f"h-{router}", None if responder == "public" else router)


def run_in_hosts(lab: Lab, argv_of: Callable[[str], list[str]]) -> dict[str, str]:
    """Run argv_of(router) in every preset's host at once; each one's stdout + stderr."""
    running = {
        router: lab.popen(
            f"h-{router}",
            argv_of(router),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for router in PRESETS
    }
    return {router: process.communicate(timeout=60)[0] for router, process in running.items()}


@pytest.mark.parametrize("responder", ["public", "own"])
@pytest.mark.parametrize("router", PRESETS)
def test_aioice_gets_the_mapping_the_nat_made(lab: Lab, router: str, responder: str) -> None:
    server = server_of(lab, router, responder)
    out = lab.exec(
        f"h-{router}",
        [sys.executable, "-c", AIOICE, *server.split(":")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (candidate,) = json.loads(out.stdout)
    held = {
        mapping["external"]
        for mapping in [m.to_json() for m in lab.router(router).show()[1]]
        if mapping["proto"] == "udp"
        and mapping["internal"] == candidate["local"]
        and mapping["remote"] in (None, server)  # one mapping per remote under symmetric NAT
    }
    assert candidate["mapped"] in held, f"the router holds {held} for {candidate['local']}"


@pytest.mark.parametrize("responder", ["public", "own"])
def test_classic_stun_client_agrees_with_probe(lab: Lab, responder: str) -> None:
    outputs = run_in_hosts(lab, lambda router: ["stun", server_of(lab, router, responder)])
    for router, preset in PRESETS.items():
        primary = re.search(r"^Primary: (.*)$", outputs[router], re.MULTILINE)
        assert primary, outputs[router]
        named = [name for kind, name in CLASSIC.items() if primary.group(1).startswith(kind)]
        report = discover(lab, f"h-{router}", server_of(lab, router, responder)).to_json()
        assert named == [preset] == [report["name"]], primary.group(1)


@pytest.mark.parametrize("responder", ["public", "own"])
def test_rfc5780_client_agrees_with_probe(lab: Lab, responder: str) -> None:
    def argv(router: str) -> list[str]:
        address, port = server_of(lab, router, responder).split(":")
        return ["turnutils_natdiscovery", "-m", "-f", "-p", port, address]

    outputs = run_in_hosts(lab, argv)
    for router, preset in PRESETS.items():
        verdicts = re.findall(r"^NAT with (.+) (Mapping|Filtering)!$", outputs[router], re.M)
        found = {axis.lower(): COTURN_AXIS[kind] for kind, axis in verdicts}
        assert set(found) == {"mapping", "filtering"}, outputs[router]
        coturn = Behaviour(**found)
        report = discover(lab, f"h-{router}", server_of(lab, router, responder)).to_json()
        assert coturn.preset_name() == preset
        assert (report["mapping"], report["filtering"]) == (coturn.mapping, coturn.filtering)
