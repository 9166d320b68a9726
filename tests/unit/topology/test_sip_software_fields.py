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
    ],
)
def test_a_wrong_agent_or_server_names_file_field_and_fix(old, new, field, problem, fix):
    with pytest.raises(NatlabError) as caught:
        parse_topology(VALID.replace(old, new), "t.yaml")
    error = caught.value
    assert error.file == "t.yaml"
    assert error.field == field
    assert problem in error.problem
    assert fix in (error.fix or "")
