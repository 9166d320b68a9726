"""A PBX's `relay:` policy in a topology: its default, its forms, and mistakes named."""

import pytest

from natlab.errors import NatlabError
from natlab.topology import parse_topology

TOPOLOGY = """\
name: t
segments:
  lan: {subnet: 10.0.0.0/24}
hosts:
  pbx: {segment: lan, role: pbx PBX}
  alice: {segment: lan, role: phone PHONE}
  bob: {segment: lan, role: phone, sip: {user: '1002'}}
"""


def topology(pbx: str = "", phone: str = "") -> str:
    return TOPOLOGY.replace(" PBX", pbx).replace(" PHONE", phone)


@pytest.mark.parametrize(
    ("given", "policy"),
    [
        ("", "none"),
        (", relay: nat", "nat"),
        (", relay: all", "all"),
        (", relay: remote", "remote"),
        (", relay: [alice, '1002']", frozenset({"alice", "1002"})),
        (", relay: alice", frozenset({"alice"})),
    ],
)
def test_the_policy_defaults_to_none_and_takes_keywords_or_phones(
    given: str, policy: object
) -> None:
    assert parse_topology(topology(given), "t.yaml").hosts["pbx"].relay == policy


@pytest.mark.parametrize(
    ("pbx", "phone", "problem"),
    [
        (", relay: natt", "", "relay names 'natt', which is no phone's SIP user"),
        (", relay: [bob]", "", "relay names 'bob', which is no phone's SIP user"),
        ("", ", relay: nat", "host 'alice' is not a pbx"),
        (", server: kamailio, relay: nat", "", "kamailio relays no media"),
    ],
)
def test_mistakes_name_the_field(pbx: str, phone: str, problem: str) -> None:
    with pytest.raises(NatlabError) as caught:
        parse_topology(topology(pbx, phone), "bad.yaml")
    where = "alice" if phone else "pbx"
    assert caught.value.field == f"hosts.{where}.relay" and caught.value.file == "bad.yaml"
    assert caught.value.problem.startswith(problem)
    if "SIP user" in caught.value.problem:
        assert (
            caught.value.fix
            == "use one of none, all, remote, nat, or a list of phones: 1002, alice"
        )
