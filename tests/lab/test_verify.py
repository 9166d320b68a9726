"""`natlab up --verify` and `natlab verify`: the lab proves its routers are what it says (issue 4).

Run as a user runs them, through the natlab command: every topology that
ships in topologies/ must verify, and a router changed behind the
topology's back with `natlab nat set` must fail verification, naming the
router and the axis, while the lab stays up.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.natlab

TOPOLOGIES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))

# A full-cone router to change live, one that does not translate, one with nobody behind it.
CHECKED = """
name: verify-test
segments:
  internet: {subnet: 203.0.113.0/24}
  cone-lan: {subnet: 10.0.1.0/24}
  open-lan: {subnet: 198.51.100.0/24}
  empty-lan: {subnet: 10.0.3.0/24}
routers:
  cone: {wan: {segment: internet}, lan: {segment: cone-lan}, nat: full-cone}
  open: {wan: {segment: internet}, lan: {segment: open-lan}, nat: none}
  lonely: {wan: {segment: internet}, lan: {segment: empty-lan}, nat: symmetric}
hosts:
  h-cone: {segment: cone-lan}
  h-open: {segment: open-lan}
  stun1: {segment: internet, role: stun-server, addresses: 2}
"""


@pytest.mark.parametrize("topology", TOPOLOGIES, ids=[path.stem for path in TOPOLOGIES])
def test_up_verify_passes_on_every_shipped_topology(natlab, topology: Path) -> None:
    lab = natlab.new_lab()
    up = natlab.run("up", str(topology), "--name", lab, "--verify")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"lab '{lab}' behaves as its topology says" in up.stdout
    routers = yaml.safe_load(topology.read_text())["routers"]
    for router, spec in routers.items():
        if any(spec["wan"]["segment"] == other["lan"]["segment"] for other in routers.values()):
            # behind another NAT (NAT444): a probe would see both NATs at once
            assert f"router {router}: skipped" in up.stdout
            assert "its WAN is not on internet" in up.stdout
        else:
            assert f"router {router} (from " in up.stdout  # probed, not skipped
    assert "expected" not in up.stdout


def test_verify_names_the_router_and_axis_a_live_change_broke(natlab, tmp_path: Path) -> None:
    topology = tmp_path / "verify-test.yaml"
    topology.write_text(CHECKED)
    lab = natlab.new_lab()
    up = natlab.run("up", str(topology), "--name", lab, "--verify")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "router open (from h-open): translation off: as declared" in up.stdout
    assert "router lonely: skipped" in up.stdout
    assert "note: no host on its LAN to probe" in up.stdout
    assert "router cone (from h-cone): translation on, mapping endpoint-independent, " in up.stdout

    assert natlab.run("nat", "set", "--lab", lab, "cone", "symmetric").returncode == 0
    broken = natlab.run("verify", lab)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (
        "router cone: mapping: expected endpoint-independent, "
        "observed address-and-port-dependent" in broken.stdout
    )
    assert (
        "router cone: filtering: expected endpoint-independent, "
        "observed address-and-port-dependent" in broken.stdout
    )
    assert broken.stdout.count("expected") == 2  # nothing else is blamed
    assert f"it stays up: natlab down {lab}" in broken.stdout
    assert natlab.run("status", lab).returncode == 0  # and it did

    hairpin_off = natlab.run("nat", "set", "--lab", lab, "cone", "full-cone", "hairpin=off")
    assert hairpin_off.returncode == 0, hairpin_off.stderr
    no_hairpin = natlab.run("verify", lab)
    assert no_hairpin.returncode == 1, no_hairpin.stdout + no_hairpin.stderr
    assert "router cone: hairpin: expected on, observed off" in no_hairpin.stdout
    assert no_hairpin.stdout.count("expected") == 1
