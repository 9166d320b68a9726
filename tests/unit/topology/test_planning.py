"""What a valid topology becomes: planned addresses, NAT behaviour, forwards, routes.

The lab builds exactly what these objects say, so a planning mistake here is
a wrong address or a missing route in every lab.
"""

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.behaviour import PRESETS, Filtering, Mapping
from natlab.topology import Route, load_topology, parse_topology
from natlab.topology.model import Stun
from natlab.topology.routing import plan_routes

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"

# The inner router is listed first and sits on the office LAN: the office's
# gateway must still get .1, and the inner router's WAN the next address.
DOUBLE_NAT = """\
name: double
segments:
  internet: {subnet: 203.0.113.0/24}
  office: {subnet: 10.0.0.0/24}
  lab: {subnet: 10.0.1.0/24}
routers:
  inner:
    wan: {segment: office}
    lan: {segment: lab}
    nat: NAT_OF_INNER
  edge:
    wan: {segment: internet}
    lan: {segment: office}
    nat: symmetric
hosts:
  a: {segment: office}
  b: {segment: office}
  tester: {segment: lab}
  public: {segment: internet}
"""


def double_nat(inner: str = "full-cone"):
    return parse_topology(DOUBLE_NAT.replace("NAT_OF_INNER", inner), "double.yaml")


def addresses(topology, node: str) -> list[str]:
    """Every address of a node, interface by interface, as text."""
    return [str(a) for iface in topology.nodes[node].interfaces for a in iface.addresses]


def translating(router) -> bool:
    return router.behaviour.translate


def test_gateways_first_then_wans_then_hosts_in_file_order():
    topology = double_nat()
    assert addresses(topology, "edge") == ["203.0.113.1/24", "10.0.0.1/24"]
    assert addresses(topology, "inner") == ["10.0.0.2/24", "10.0.1.1/24"]
    assert addresses(topology, "a") == ["10.0.0.3/24"]
    assert addresses(topology, "b") == ["10.0.0.4/24"]
    assert addresses(topology, "tester") == ["10.0.1.2/24"]
    assert addresses(topology, "public") == ["203.0.113.2/24"]
    assert topology.segments["office"].gateway == "edge"
    assert topology.segments["internet"].gateway is None


def test_every_lan_of_a_router_with_several_gets_its_gateway_first():
    topology = parse_topology(
        """\
name: lans
segments:
  internet: {subnet: 203.0.113.0/24}
  voice: {subnet: 10.0.0.0/24}
  data: {subnet: 10.0.1.0/24}
  inner: {subnet: 10.0.2.0/24}
routers:
  behind:
    wan: {segment: data}
    lan: {segment: inner}
  edge:
    wan: {segment: internet}
    lans: [{segment: voice}, {segment: data}]
""",
        "lans.yaml",
    )
    assert addresses(topology, "edge") == ["203.0.113.1/24", "10.0.0.1/24", "10.0.1.1/24"]
    assert addresses(topology, "behind") == ["10.0.1.2/24", "10.0.2.1/24"]
    assert [lan.segment for lan in topology.routers["edge"].lans] == ["voice", "data"]


def test_explicit_addresses_are_kept_and_planning_goes_around_them():
    topology = parse_topology(
        """\
name: explicit
segments:
  internet: {subnet: 198.51.100.0/24}
  lan: {subnet: 192.168.7.0/24}
routers:
  home:
    wan: {segment: internet, address: 198.51.100.20}
    lan: {segment: lan}
hosts:
  printer: {segment: lan, address: 192.168.7.1}
  laptop: {segment: lan}
  pair: {segment: lan, addresses: [192.168.7.3, 192.168.7.200]}
  stun: {segment: internet, role: stun-server, addresses: 2}
  twice: {segment: lan, addresses: 2}
""",
        "explicit.yaml",
    )
    assert addresses(topology, "home") == ["198.51.100.20/24", "192.168.7.2/24"]
    assert addresses(topology, "printer") == ["192.168.7.1/24"]
    assert addresses(topology, "laptop") == ["192.168.7.4/24"]
    assert addresses(topology, "pair") == ["192.168.7.3/24", "192.168.7.200/24"]
    assert addresses(topology, "stun") == ["198.51.100.1/24", "198.51.100.2/24"]
    assert addresses(topology, "twice") == ["192.168.7.5/24", "192.168.7.6/24"]
    assert topology.hosts["laptop"].interfaces[0].address == IPv4Address("192.168.7.4")


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.integers(min_value=24, max_value=28),
    explicit=st.lists(st.integers(min_value=1, max_value=14), max_size=4, unique=True),
    planned=st.integers(min_value=0, max_value=8),
)
def test_planned_addresses_are_unique_hosts_of_their_subnet(prefix, explicit, planned):
    subnet = IPv4Network(f"10.5.0.0/{prefix}")
    lines = [f"  e{i}: {{segment: lan, address: {subnet[n]}}}" for i, n in enumerate(explicit)]
    lines += [f"  p{i}: {{segment: lan}}" for i in range(planned)]
    hosts = "hosts:\n" + "\n".join(lines) + "\n" if lines else ""
    topology = parse_topology(
        "name: prop\nsegments:\n"
        f"  internet: {{subnet: 203.0.113.0/24}}\n  lan: {{subnet: {subnet}}}\n"
        "routers:\n  r: {wan: {segment: internet}, lan: {segment: lan}}\n" + hosts,
        "prop.yaml",
    )
    on_lan = [
        iface.address
        for node in topology.nodes.values()
        for iface in node.interfaces
        if iface.segment == "lan"
    ]
    assert len(on_lan) == len(set(on_lan)) == 1 + len(explicit) + planned
    assert all(a in subnet and a not in (subnet[0], subnet[-1]) for a in on_lan)
    for i, n in enumerate(explicit):
        assert topology.hosts[f"e{i}"].interfaces[0].address == subnet[n]
    lowest_free = min(set(range(1, 15)) - set(explicit))
    assert topology.routers["r"].lans[0].address == subnet[lowest_free]


@pytest.mark.parametrize(
    ("nat", "mapping", "filtering", "preset"),
    [
        pytest.param(
            "full-cone",
            Mapping.ENDPOINT_INDEPENDENT,
            Filtering.ENDPOINT_INDEPENDENT,
            "full-cone",
            id="full-cone",
        ),
        pytest.param(
            "symmetric",
            Mapping.ADDRESS_AND_PORT_DEPENDENT,
            Filtering.ADDRESS_AND_PORT_DEPENDENT,
            "symmetric",
            id="symmetric",
        ),
        pytest.param(
            "{filtering: address-dependent}",
            Mapping.ENDPOINT_INDEPENDENT,
            Filtering.ADDRESS_DEPENDENT,
            "restricted",
            id="axis-over-default",
        ),
        pytest.param(
            "{preset: symmetric, filtering: endpoint-independent}",
            Mapping.ADDRESS_AND_PORT_DEPENDENT,
            Filtering.ENDPOINT_INDEPENDENT,
            None,
            id="preset-with-override",
        ),
    ],
)
def test_nat_presets_and_axes_become_one_behaviour(nat, mapping, filtering, preset):
    behaviour = double_nat(nat).routers["inner"].behaviour
    assert (behaviour.mapping, behaviour.filtering) == (mapping, filtering)
    assert behaviour.preset_name() == preset


def test_nat_overrides_keep_the_rest_of_the_preset():
    behaviour = (
        double_nat("{preset: full-cone, udp_timeout: 30, hairpin: false, ports: random, seed: 7}")
        .routers["inner"]
        .behaviour
    )
    assert behaviour == replace(
        PRESETS["full-cone"], udp_timeout=30.0, hairpin=False, ports="random", seed=7
    )


def test_a_router_without_nat_is_port_restricted():
    topology = parse_topology(DOUBLE_NAT.replace("    nat: NAT_OF_INNER\n", ""), "default.yaml")
    assert topology.routers["inner"].behaviour == PRESETS["port-restricted"]


def test_forwards_name_the_host_address_and_both_port_ranges():
    topology = parse_topology(
        """\
name: fwd
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.0.0.0/24}
routers:
  main:
    wan: {segment: internet}
    lan: {segment: lan}
    stun: {port: 3478, alt_port: 3480}
    forwards:
      - {proto: tcp, port: 8000, to: "reporting:80"}
      - {proto: tcp, port: 443, to: pbx}
      - {proto: udp, port: 10000-10009, to: pbx}
      - {proto: udp, port: 20000-20009, to: "pbx:30000"}
      - {proto: udp, port: "40000", to: "pbx:50000-50000"}
hosts:
  pbx: {segment: lan, role: pbx}
  reporting: {segment: lan}
""",
        "fwd.yaml",
    )
    main = topology.routers["main"]
    found = [
        (f.proto, f.external_ports, f.host, str(f.address), f.internal_ports) for f in main.forwards
    ]
    assert found == [
        ("tcp", (8000, 8000), "reporting", "10.0.0.3", (80, 80)),
        ("tcp", (443, 443), "pbx", "10.0.0.2", (443, 443)),
        ("udp", (10000, 10009), "pbx", "10.0.0.2", (10000, 10009)),
        ("udp", (20000, 20009), "pbx", "10.0.0.2", (30000, 30009)),
        ("udp", (40000, 40000), "pbx", "10.0.0.2", (50000, 50000)),
    ]
    assert main.stun == Stun(3478, 3480)


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_topologies_load(path):
    topology = load_topology(path)
    assert topology.name == path.stem
    assert topology.text == path.read_text()
    stun_servers = [h for h in topology.hosts.values() if h.role == "stun-server"]
    assert [len(h.interfaces[0].addresses) for h in stun_servers] == [2]
    if "main" in topology.routers:  # the office topologies' main router answers STUN itself
        assert topology.routers["main"].stun == Stun()


def test_pbx_public_access_forwards_the_pbx_ports_and_reporting():
    topology = load_topology(TOPOLOGIES / "pbx-public-access.yaml")
    forwards = {
        (f.proto, f.external_ports[0]): (f.host, f.internal_ports[0])
        for f in topology.routers["main"].forwards
    }
    pbx_ports = (80, 443, 389, 636, 1720, 1300, 5060, 5061)  # the issue's, then the phones'
    pbx = {("tcp", port): ("pbx", port) for port in pbx_ports}
    assert forwards == {**pbx, ("tcp", 8000): ("reporting", 80)}
    assert {h.role.value for h in topology.hosts.values()} >= {"pbx", "phone", "stun-server"}
    public = topology.hosts["remote-phone"].interfaces[0]
    assert topology.segments[public.segment].gateway is None  # no NAT in front of it
    home = topology.hosts["home-phone"].interfaces[0]
    assert topology.routers[topology.segments[home.segment].gateway].behaviour.translate


def test_translating_routers_hide_their_lans():
    routes = plan_routes(double_nat(), translating)
    assert routes["a"] == (Route(None, IPv4Address("10.0.0.1")),)
    assert routes["tester"] == (Route(None, IPv4Address("10.0.1.1")),)
    assert routes["public"] == ()
    assert routes["edge"] == ()


def test_a_router_behind_another_gets_its_default_route_via_that_router():
    routes = plan_routes(double_nat(), translating)
    assert routes["inner"] == (Route(None, IPv4Address("10.0.0.1")),)


def test_a_router_with_nat_none_makes_its_lans_reachable_from_its_wan_segment():
    routes = plan_routes(double_nat("none"), translating)
    via_inner = Route(IPv4Network("10.0.1.0/24"), IPv4Address("10.0.0.2"))
    assert via_inner in routes["edge"]
    assert via_inner in routes["a"]
    assert routes["inner"] == (Route(None, IPv4Address("10.0.0.1")),)
    assert routes["public"] == ()  # edge still translates: nothing behind it is routed


def test_without_nat_every_lan_is_routed_through_the_chain():
    routes = plan_routes(double_nat("none"), lambda router: False)
    assert set(routes["public"]) == {
        Route(IPv4Network("10.0.0.0/24"), IPv4Address("203.0.113.1")),
        Route(IPv4Network("10.0.1.0/24"), IPv4Address("203.0.113.1")),
    }
