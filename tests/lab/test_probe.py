"""`natlab probe` behind each kind of NAT, against both kinds of STUN responder (issue 4).

One lab for the whole module: six routers side by side on the internet,
each with one host behind it and two WAN addresses, so that its built-in
responder can answer RFC 5780 change requests: the four presets and two
mixed-axis NATs that no preset names. (The brief's other example,
endpoint-independent mapping with address-dependent filtering, is the
`restricted` preset, already in.) The expected axes are spelled out
here, not read back from the topology natlab parsed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.build import planned_namespaces
from natlab.plumbing import namespaces
from natlab.scenario.probe import discover
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

EI, AD, APD = "endpoint-independent", "address-dependent", "address-and-port-dependent"
# router: (its `nat:` in YAML, expected mapping, filtering, classic name)
ROUTERS = {
    "fc": ("full-cone", EI, EI, "full-cone"),
    "rc": ("restricted", EI, AD, "restricted"),
    "prc": ("port-restricted", EI, APD, "port-restricted"),
    "sym": ("symmetric", APD, APD, "symmetric"),
    "adm": (f"{{mapping: {AD}, filtering: {EI}}}", AD, EI, None),
    "apdm": (f"{{mapping: {APD}, filtering: {AD}, udp_timeout: 30}}", APD, AD, None),
}
TOPOLOGY = "\n".join(
    [
        "name: probe-matrix",
        "segments:",
        "  internet: {subnet: 203.0.113.0/24}",
        *(f"  lan-{r}: {{subnet: 10.0.{i}.0/24}}" for i, r in enumerate(ROUTERS, 1)),
        "routers:",
        *(
            f"  {r}: {{wan: {{segment: internet, addresses: 2}}, lan: {{segment: lan-{r}}},"
            f" nat: {nat}, stun: true}}"
            for r, (nat, *_) in ROUTERS.items()
        ),
        "hosts:",
        *(f"  h-{r}: {{segment: lan-{r}}}" for r in ROUTERS),
        "  stun1: {segment: internet, role: stun-server, addresses: 2}",
    ]
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The six-router lab, shared by the module; down afterwards, with nothing left."""
    topology = parse_topology(TOPOLOGY, "test_probe.py")
    with Lab(topology, unique_lab_name(topology.name)) as running:
        yield running
    left = [n for n in planned_namespaces(topology, running.name) if namespaces.exists(n)]
    assert not left, f"lab {running.name} left namespaces behind: {left}"


def wan_ips(lab: Lab, router: str) -> set[IPv4Address]:
    return {a.ip for a in lab.topology.routers[router].wan.addresses}


def stun1_ips(lab: Lab) -> set[str]:
    return {str(a.ip) for a in lab.topology.hosts["stun1"].interfaces[0].addresses}


@pytest.mark.parametrize("responder", ["public", "own"])
@pytest.mark.parametrize("router", ROUTERS)
def test_probe_reports_the_declared_behaviour(lab: Lab, router: str, responder: str) -> None:
    _, mapping, filtering, name = ROUTERS[router]
    server = None if responder == "public" else router  # a router's name: its responder
    report = discover(lab, f"h-{router}", server).to_json()

    server_ip = report["server"].rsplit(":", 1)[0]
    if responder == "public":
        assert server_ip in stun1_ips(lab)
    else:
        assert IPv4Address(server_ip) in wan_ips(lab, router)
        assert IPv4Address(report["other"].rsplit(":", 1)[0]) in wan_ips(lab, router)
    assert IPv4Address(report["mapped"].rsplit(":", 1)[0]) in wan_ips(lab, router)
    assert (report["mapping"], report["filtering"], report["name"]) == (mapping, filtering, name)
    if EI in (mapping, filtering):  # hairpinning is on by default, and observable here
        assert report["hairpin"] is True
    assert report["notes"] == []


@pytest.mark.parametrize(("router", "timeout"), [("apdm", 30.0), ("fc", 120.0)])
def test_lifetime_is_found_on_the_lab_clock(lab: Lab, router: str, timeout: float) -> None:
    clock_before = lab.router(router).clock().clock
    started = time.monotonic()
    lifetime = discover(lab, f"h-{router}", lifetime=True).to_json()["lifetime"]
    took = time.monotonic() - started

    assert lifetime["survives"] < timeout <= lifetime["expires"]
    assert lifetime["expires"] - lifetime["survives"] <= 1.0
    # The search idled far longer than the timeout on the router's clock, not in real time.
    assert lab.router(router).clock().clock - clock_before > 2 * timeout
    assert took < timeout


def test_probe_command_summary_json_and_server_by_name(lab: Lab, natlab) -> None:
    shown = natlab.run("probe", "h-prc", "--lab", lab.name)
    assert shown.returncode == 0, shown.stderr
    assert "classic name" in shown.stdout
    assert "port-restricted" in shown.stdout

    as_json = natlab.run("probe", "h-sym", "--lab", lab.name, "--server", "stun1:3479", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    first = str(lab.topology.hosts["stun1"].interfaces[0].address)
    assert report["server"] == f"{first}:3479"  # the host's first address, the given port
    assert report["name"] == "symmetric"


def test_probe_refuses_a_router_and_an_unknown_node(lab: Lab, natlab) -> None:
    from_router = natlab.run("probe", "sym", "--lab", lab.name)
    assert from_router.returncode == 2
    assert "'sym' is a router" in from_router.stderr
    with pytest.raises(NatlabError, match="no node named 'nobody'"):
        discover(lab, "nobody")
