"""examples/sip-softphones: its topology and scenario are valid, and name baresip and kamailio."""

from pathlib import Path

from natlab.scenario.model import load_scenario
from natlab.topology import load_topology

EXAMPLE = Path(__file__).parents[2] / "examples" / "sip-softphones"


def test_the_example_topology_runs_baresip_phones_and_kamailio():
    topology = load_topology(EXAMPLE / "topology.yaml")
    assert topology.hosts["pbx"].server == "kamailio"
    assert {topology.hosts[n].agent for n in ("alice", "bob")} == {"baresip"}


def test_the_example_scenario_loads():
    scenario = load_scenario(EXAMPLE / "symmetric-one-way.yaml")
    assert len(scenario.steps) == 3
