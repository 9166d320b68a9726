"""A phone's `agent:` and a PBX's `server:`: what they accept, and a clear message for the rest."""

from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.topology import parse_topology

EXAMPLE = Path(__file__).parents[3] / "examples" / "sip-softphones" / "topology.yaml"
VALID = EXAMPLE.read_text() + "  carol: {segment: lan-b, role: phone}\n"


def test_agent_and_server_are_kept_on_their_hosts():
    topology = parse_topology(VALID, "t.yaml")
    assert topology.hosts["pbx"].server == "kamailio"
    assert topology.hosts["pbx"].sip_software == "kamailio"
    assert topology.hosts["alice"].agent == "baresip"
    assert topology.hosts["alice"].sip_software == "baresip"
    assert topology.hosts["carol"].sip_software is None  # natlab's own phone


@pytest.mark.parametrize(
    ("old", "new", "field", "problem", "fix"),
    [
        (
            "agent: baresip}",
            "agent: linphone}",
            "hosts.alice.agent",
            "unknown agent 'linphone'",
            "use one of: baresip",
        ),
        (
            "server: kamailio}",
            "server: asterisk}",
            "hosts.pbx.server",
            "unknown server 'asterisk'",
            "use one of: kamailio",
        ),
        (
            "role: pbx, server: kamailio}",
            "role: phone, server: kamailio}",
            "hosts.pbx.server",
            "host 'pbx' is not a pbx: server: names the pbx's SIP program",
            "give the host role: pbx",
        ),
        (
            "role: phone, agent: baresip}",
            "agent: baresip}",
            "hosts.alice.agent",
            "host 'alice' is not a phone: agent: names the phone's SIP program",
            "give the host role: phone",
        ),
        (
            "agent: baresip}",
            "agent: baresip, run: baresip}",
            "hosts.alice.agent",
            "has both agent: and run:",
            "leave out run:",
        ),
        (
            "agent: baresip}",
            "agent: baresip, sip: {transport: tls}}",
            "hosts.alice.sip.transport",
            "natlab runs baresip over udp or tcp only, not tls",
            "use transport: udp or tcp, or leave out agent: to run natlab's phone",
        ),
        (  # natlab's own phone speaks TLS, but the registrar here does not
            "carol: {segment: lan-b, role: phone}",
            "carol: {segment: lan-b, role: phone, sip: {transport: tls}}",
            "hosts.carol.sip.transport",
            "kamailio here serves SIP over UDP and TCP only, not TLS",
            "use transport: tcp or udp, or leave out the PBX's server:",
        ),
    ],
)
def test_a_wrong_agent_server_or_transport_names_file_field_and_fix(old, new, field, problem, fix):
    with pytest.raises(NatlabError) as caught:
        parse_topology(VALID.replace(old, new, 1), "t.yaml")
    error = caught.value
    assert error.file == "t.yaml"
    assert error.field == field
    assert problem in error.problem
    assert fix in (error.fix or "")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_takes_udp_or_tcp(transport):
    text = VALID.replace("agent: baresip}", f"agent: baresip, sip: {{transport: {transport}}}}}", 1)
    topology = parse_topology(text, "t.yaml")
    assert topology.hosts["alice"].sip.transport == transport
    assert topology.hosts["bob"].sip is None  # UDP, baresip's default


def test_natlab_s_phone_takes_tls_with_natlab_s_pbx():
    text = VALID.replace(", server: kamailio}", "}").replace(
        "role: phone}", "role: phone, sip: {transport: tls}}"
    )
    assert parse_topology(text, "t.yaml").hosts["carol"].sip.transport == "tls"
