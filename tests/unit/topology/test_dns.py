"""A topology's `dns:` section: what it resolves to, and every mistake with its own message."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from natlab.errors import NatlabError
from natlab.topology import load_topology, parse_topology
from natlab.topology.dns import dns_name_problem, qualify

VALID = """\
name: t
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.0.0.0/24}
routers:
  main:
    wan: {segment: internet, address: 203.0.113.1}
    lan: {segment: lan}
hosts:
  pbx: {segment: lan, role: pbx}
  stun1: {segment: internet, role: stun-server, addresses: 2}
  dns1: {segment: internet, role: dns-server}
dns:
  zone: Example.Test
  records:
    pbx: main
    stun: [stun1, 203.0.113.99]
    www.example.test.: 203.0.113.7
  overrides:
    lan: {pbx: pbx}
  phones: {pbx: pbx, stun: stun}
"""


def broken(old: str, new: str) -> str:
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def test_names_resolve_to_the_addresses_of_nodes_and_literals():
    dns = parse_topology(VALID, "t.yaml").dns
    assert dns is not None
    assert dns.zone == "example.test"
    assert dns.server == "dns1"
    assert dns.records == {
        "pbx.example.test": (IPv4Address("203.0.113.1"),),  # a router: its WAN address
        "stun.example.test": tuple(
            IPv4Address(a) for a in ("203.0.113.2", "203.0.113.3", "203.0.113.99")
        ),
        "www.example.test": (IPv4Address("203.0.113.7"),),
    }
    assert dns.overrides == {"lan": {"pbx.example.test": (IPv4Address("10.0.0.2"),)}}
    assert (dns.pbx, dns.stun) == ("pbx.example.test", ("stun.example.test",))


def test_no_dns_section_no_names():
    no_dns = VALID.split("dns:\n")[0].replace("  dns1: {segment: internet, role: dns-server}\n", "")
    assert parse_topology(no_dns).dns is None


@pytest.mark.parametrize("name", ["main-branch", "pbx-public-access"])
def test_the_built_in_topologies_name_the_pbx_both_ways_and_stun_twice(name: str):
    topology = load_topology(name)
    dns = topology.dns
    assert dns is not None
    public = dns.records["pbx.example.test"]
    assert public == (topology.routers["main"].wan.address,)
    office = topology.hosts["pbx"].interfaces[0].segment
    assert dns.overrides[office]["pbx.example.test"] == (
        topology.hosts["pbx"].interfaces[0].address,
    )
    assert len(dns.records["stun.example.test"]) == 2


CASES = [
    pytest.param(
        broken("stun: [stun1, 203.0.113.99]", "stun: [stun1, 8.8.8.8]"),
        "dns.records.stun[1]",
        "address 8.8.8.8 lies outside every segment of this lab",
        "point names at addresses inside the lab's segments",
        id="address-outside-the-lab",
    ),
    pytest.param(
        broken("pbx: main\n", "pbx: mian\n"),
        "dns.records.pbx",
        "'mian' is neither an IPv4 address nor a node of this topology",
        "give an address or one of the nodes: main, pbx, stun1, dns1",
        id="unknown-node",
    ),
    pytest.param(
        broken("www.example.test.:", "www_1:"),
        "dns.records.www_1",
        "is not a DNS name: its label 'www_1' is not 1 to 63 letters",
        "use letters, digits and '-'",
        id="underscore-in-name",
    ),
    pytest.param(
        broken("www.example.test.:", "www.other.test.:"),
        "dns.records.www.other.test.",
        "lies outside the zone 'example.test'",
        "write it relative to the zone",
        id="name-outside-the-zone",
    ),
    pytest.param(
        broken("zone: Example.Test", "zone: -example.test"),
        "dns.zone",
        "zone '-example.test' is not a DNS name",
        "use letters, digits and '-'",
        id="bad-zone",
    ),
    pytest.param(
        broken("lan: {pbx: pbx}", "lna: {pbx: pbx}"),
        "dns.overrides.lna",
        "unknown segment 'lna'",
        "use one of the segments: internet, lan",
        id="override-unknown-segment",
    ),
    pytest.param(
        broken("lan: {pbx: pbx}", "internet: {pbx: pbx}"),
        "dns.overrides.internet",
        "segment 'internet' is no router's LAN",
        "put its names under dns.records",
        id="override-on-the-internet",
    ),
    pytest.param(
        broken("stun: stun}", "stun: [turn]}"),
        "dns.phones.stun[0]",
        "no record for 'turn.example.test'",
        "add it under dns.records",
        id="phones-unknown-name",
    ),
    pytest.param(
        broken(
            "dns1: {segment: internet, role: dns-server}", "dns1: {segment: lan, role: dns-server}"
        ),
        "hosts.dns1.segment",
        "sits on a LAN",
        "no router's LAN",
        id="dns-server-on-a-lan",
    ),
    pytest.param(
        broken("dns1: {segment: internet, role: dns-server}", "dns1: {segment: internet}"),
        "dns",
        "exactly one host with role dns-server, found 0",
        "role: dns-server",
        id="no-dns-server",
    ),
    pytest.param(
        broken("stun: [stun1, 203.0.113.99]", "stun: []"),
        "dns.records.stun",
        "a name needs at least one address",
        "give an address or a node",
        id="no-address",
    ),
]


@pytest.mark.parametrize(("text", "field", "problem", "fix"), CASES)
def test_each_mistake_names_file_field_and_fix(text: str, field: str, problem: str, fix: str):
    with pytest.raises(NatlabError) as caught:
        parse_topology(text, "t.yaml")
    error = caught.value
    assert (error.file, error.field) == ("t.yaml", field)
    assert problem in error.problem
    assert error.fix is not None and fix in error.fix


def test_a_dns_server_without_names_is_a_mistake():
    text = VALID.split("dns:\n")[0]
    with pytest.raises(NatlabError) as caught:
        parse_topology(text, "t.yaml")
    assert caught.value.field == "hosts.dns1.role"


def test_an_unknown_field_in_dns_is_named():
    with pytest.raises(NatlabError) as caught:
        parse_topology(broken("  zone: Example.Test", "  zone: Example.Test\n  ttl: 5"), "t.yaml")
    assert caught.value.field == "dns.ttl"


LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(st.lists(LABELS, min_size=1, max_size=4), st.lists(LABELS, min_size=1, max_size=3))
def test_every_written_form_of_a_name_means_the_same_full_name(relative, zone_labels):
    zone = ".".join(zone_labels)
    written = ".".join(relative)
    assume(written != zone and not written.endswith("." + zone))  # that one is full already
    full = written + "." + zone
    assert qualify(written, zone) == full
    assert qualify(full, zone) == full
    assert qualify(full + ".", zone) == full
    assert qualify(full.upper(), zone) == full
    assert dns_name_problem(full) is None or len(full) > 253


@given(st.text(min_size=1, max_size=70))
def test_a_name_with_anything_but_letters_digits_and_hyphens_is_refused(label):
    problem = dns_name_problem(label.lower())
    ok = all(c in "abcdefghijklmnopqrstuvwxyz0123456789-." for c in label.lower())
    if not ok:
        assert problem is not None


@given(st.text(alphabet="abc.", min_size=1, max_size=10))
def test_an_absolute_name_outside_the_zone_is_refused(name):
    zone = "example.test"
    try:
        full = qualify(name + ".", zone)
    except ValueError:
        return
    assert full == zone or full.endswith("." + zone)
