"""Which dnsmasq runs where, what each is told, and what each node's resolv.conf says: pure."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.errors import NatlabError
from natlab.lab.dns import (
    ROUTER_QUERY_PORT,
    TCP_SOURCE_PORTS,
    dnsmasq_conf,
    kernel_served,
    kernel_services,
    plan,
    resolv_confs,
    router_sysctls,
)
from natlab.lab.routers import daemon_config
from natlab.plumbing.firewall import KernelService
from natlab.topology import load_topology, parse_topology
from natlab.topology.dns import seen_from

MAIN_BRANCH = load_topology("main-branch")

NESTED = """\
name: nested
segments:
  internet: {subnet: 203.0.113.0/24}
  carrier: {subnet: 172.16.0.0/24}
  home: {subnet: 192.168.1.0/24}
  shop: {subnet: 192.168.2.0/24}
routers:
  cgn:
    wan: {segment: internet}
    lan: {segment: carrier}
    forwards: [{proto: udp, port: 1023, to: modem}]
  box:
    wan: {segment: carrier}
    lans: [{segment: home}, {segment: shop}]
hosts:
  pc: {segment: home}
  modem: {segment: carrier}
  till: {segment: shop}
  dns1: {segment: internet, role: dns-server}
dns:
  zone: lab.test
  records: {www: 203.0.113.80, mail: 203.0.113.25}
  overrides:
    carrier: {mail: 172.16.0.25}
    home: {www: [192.168.1.80, 192.168.1.81]}
"""


def test_main_branch_runs_the_public_server_and_one_resolver_per_router_lan():
    found = {(r.node, r.lan): r for r in plan(MAIN_BRANCH)}
    assert list(found) == [
        ("dns1", None),
        ("main", "main-lan"),
        ("branch1", "branch1-lan"),
        ("branch2", "branch2-lan"),
    ]
    public = found[("dns1", None)]
    assert public.upstream is None
    assert public.names["pbx.example.test"] == (IPv4Address("203.0.113.1"),)
    office = found[("main", "main-lan")]
    assert office.address == IPv4Address("10.0.0.1")
    assert office.names == {"pbx.example.test": (IPv4Address("10.0.0.2"),)}
    assert office.upstream == public.address
    assert (office.source, office.query_port) == (IPv4Address("203.0.113.1"), ROUTER_QUERY_PORT)
    assert found[("branch1", "branch1-lan")].names == {}  # forwards every name


def test_a_router_behind_a_router_forwards_to_its_upstream_router_and_ports_avoid_forwards():
    topology = parse_topology(NESTED)
    found = {(r.node, r.lan): r for r in plan(topology)}
    cgn, home, shop = found[("cgn", "carrier")], found[("box", "home")], found[("box", "shop")]
    assert cgn.query_port == ROUTER_QUERY_PORT - 1  # cgn forwards udp 1023 to modem
    assert home.upstream == shop.upstream == cgn.address  # the carrier's resolver
    assert (home.query_port, shop.query_port) == (ROUTER_QUERY_PORT, ROUTER_QUERY_PORT - 1)
    assert home.names == {
        "www.lab.test": (IPv4Address("192.168.1.80"), IPv4Address("192.168.1.81"))
    }


def test_every_node_asks_its_segment_s_resolver_and_searches_the_zone():
    confs = resolv_confs(parse_topology(NESTED))
    assert "nameserver 192.168.1.1\n" in confs["pc"]  # box's home address
    assert "nameserver 192.168.2.1\n" in confs["till"]
    assert "nameserver 192.168.1.1\n" in confs["box"]  # a router: its own first LAN's resolver
    dns1 = parse_topology(NESTED).hosts["dns1"].interfaces[0].address
    assert f"nameserver {dns1}\n" in confs["dns1"]
    assert all("search lab.test\n" in text for text in confs.values())


def test_no_dns_section_no_servers_and_no_resolv_conf():
    text = NESTED.split("dns:\n")[0].replace("  dns1: {segment: internet, role: dns-server}\n", "")
    topology = parse_topology(text)
    assert plan(topology) == []
    assert resolv_confs(topology) == {}
    assert all(kernel_services(topology, r) == [] for r in topology.routers.values())


def test_dnsmasq_is_told_exactly_its_names_and_its_upstream():
    found = {(r.node, r.lan): r for r in plan(parse_topology(NESTED))}
    public = dnsmasq_conf(found[("dns1", None)]).splitlines()
    assert "host-record=www.lab.test,203.0.113.80" in public
    assert "local=/#/" in public  # nothing else exists
    assert not [line for line in public if line.startswith("server=")]
    home = dnsmasq_conf(found[("box", "home")]).splitlines()
    assert home.count("host-record=www.lab.test,192.168.1.80") == 1
    assert "host-record=www.lab.test,192.168.1.81" in home
    assert "listen-address=192.168.1.1" in home
    cgn = found[("cgn", "carrier")].address
    box_wan = parse_topology(NESTED).routers["box"].wan.address
    assert f"server={cgn}@{box_wan}#{ROUTER_QUERY_PORT}" in home
    assert "no-resolv" in home and "bind-interfaces" in home


def test_the_router_kernel_takes_dns_on_its_lan_and_answers_on_its_source_ports_only():
    router = MAIN_BRANCH.routers["branch1"]
    services = set(kernel_services(MAIN_BRANCH, router))
    udp, tcp = socket.IPPROTO_UDP, socket.IPPROTO_TCP
    tcp_ports = range(ROUTER_QUERY_PORT - TCP_SOURCE_PORTS, ROUTER_QUERY_PORT)
    assert services == {
        KernelService("branch1-lan", "10.1.0.1", udp, 53),
        KernelService("branch1-lan", "10.1.0.1", tcp, 53),
        KernelService("internet", "203.0.113.2", udp, ROUTER_QUERY_PORT),
        *(KernelService("internet", "203.0.113.2", tcp, port) for port in tcp_ports),
    }
    assert router_sysctls(MAIN_BRANCH, router) == {
        "net.ipv4.ip_unprivileged_port_start": str(tcp_ports[0]),
        "net.ipv4.ip_local_port_range": f"{tcp_ports[0]} {tcp_ports[-1]}",
    }
    config = daemon_config(MAIN_BRANCH, router, "lab", lambda r: r.behaviour.translate)
    assert set(config.kernel_served) == set(kernel_served(MAIN_BRANCH, router))
    assert len(config.kernel_served) == 3 + TCP_SOURCE_PORTS


def test_a_router_that_forwards_nearly_every_low_port_leaves_no_room_for_its_resolver():
    crowded = NESTED.replace(
        "forwards: [{proto: udp, port: 1023, to: modem}]",
        "forwards: [{proto: udp, port: 1-1010, to: modem}]",
    )
    with pytest.raises(NatlabError, match="router 'cgn' forwards nearly every port below 1024"):
        plan(parse_topology(crowded))


@given(st.lists(st.integers(1, 1023), max_size=40))
def test_query_ports_never_collide_with_a_forward_nor_with_each_other(forwarded):
    forwards = "".join(
        f"      - {{proto: udp, port: {p}, to: pc}}\n" for p in dict.fromkeys(forwarded)
    )
    text = NESTED.replace(
        "  box:\n    wan: {segment: carrier}\n    lans: [{segment: home}, {segment: shop}]\n",
        "  box:\n    wan: {segment: carrier}\n    lans: [{segment: home}, {segment: shop}]\n"
        + ("    forwards:\n" + forwards if forwards else ""),
    )
    resolvers = [r for r in plan(parse_topology(text)) if r.node == "box"]
    ports = [r.query_port for r in resolvers]
    assert len(set(ports)) == len(ports) == 2
    tcp_ports = resolvers[0].tcp_ports
    assert all(r.tcp_ports == tcp_ports for r in resolvers)  # the router kernel's, shared
    assert len(tcp_ports) == TCP_SOURCE_PORTS and max(tcp_ports) < min(ports)
    assert not (set(ports) | set(tcp_ports)) & set(forwarded)
    assert all(0 < port <= ROUTER_QUERY_PORT for port in ports)


def test_a_lan_behind_a_lan_sees_its_own_overrides_then_its_upstream_s_then_the_public():
    topology = parse_topology(NESTED)
    home = seen_from(topology, "home")
    assert home["www.lab.test"] == (IPv4Address("192.168.1.80"), IPv4Address("192.168.1.81"))
    assert home["mail.lab.test"] == (IPv4Address("172.16.0.25"),)  # the carrier's resolver's
    assert seen_from(topology, "carrier")["www.lab.test"] == (IPv4Address("203.0.113.80"),)
    assert topology.dns is not None
    assert seen_from(topology, "internet") == topology.dns.records
