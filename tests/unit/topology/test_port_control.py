"""`port_control:` on a router: opt-in, each protocol once, only where the router translates."""

from __future__ import annotations

import pytest

from natlab.errors import NatlabError
from natlab.lab.routers import daemon_config
from natlab.router.config import DaemonConfig
from natlab.topology import parse_topology

TOPOLOGY = """\
name: t
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.0.0.0/24}
routers:
  main:
    wan: {segment: internet}
    lan: {segment: lan}
    nat: NAT
    port_control: PROTOCOLS
hosts:
  pc: {segment: lan}
"""


def topology(protocols: str, nat: str = "port-restricted"):
    return parse_topology(TOPOLOGY.replace("PROTOCOLS", protocols).replace("NAT", nat), "t.yaml")


def test_it_is_off_by_default_and_carried_to_the_daemon():
    plain = parse_topology(TOPOLOGY.replace("    port_control: PROTOCOLS\n", "").replace(
        "NAT", "full-cone"), "t.yaml")  # fmt: skip
    assert plain.routers["main"].port_control == ()
    on = topology("[upnp, pcp]")
    assert on.routers["main"].port_control == ("upnp", "pcp")
    config = daemon_config(on, on.routers["main"], "lab", lambda router: True)
    assert DaemonConfig.from_json(config.to_json()).port_control == ("upnp", "pcp")


@pytest.mark.parametrize(
    ("protocols", "nat", "problem"),
    [
        ("[pcp, pcp]", "full-cone", "a protocol is listed twice"),
        ("[natpmp]", "none", "a router that does not translate (nat: none)"),
        ("[igd]", "full-cone", "igd"),
        ("upnp", "full-cone", "port_control"),
    ],
)
def test_mistakes_are_named(protocols, nat, problem):
    with pytest.raises(NatlabError) as caught:
        topology(protocols, nat)
    assert problem in str(caught.value)
    assert "port_control" in str(caught.value)


def test_a_carrier_grade_nat_has_none():
    text = TOPOLOGY.replace("PROTOCOLS", "[pcp]").replace("NAT", "full-cone\n    cgnat: {}")
    with pytest.raises(NatlabError) as caught:
        parse_topology(text.replace("10.0.0.0/24", "100.64.0.0/24"), "t.yaml")
    assert "routers.main.port_control: port control on a carrier-grade NAT" in str(caught.value)
