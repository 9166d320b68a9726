"""Every mistake a user can make in a topology gets its own message.

Each case is a small topology with one mistake. The message must say where
(file, line, field path), what is wrong and how to fix it, because that is
all a user sees: `natlab validate` prints it without a traceback.
"""

import pytest

from natlab.errors import NatlabError
from natlab.topology import parse_topology

# A valid topology: each case below breaks it in exactly one place.
VALID = """\
name: t
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.0.0.0/24}
routers:
  main:
    wan: {segment: internet}
    lan: {segment: lan}
    forwards:
      - {proto: tcp, port: 80, to: pc}
hosts:
  pc: {segment: lan}
"""


def broken(old: str, new: str) -> str:
    """VALID with one line changed; the line numbers stay those of VALID."""
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


CASES = [
    pytest.param(
        broken("lan: {segment: lan}", "lan: {segment: lna}"),
        "routers.main.lan.segment",
        8,
        "unknown segment 'lna'",
        "use one of the segments: internet, lan",
        id="router-unknown-segment",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: lna}"),
        "hosts.pc.segment",
        12,
        "unknown segment 'lna'",
        "use one of the segments: internet, lan",
        id="host-unknown-segment",
    ),
    pytest.param(
        broken("to: pc}", "to: pbx}"),
        "routers.main.forwards[0].to",
        10,
        "forward to unknown host 'pbx'",
        "use a host on main's LAN: pc",
        id="forward-unknown-host",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: lan, address: 10.0.1.5}"),
        "hosts.pc.address",
        12,
        "address 10.0.1.5 is outside segment 'lan' (10.0.0.0/24)",
        "pick an address in 10.0.0.0/24, or leave it out to have one planned",
        id="address-outside-subnet",
    ),
    pytest.param(
        broken("lan: {segment: lan}", "lan: {segment: lan, address: 10.0.0.7}").replace(
            "pc: {segment: lan}", "pc: {segment: lan, address: 10.0.0.7}"
        ),
        "hosts.pc.address",
        12,
        "address 10.0.0.7 is already used by routers.main.lan.address",
        "give every interface its own address",
        id="duplicate-address",
    ),
    pytest.param(
        broken("lan: {subnet: 10.0.0.0/24}", "lan: {subnet: 203.0.113.128/25}"),
        "segments.lan.subnet",
        4,
        "subnet 203.0.113.128/25 overlaps segment 'internet' (203.0.113.0/24)",
        "give every segment its own, non-overlapping subnet",
        id="overlapping-subnets",
    ),
    pytest.param(
        broken("    forwards:", "    nat: full-code\n    forwards:"),
        "routers.main.nat",
        9,
        "unknown NAT preset 'full-code'",
        "use one of full-cone, restricted, port-restricted, symmetric, none",
        id="unknown-nat-preset",
    ),
    pytest.param(
        broken("    forwards:", "    nat: {mapping: endpoint-dependent}\n    forwards:"),
        "routers.main.nat.mapping",
        9,
        "bad value 'endpoint-dependent' for NAT setting 'mapping'",
        "use 'endpoint-independent', 'address-dependent' or 'address-and-port-dependent'",
        id="bad-axis-value",
    ),
    pytest.param(
        broken("    forwards:", "    nat: {preset: symmetric, udp_timeout: -3}\n    forwards:"),
        "routers.main.nat.udp_timeout",
        9,
        "bad value -3 for NAT setting 'udp_timeout'",
        "use a number greater than 0",
        id="bad-timeout",
    ),
    pytest.param(
        broken("    forwards:", "    nat: {port_range: [2000, 1000]}\n    forwards:"),
        "routers.main.nat",
        9,
        "port_range must be two ports with 1 <= low <= high <= 65535, got 2000-1000",
        None,
        id="port-range-backwards",
    ),
    pytest.param(
        broken("    forwards:", "    nat: {filter: endpoint-independent}\n    forwards:"),
        "routers.main.nat.filter",
        9,
        "unknown NAT setting 'filter'",
        "settings are: preset, translate, mapping, filtering, ports",
        id="unknown-nat-setting",
    ),
    pytest.param(
        broken("port: 80,", "port: 70000,"),
        "routers.main.forwards[0].port",
        10,
        "port 70000 is out of range",
        "ports run from 1 to 65535",
        id="forward-port-out-of-range",
    ),
    pytest.param(
        broken("    forwards:", "    sip_alg: on\n    forwards:"),
        "routers.main.sip_alg",
        9,
        "sip_alg true is not a mode",
        "use one of off, rewrite, broken",
        id="sip-alg-on",
    ),
    pytest.param(
        broken("    forwards:", "    sip_alg: rewrite\n    nat: none\n    forwards:"),
        "routers.main.sip_alg",
        9,
        "a SIP ALG rewrites addresses to the router's public mapping, and this router does "
        "not translate (nat: none)",
        "remove sip_alg",
        id="sip-alg-without-nat",
    ),
    pytest.param(
        broken("    forwards:", "    stun: {port: 0}\n    forwards:"),
        "routers.main.stun.port",
        9,
        "port 0 is out of range",
        "ports run from 1 to 65535",
        id="stun-port-out-of-range",
    ),
    pytest.param(
        broken("port: 80, to: pc}", "port: 10000-10009, to: 'pc:20000-20004'}"),
        "routers.main.forwards[0].to",
        10,
        "pc:20000-20004 does not match the size of port range 10000-10009",
        "map a range to a range of the same size, or give only the first port",
        id="forward-range-size-mismatch",
    ),
    pytest.param(
        broken("port: 80, to: pc}", "port: 30000-30009, to: 'pc:65530'}"),
        "routers.main.forwards[0].to",
        10,
        "pc:65530 with the 10 ports of 30000-30009 runs past port 65535",
        "start the range at 65526 or lower",
        id="forward-range-past-65535",
    ),
    pytest.param(
        broken("to: pc}", "to: 'pc:'}"),
        "routers.main.forwards[0].to",
        10,
        "bad port ''",
        "write pc, pc:80 or pc:8000-8010",
        id="forward-empty-internal-port",
    ),
    pytest.param(
        broken("port: 80,", "port: true,"),
        "routers.main.forwards[0].port",
        10,
        "input should be a valid integer (got True)",
        "write a port number (8000)",
        id="forward-port-boolean",
    ),
    pytest.param(
        broken("to: pc}", "to: pc}\n      - {proto: tcp, port: 79-81, to: pc}"),
        "routers.main.forwards[1].port",
        11,
        "tcp port 79-81 is already forwarded to pc",
        "forward each external port once",
        id="forward-overlap",
    ),
    pytest.param(
        VALID.replace("segment: lan}", "segment: office-lan-number-one}").replace(
            "  lan: {subnet", "  office-lan-number-one: {subnet"
        ),
        "segments.office-lan-number-one",
        4,
        "segment name 'office-lan-number-one' cannot become a Linux interface name",
        "use at most 15 letters, digits, '-', '_' or '.'",
        id="segment-name-too-long",
    ),
    pytest.param(
        VALID.replace("pc", "'my pc'"),
        "hosts.my pc",
        12,
        "node name 'my pc' cannot name a network namespace",
        "use at most 32 letters, digits, '-', '_' or '.'",
        id="node-name-with-space",
    ),
    pytest.param(
        broken("name: t", "name: 'my lab'"),
        "name",
        1,
        "'my lab' cannot name a lab",
        "use up to 40 lower-case letters, digits, '-', '_' or '.'",
        id="topology-name-with-space",
    ),
    pytest.param(
        broken("  pc: {segment: lan}", "  1234: {segment: lan}"),
        "hosts.1234",
        12,
        "name '1234' is not text: YAML reads it as a number",
        "quote it: '1234'",
        id="name-read-as-number",
    ),
    pytest.param(
        broken("wan: {segment: internet}", "wan: {segment: internet"),
        None,
        8,
        "not valid YAML: expected ',' or '}', but got ':' "
        "(while parsing a flow mapping that starts on line 7)",
        "check the indentation and punctuation from line 7 to line 8",
        id="yaml-unclosed-brace",
    ),
    pytest.param(
        broken("  pc: {segment: lan}", "\tpc: {segment: lan}"),
        None,
        12,
        "not valid YAML: found character '\\t' that cannot start any token",
        "indent with spaces; YAML does not allow tabs",
        id="yaml-tab",
    ),
    pytest.param(
        VALID + "  pc: {segment: internet}\n",
        "hosts",
        13,
        "duplicate key 'pc'",
        "each key may appear once in a mapping",
        id="duplicate-key",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: lan, rol: phone}"),
        "hosts.pc.rol",
        12,
        "unknown field 'rol'",
        "fields allowed here: segment, address, addresses, role",
        id="unknown-field",
    ),
    pytest.param(
        broken("    forwards:", "    stun: {port: 3478, alt: 3479}\n    forwards:"),
        "routers.main.stun.alt",
        9,
        "unknown field 'alt'",
        "fields allowed here: port, alt_port",
        id="unknown-stun-field",
    ),
    pytest.param(
        broken("    wan: {segment: internet}\n", ""),
        "routers.main.wan",
        6,
        "missing required field 'wan'",
        "add 'wan:' under routers.main",
        id="missing-field",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {role: phone}"),
        "hosts.pc.segment",
        12,
        "missing required field 'segment'",
        "add 'segment:' under hosts.pc",
        id="missing-host-segment",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: lan, role: phon}"),
        "hosts.pc.role",
        12,
        "input should be 'plain', 'phone', 'pbx', 'stun-server' or 'turn-server' (got 'phon')",
        "use 'plain', 'phone', 'pbx', 'stun-server' or 'turn-server'",
        id="unknown-role",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: lan, addresses: [10.0.0.5, 10.0.0.x]}"),
        "hosts.pc.addresses[1]",
        12,
        "input is not a valid IPv4 address (got '10.0.0.x')",
        "write a dotted-quad IPv4 address",
        id="bad-address-in-list",
    ),
    pytest.param(
        broken("203.0.113.0/24", "8.8.8.0/24"),
        "segments.internet.subnet",
        3,
        "subnet 8.8.8.0/24 is outside the ranges a lab may use",
        "a documentation range (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24)",
        id="subnet-outside-lab-ranges",
    ),
    pytest.param(
        broken("routers:\n", "routers:\n  back:\n    wan: {segment: lan}\n    lan: {segment: x}\n")
        .replace("wan: {segment: internet}", "wan: {segment: x}")
        .replace("segments:\n", "segments:\n  x: {subnet: 10.9.0.0/24}\n"),
        "routers.back.wan.segment",
        8,
        "routers form a loop: back -> main -> back",
        "a router's WAN must lead towards the internet",
        id="router-loop",
    ),
    pytest.param(
        broken("pc: {segment: lan}", "pc: {segment: internet, role: stun-server, addresses: 1}"),
        "hosts.pc.addresses",
        12,
        "a stun-server needs 2 addresses (RFC 5780 answers from a second address)",
        "write addresses: 2, or leave it out",
        id="stun-server-one-address",
    ),
    pytest.param(
        broken("    forwards:", "    lans: [{segment: internet}]\n    forwards:"),
        "routers.main.lans",
        9,
        "give either lan or lans, not both",
        "list every LAN under lans",
        id="lan-and-lans",
    ),
    pytest.param(
        broken(
            "hosts:\n", "  home:\n    wan: {segment: internet}\n    lan: {segment: lan}\nhosts:\n"
        ),
        "routers.home.lan.segment",
        13,
        "segment 'lan' is already the LAN of router 'main'",
        "give this router its own LAN segment",
        id="two-gateways-on-one-lan",
    ),
]


@pytest.mark.parametrize(("text", "field", "line", "problem", "fix"), CASES)
def test_each_mistake_has_its_own_message(text, field, line, problem, fix):
    with pytest.raises(NatlabError) as caught:
        parse_topology(text, "bad.yaml")
    error = caught.value
    assert (error.file, error.line, error.field) == ("bad.yaml", line, field)
    assert error.problem == problem
    if fix is None:
        assert error.fix is None
    else:
        assert fix in error.fix
    where = f"bad.yaml:{line}: {field}: " if field else f"bad.yaml:{line}: "
    assert str(error).startswith(where + problem)


def test_the_cases_start_from_a_valid_topology():
    """Otherwise a case could fail for a reason other than the one it names."""
    topology = parse_topology(VALID, "good.yaml")
    assert set(topology.nodes) == {"main", "pc"}


def test_the_cases_are_distinct():
    messages = set()
    for case in CASES:
        with pytest.raises(NatlabError) as caught:
            parse_topology(case.values[0], "bad.yaml")
        messages.add(str(caught.value))
    assert len(messages) == len(CASES) >= 14


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("", None, id="empty"),
        pytest.param("- a list\n", 1, id="list"),
        pytest.param("just text\n", 1, id="scalar"),
    ],
)
def test_a_topology_is_a_mapping(text, line):
    with pytest.raises(NatlabError) as caught:
        parse_topology(text, "bad.yaml")
    assert caught.value.line == line
    assert caught.value.problem == (
        "a topology is a YAML mapping with name, segments, routers and hosts"
    )
