"""Where each phone signals to and what the PBX is told, decided from the topology alone."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from natlab.endpoints import baresip
from natlab.endpoints.ice import TurnServer
from natlab.lab.endpoints import (
    local_networks,
    pbx_config,
    pbx_endpoints,
    phone_config,
    stun_servers,
)
from natlab.lab.sip_software import baresip_config
from natlab.topology import load_topology, parse_topology
from natlab.topology.model import Router, Topology

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def translating(router: Router) -> bool:
    return router.behaviour.translate


def routing_only(router: Router) -> bool:  # the kernel dataplane: nothing is translated
    return False


@pytest.fixture(scope="module")
def main_branch() -> Topology:
    return load_topology(TOPOLOGIES / "main-branch.yaml")


def test_a_phone_in_the_pbx_lan_dials_its_address_and_remote_ones_the_forwarding_router(
    main_branch: Topology,
) -> None:
    pbx = main_branch.hosts["pbx"]
    lan = str(pbx.interfaces[0].address)
    assert pbx_endpoints(main_branch, main_branch.hosts["phone-a"], pbx, translating) == {
        "tcp": (lan, 5060),
        "tls": (lan, 5061),
        "udp": (lan, 5060),
    }
    for remote in ("phone-b", "phone-c"):
        assert pbx_endpoints(main_branch, main_branch.hosts[remote], pbx, translating) == {
            "tcp": ("203.0.113.1", 5060),
            "tls": ("203.0.113.1", 5061),
            "udp": ("203.0.113.1", 5060),  # main forwards udp 5060 too
        }


def test_without_nat_every_phone_dials_the_pbx_itself(main_branch: Topology) -> None:
    pbx = main_branch.hosts["pbx"]
    lan = str(pbx.interfaces[0].address)
    phone = main_branch.hosts["phone-c"]
    assert pbx_endpoints(main_branch, phone, pbx, routing_only) == {
        "tcp": (lan, 5060),
        "tls": (lan, 5061),
        "udp": (lan, 5060),
    }


EXTERNAL_PORTS = """
name: other-ports
segments:
  internet: {subnet: 203.0.113.0/24}
  office: {subnet: 10.0.0.0/24}
  home: {subnet: 192.168.1.0/24}
routers:
  main:
    wan: {segment: internet, address: 203.0.113.1}
    lan: {segment: office}
    forwards:
      - {proto: tcp, port: 15060, to: "pbx:5060"}
      - {proto: udp, port: 50000-50009, to: "pbx:40000-40009"}
  home:
    wan: {segment: internet}
    lan: {segment: home}
hosts:
  pbx: {segment: office, role: pbx}
  home-phone: {segment: home, role: phone}
  public-phone: {segment: internet, role: phone}
"""


def test_forwarded_ports_are_dialled_as_the_router_publishes_them() -> None:
    topology = parse_topology(EXTERNAL_PORTS, "other-ports.yaml")
    pbx = topology.hosts["pbx"]
    for phone in ("home-phone", "public-phone"):
        found = pbx_endpoints(topology, topology.hosts[phone], pbx, translating)
        assert found["tcp"] == ("203.0.113.1", 15060)
        assert found["tls"] is None  # nothing forwards 5061: no TLS from outside
        assert found["udp"] is None  # nor udp 5060 (the udp forward is the relay's ports)


def test_the_pbx_relays_on_its_forwarded_udp_ports_and_knows_their_public_numbers(
    tmp_path: Path,
) -> None:
    topology = parse_topology(EXTERNAL_PORTS, "other-ports.yaml")
    config = pbx_config(topology, topology.hosts["pbx"], tmp_path, translating)
    assert config.public == IPv4Address("203.0.113.1")
    assert config.relay_ports == (40000, 40009)
    assert config.relay_public_offset == 10000
    assert config.local == (IPv4Network("10.0.0.0/24"),)
    assert (config.control, config.ca) == (tmp_path / "hosts" / "pbx.sock", tmp_path / "ca")


def test_the_udp_signalling_forward_is_not_taken_for_the_relay_ports(
    main_branch: Topology, tmp_path: Path
) -> None:
    """main-branch forwards udp 5060 (registration) before 40000-40099 (the media relay)."""
    config = pbx_config(main_branch, main_branch.hosts["pbx"], tmp_path, translating)
    assert (config.relay_ports, config.relay_public_offset) == ((40000, 40099), 0)


def test_only_networks_that_see_the_pbx_unnatted_are_its_local_ones(main_branch: Topology) -> None:
    pbx = main_branch.hosts["pbx"]
    assert local_networks(main_branch, pbx, translating) == [IPv4Network("10.0.0.0/24")]
    assert len(local_networks(main_branch, pbx, routing_only)) == len(main_branch.segments)


def test_phones_know_every_stun_service_and_the_turn_server(tmp_path: Path) -> None:
    topology = parse_topology(
        (TOPOLOGIES / "main-branch.yaml").read_text()
        + "  turn1: {segment: internet, role: turn-server, address: 203.0.113.30}\n",
        "with-turn.yaml",
    )
    stun1 = str(topology.hosts["stun1"].interfaces[0].address)
    assert stun_servers(topology) == [(stun1, 3478), ("203.0.113.1", 3478)]
    config = phone_config(topology, topology.hosts["phone-b"], tmp_path, translating)
    assert config.turn == TurnServer(("203.0.113.30", 3478), "natlab", "natlab")
    # main-branch's `dns.phones`: the STUN service and the PBX by name, at the ports worked out
    assert config.stun == (("stun.example.test", 3478),)
    assert config.pbx == config.pbx_udp == ("pbx.example.test", 5060)
    assert (config.name, config.address) == ("phone-b", IPv4Address("10.1.0.2"))
    unnamed = replace(topology, dns=None)
    config = phone_config(unnamed, unnamed.hosts["phone-b"], tmp_path, translating)
    assert config.stun == ((stun1, 3478), ("203.0.113.1", 3478))
    assert config.pbx == config.pbx_udp == ("203.0.113.1", 5060)


def with_phone_b(sip: str, forwards_tcp: bool = True) -> Topology:
    """main-branch, with phone-b's host fields extended; without main's TCP 5060 forward."""
    text = (TOPOLOGIES / "main-branch.yaml").read_text()
    text = text.replace("phone-b: {segment: branch1-lan, role: phone}", f"phone-b: {{{sip}}}")
    if not forwards_tcp:
        text = text.replace("- {proto: tcp, port: 5060, to: pbx}", "")
    return replace(parse_topology(text, "t.yaml"), dns=None)


@pytest.mark.parametrize(("transport", "first"), [(None, "tcp"), ("udp", "udp"), ("tls", "tls")])
def test_a_natlab_phone_registers_first_over_its_sip_transport(
    tmp_path: Path, transport: str | None, first: str
) -> None:
    sip = "" if transport is None else f", sip: {{transport: {transport}}}"
    topology = with_phone_b(f"segment: branch1-lan, role: phone{sip}")
    config = phone_config(topology, topology.hosts["phone-b"], tmp_path, translating)
    assert config.transport == first


@pytest.mark.parametrize(
    ("transport", "forwards_tcp", "registrar", "uri"),
    [
        (None, True, ("203.0.113.1", 5060), ";transport=udp>"),
        ("udp", False, ("203.0.113.1", 5060), ";transport=udp>"),
        ("tcp", True, ("203.0.113.1", 5060), ";transport=tcp>"),
        ("tcp", False, None, ";transport=tcp>"),  # main forwards no TCP 5060: no registration
    ],
)
def test_baresip_reaches_the_pbx_over_its_sip_transport(
    transport: str | None, forwards_tcp: bool, registrar: tuple | None, uri: str
) -> None:
    sip = "" if transport is None else f", sip: {{transport: {transport}}}"
    fields = f"segment: branch1-lan, role: phone, agent: baresip{sip}"
    topology = with_phone_b(fields, forwards_tcp)
    config = baresip_config(topology, topology.hosts["phone-b"], translating)
    assert config.registrar == registrar
    assert uri in baresip.accounts_text(config)
