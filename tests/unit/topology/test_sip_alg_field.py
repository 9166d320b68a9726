"""A router's `sip_alg`: what the topology says reaches the router daemon's config."""

from __future__ import annotations

import pytest

from natlab.lab.routers import daemon_config
from natlab.router.config import DaemonConfig
from natlab.topology import parse_topology

TOPOLOGY = """\
name: t
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.0.0.0/24}}
routers:
  main:
    wan: {{segment: internet}}
    lan: {{segment: lan}}
{line}
hosts:
  pc: {{segment: lan}}
"""


@pytest.mark.parametrize(
    ("line", "mode"),
    [
        ("", "off"),
        ("    sip_alg: off", "off"),  # YAML's false
        ("    sip_alg: 'off'", "off"),
        ("    sip_alg: rewrite", "rewrite"),
        ("    sip_alg: broken", "broken"),
    ],
)
def test_the_mode_reaches_the_daemon_config(line: str, mode: str):
    topology = parse_topology(TOPOLOGY.format(line=line), "t.yaml")
    router = topology.routers["main"]
    assert router.sip_alg == mode
    config = daemon_config(topology, router, "lab-x", lambda r: True)
    assert config.sip_alg == mode
    assert DaemonConfig.from_json(config.to_json()) == config


def test_a_config_written_before_the_alg_reads_as_off():
    topology = parse_topology(TOPOLOGY.format(line=""), "t.yaml")
    data = daemon_config(topology, topology.routers["main"], "lab-x", lambda r: True).to_json()
    del data["sip_alg"]
    assert DaemonConfig.from_json(data).sip_alg == "off"
