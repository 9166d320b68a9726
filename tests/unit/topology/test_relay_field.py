"""A PBX's `relay:` policy in a topology: its default, its forms, and mistakes named."""

import pytest

from natlab.errors import NatlabError
from natlab.topology import parse_topology
from tests.unit.topology.test_sip_fields import topology

NAMED = ", sip: {user: '1002'}"  # alice, the phone, registers as 1002


@pytest.mark.parametrize(
    ("given", "policy"),
    [
        ("", "none"),
        (", relay: nat", "nat"),
        (", relay: all", "all"),
        (", relay: remote", "remote"),
        (", relay: ['1002']", frozenset({"1002"})),
        (", relay: '1002'", frozenset({"1002"})),
    ],
)
def test_the_policy_defaults_to_none_and_takes_keywords_or_phones(
    given: str, policy: object
) -> None:
    assert parse_topology(topology(given, NAMED), "t.yaml").hosts["pbx"].relay == policy


@pytest.mark.parametrize(
    ("pbx", "phone", "problem"),
    [
        (", relay: natt", NAMED, "relay names 'natt', which is no phone's SIP user"),
        (", relay: [alice]", NAMED, "relay names 'alice', which is no phone's SIP user"),
        ("", ", relay: nat", "host 'alice' is not a pbx"),
        (", server: kamailio, relay: nat", "", "kamailio relays no media"),
    ],
)
def test_mistakes_name_the_field(pbx: str, phone: str, problem: str) -> None:
    with pytest.raises(NatlabError) as caught:
        parse_topology(topology(pbx, phone), "bad.yaml")
    where = "alice" if "relay" in phone else "pbx"
    assert caught.value.field == f"hosts.{where}.relay" and caught.value.file == "bad.yaml"
    assert caught.value.problem.startswith(problem)
    if "SIP user" in problem:
        assert caught.value.fix == "use one of none, all, remote, nat, or a list of phones: 1002"
