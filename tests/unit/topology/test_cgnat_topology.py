"""A router's `cgnat:` in a topology: what it makes, and every mistake with its own message."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from natlab.core.cgnat import CgnatSettings
from natlab.errors import NatlabError
from natlab.lab.routers import daemon_config
from natlab.router.config import DaemonConfig
from natlab.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[3]

VALID = """\
name: t
segments:
  internet: {subnet: 203.0.113.0/24}
  carrier: {subnet: 100.64.0.0/24}
  home-lan: {subnet: 192.168.1.0/24}
routers:
  cgn:
    wan: {segment: internet}
    lan: {segment: carrier}
    nat: restricted
    cgnat: {pool: 2, port_block: 64, blocks_per_subscriber: 2}
  home:
    wan: {segment: carrier}
    lan: {segment: home-lan}
hosts:
  pc: {segment: home-lan}
"""


def broken(old: str, new: str) -> str:
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def test_a_cgnat_router_carries_its_settings_and_its_pool_is_its_wan() -> None:
    topology = parse_topology(VALID, "good.yaml")
    cgn = topology.routers["cgn"]
    assert cgn.cgnat == CgnatSettings(port_block=64, blocks_per_subscriber=2)
    assert cgn.wan.addresses == (
        IPv4Interface("203.0.113.1/24"),
        IPv4Interface("203.0.113.2/24"),
    )
    assert topology.routers["home"].cgnat is None
    assert topology.routers["home"].wan.address.exploded == "100.64.0.2"


def test_the_daemon_config_carries_the_settings_both_ways() -> None:
    topology = parse_topology(VALID.replace("pool: 2", "pool: [203.0.113.9]"), "good.yaml")
    config = daemon_config(
        topology, topology.routers["cgn"], "lab", lambda r: r.behaviour.translate
    )
    assert DaemonConfig.from_json(config.to_json()) == config
    nat = config.nat_config()
    assert nat.external_addresses == ("203.0.113.9",)
    assert nat.cgnat == CgnatSettings(port_block=64, blocks_per_subscriber=2)


def test_the_built_in_topology_is_valid() -> None:
    topology = load_topology(ROOT / "topologies" / "cgnat.yaml")
    assert topology.routers["carrier"].cgnat is not None


@pytest.mark.parametrize(
    ("text", "field", "problem", "fix"),
    [
        pytest.param(
            broken("carrier: {subnet: 100.64.0.0/24}", "carrier: {subnet: 10.9.0.0/24}"),
            "routers.cgn.lan.segment",
            "the inside of a carrier-grade NAT is the shared address space 100.64.0.0/10 "
            "(RFC 6598); segment 'carrier' is 10.9.0.0/24",
            "give segment 'carrier' a subnet inside 100.64.0.0/10",
            id="cgnat-inside-not-shared",
        ),
        pytest.param(
            broken("home-lan: {subnet: 192.168.1.0/24}", "home-lan: {subnet: 100.65.0.0/24}"),
            "routers.home.lan.segment",
            "segment 'home-lan' (100.65.0.0/24) is in the shared address space 100.64.0.0/10, "
            "which only a carrier-grade NAT has on its inside (RFC 6598)",
            "add cgnat: {} to router 'home'",
            id="home-lan-in-shared-space",
        ),
        pytest.param(
            broken("wan: {segment: internet}", "wan: {segment: internet, address: 203.0.113.5}"),
            "routers.cgn.cgnat.pool",
            "the pool is the WAN's addresses: give cgnat.pool or wan.address(es), not both",
            "keep one of them",
            id="pool-and-wan-address",
        ),
        pytest.param(
            broken("pool: 2,", "pool: 40,"),
            "routers.cgn.cgnat.pool",
            "pool: 40 is out of range",
            "ask for 1 to 16 addresses",
            id="pool-too-large",
        ),
        pytest.param(
            broken("port_block: 64", "port_block: 0"),
            "routers.cgn.cgnat.port_block",
            "port_block must be at least 1, got 0",
            None,
            id="port-block-zero",
        ),
        pytest.param(
            broken("port_block: 64", "port_block: 70000"),
            "routers.cgn.cgnat.port_block",
            "port_block 70000 is larger than the port range 1024-65535",
            "use a smaller port_block, or a wider nat.port_range",
            id="port-block-too-large",
        ),
        pytest.param(
            broken("nat: restricted", "nat: {preset: restricted, parity: true}").replace(
                "port_block: 64", "port_block: 63"
            ),
            "routers.cgn.cgnat.port_block",
            "parity needs an even port_block, got 63",
            "use an even port_block, or parity: false",
            id="parity-odd-block",
        ),
        pytest.param(
            broken("nat: restricted", "nat: none"),
            "routers.cgn.nat",
            "a carrier-grade NAT translates: nat: none makes no sense with cgnat:",
            "give a NAT behaviour",
            id="cgnat-without-translation",
        ),
        pytest.param(
            broken("blocks_per_subscriber: 2}", "blocks_per_subscriber: 2, quota: 5}"),
            "routers.cgn.cgnat.quota",
            None,
            None,
            id="unknown-setting",
        ),
    ],
)
def test_each_cgnat_mistake_names_its_field(text, field, problem, fix) -> None:
    with pytest.raises(NatlabError) as caught:
        parse_topology(text, "bad.yaml")
    error = caught.value
    assert (error.file, error.field) == ("bad.yaml", field)
    assert error.line is not None
    if problem is not None:
        assert error.problem == problem
    if fix is not None:
        assert fix in error.fix


def test_validate_exits_2_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(broken("port_block: 64", "port_block: 0"))
    done = subprocess.run(
        [sys.executable, "-m", "natlab", "validate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "routers.cgn.cgnat.port_block: port_block must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
