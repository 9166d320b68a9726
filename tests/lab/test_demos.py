"""`natlab demo` end to end, as a trainer runs it: from any directory, lab up, story, lab gone.

The story must name what the lesson is about (the drop that broke the
call, the hairpin and then its drop), and no namespace of the demo's lab
may be left behind.
"""

import re
import subprocess
import sys

import pytest

from natlab.lab.build import planned_namespaces
from natlab.plumbing import namespaces
from natlab.scenario.demos import demo_scenario

pytestmark = pytest.mark.natlab


def demo(name: str, cwd) -> str:
    """The demo's output, one space between words (the story wraps at the terminal's width)."""
    done = subprocess.run(
        [sys.executable, "-m", "natlab", "demo", name],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    told = " ".join(done.stdout.split())
    lab = re.search(r"\[1/\d+\] the lab (\S+)", told)
    assert lab, f"the story does not start with the lab: {told[:500]}"
    left = [
        n for n in planned_namespaces(demo_scenario(name).topology, lab[1]) if namespaces.exists(n)
    ]
    assert not left, f"namespaces left behind: {left}"
    return told


def test_symmetric_fails_names_the_drop_and_the_mapping(tmp_path):
    told = demo("symmetric-fails", tmp_path)
    assert "media: no media" in told
    assert re.search(r"branch1 DROPPED a packet from phone-c .* \(inbound, filtered-port\)", told)
    assert "the packet came from branch2's mapping" in told
    assert "for a new destination is what made the call fail" in told


def test_hairpin_turns_media_back_inside_then_drops_it_when_off(tmp_path):
    told = demo("hairpin", tmp_path)
    on, off = told.split("behaviour is now full-cone with hairpin=off")
    assert "office: hairpin" in on and "office turned it back inside to 10.0.0." in on
    assert "media: two-way" in on and "DROPPED" not in on
    assert "office: hairpin" not in off
    assert re.search(r"office DROPPED a packet from desk-\d .* \(outbound, hairpin-off\)", off)
    assert "media: no media" in off


def test_sip_alg_rewrite_works_broken_is_one_way_and_tls_or_no_alg_lets_the_pbx_relay(tmp_path):
    """The PBX relays for phones it sees behind NAT (relay: nat): never through an ALG.

    Relaying every call would make the broken ALG's call two-way, relaying none would
    leave the TLS call and the one without ALG one-way: either fails this test.
    """
    told = demo("sip-alg", tmp_path)
    steps = re.split(r"step \d passed: ", told)
    rewrite, broken, tls, off = steps[3], steps[4], steps[6], steps[7]
    assert re.search(r"SIP ALG opened a udp pinhole 203\.0\.113\.2:\d+ -> 192\.168\.1\.2", told)
    assert "media: expected two-way, observed two-way" in rewrite
    neither = "the PBX did not relay the media: neither {} nor phone-c looked behind NAT"
    assert neither.format("phone-a") in rewrite
    assert "SIP ALG rewrote SDP c= (outbound): IN IP4 192.168.2.2 -> IN IP4 203.0.113.3" in told
    assert "observed one-way (caller hears nothing)" in broken
    assert neither.format("phone-b") in broken
    assert re.search(r"home-b DROPPED a packet from phone-c .* \(inbound, no-mapping\)", told)
    assert "media: expected two-way, observed two-way" in tls
    assert (
        "the PBX relayed the media: phone-b is behind NAT: Contact 192.168.2.2, "
        "seen from 203.0.113.3" in tls
    )
    assert "media: expected two-way, observed two-way" in off
    assert (
        "the PBX relayed the media: phone-d is behind NAT: Contact 192.168.3.2, "
        "seen from 203.0.113.4" in off
    )
