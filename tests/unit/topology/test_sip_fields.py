"""A phone's `sip:` account and a PBX's `nat_aware`: defaults, and mistakes named."""

import pytest

from natlab.endpoints.sip_dialogs import DEFAULT_PASSWORD
from natlab.errors import NatlabError
from natlab.topology import parse_topology
from natlab.topology.model import SipAccount

TOPOLOGY = """\
name: t
segments:
  lan: {subnet: 10.0.0.0/24}
hosts:
  pbx: {segment: lan, role: pbx PBX}
  alice: {segment: lan, role: phone PHONE}
"""


def topology(pbx: str = "", phone: str = "") -> str:
    return TOPOLOGY.replace(" PBX", pbx).replace(" PHONE", phone)


def test_defaults_are_the_host_name_the_default_password_and_a_nat_aware_pbx() -> None:
    parsed = parse_topology(topology(), "t.yaml")
    assert parsed.hosts["alice"].sip is None and parsed.hosts["pbx"].nat_aware is True
    given = parse_topology(
        topology(", nat_aware: false", ", sip: {password: s3cret, keepalive: options}"), "t.yaml"
    )
    assert given.hosts["pbx"].nat_aware is False
    assert given.hosts["alice"].sip == SipAccount("alice", "s3cret", "options")
    user = parse_topology(topology(phone=", sip: {user: '1001'}"), "t.yaml")
    assert user.hosts["alice"].sip == SipAccount("1001", DEFAULT_PASSWORD)
    assert user.hosts["alice"].sip.transport is None  # the phone's own default


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_a_phone_s_transport_is_kept(transport: str) -> None:
    parsed = parse_topology(topology(phone=f", sip: {{transport: {transport}}}"), "t.yaml")
    assert parsed.hosts["alice"].sip == SipAccount("alice", DEFAULT_PASSWORD, "auto", transport)


@pytest.mark.parametrize(
    ("pbx", "phone", "field", "problem"),
    [
        ("", ", sip: {user: 'a b'}", "hosts.alice.sip.user", "'a b' cannot be a SIP user"),
        (", sip: {user: x}", "", "hosts.pbx.sip", "host 'pbx' is not a phone"),
        ("", ", nat_aware: false", "hosts.alice.nat_aware", "host 'alice' is not a pbx"),
        ("", ", sip: {keepalive: stun}", "hosts.alice.sip.keepalive", None),
        ("", ", sip: {transport: sctp}", "hosts.alice.sip.transport", "input should be 'tcp'"),
        ("", ", sip: {transport: TCP}", "hosts.alice.sip.transport", "input should be 'tcp'"),
        (", sip: {transport: tcp}", "", "hosts.pbx.sip", "host 'pbx' is not a phone"),
    ],
)
def test_mistakes_name_the_field(pbx: str, phone: str, field: str, problem: str | None) -> None:
    with pytest.raises(NatlabError) as caught:
        parse_topology(topology(pbx, phone), "bad.yaml")
    assert caught.value.field == field and caught.value.file == "bad.yaml"
    assert caught.value.fix
    if problem is not None:
        assert caught.value.problem.startswith(problem)
