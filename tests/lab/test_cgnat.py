"""A carrier-grade NAT from the outside: two homes behind one CGNAT (topologies/cgnat.yaml).

What a subscriber's programs see (STUN answers, from natlab's probe and
from Debian's `stun` client, which natlab did not write), and what the
carrier's NAT logs (`nat events`, `nat show`): a home is seen from its
pool address; each home holds its own port blocks; a burst of new flows
past the blocks is refused and logged with the subscriber, while a flow
that existed goes on; blocks go back when their mappings expire.
One lab for the module, down afterwards with nothing left.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from natlab.lab import Lab
from natlab.lab.build import planned_namespaces
from natlab.plumbing import namespaces
from natlab.records import RouterEvent
from natlab.router.eventlog import read_lines
from natlab.scenario.probe import discover
from natlab.topology import load_topology
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "cgnat.yaml"
FLOWS = Path(__file__).resolve().parent / "tools" / "stun_flows.py"
POOL = {"203.0.113.10", "203.0.113.11"}
STUN = "203.0.113.2"  # stun1, the lab's public STUN server
HOME1, HOME2 = "100.64.0.2", "100.64.0.3"  # the home routers' WANs: the CGNAT's subscribers


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    for tool in ("stun", "turnutils_natdiscovery"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/install.sh"
    topology = load_topology(TOPOLOGY)
    with Lab(topology, unique_lab_name("cgnat")) as running:
        yield running
    left = [n for n in planned_namespaces(topology, running.name) if namespaces.exists(n)]
    assert not left, f"lab {running.name} left namespaces behind: {left}"


def carrier_events(lab: Lab) -> list[RouterEvent]:
    path = lab.router("carrier").events_file
    return [RouterEvent.from_json(json.loads(line)) for line in read_lines(path)]


def subscribers(lab: Lab) -> dict[str, dict]:
    head, _ = lab.router("carrier").show(limit=0)
    assert head.cgnat is not None
    return {s["subscriber"]: s for s in head.cgnat["subscribers"]}


def burst(lab: Lab, phone: str, count: int) -> dict:
    """tools/stun_flows.py in `phone`: a flow kept across a burst of `count` new flows."""
    out = lab.exec(
        phone,
        [sys.executable, str(FLOWS), STUN, str(count)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_home_is_seen_from_its_pool_address_by_a_third_party_client(lab: Lab) -> None:
    out = lab.exec("phone-a", ["stun", "-v", STUN], capture_output=True, text=True, timeout=60)
    mapped = set(re.findall(r"MappedAddress = (\d+\.\d+\.\d+\.\d+):\d+", out.stdout + out.stderr))
    assert mapped and mapped <= POOL, out.stdout + out.stderr
    report = discover(lab, "phone-a", f"{STUN}:3478").to_json()
    public = subscribers(lab)[HOME1]["public"]
    assert report["mapped"].split(":")[0] == public
    assert report["mapping"] == "endpoint-independent"  # NAT444 of two EIM NATs stays EIM


def test_an_rfc5780_client_in_a_home_sees_both_nats_as_one(lab: Lab) -> None:
    """coturn's turnutils_natdiscovery behind home1 (port-restricted) and the carrier (restricted):
    endpoint-independent mapping all the way, the home's stricter filtering."""
    out = lab.exec(
        "phone-a",
        ["turnutils_natdiscovery", "-m", "-f", "-p", "3478", STUN],
        capture_output=True,
        text=True,
        timeout=60,
    )
    verdicts = dict(
        (kind, axis)
        for axis, kind in re.findall(r"^NAT with (.+) (Mapping|Filtering)!$", out.stdout, re.M)
    )
    assert verdicts == {
        "Mapping": "Endpoint Independent",
        "Filtering": "Address and Port Dependent",
    }, out.stdout + out.stderr


def test_each_home_holds_its_own_blocks_and_the_log_says_so(lab: Lab) -> None:
    for phone in ("phone-a", "phone-b"):
        lab.exec(phone, ["stun", STUN], capture_output=True, timeout=60)
    held = subscribers(lab)
    spans = {
        who: {(s["public"], b["first_port"], b["last_port"]) for b in s["blocks"]}
        for who, s in held.items()
    }
    assert set(spans) == {HOME1, HOME2}
    for public, first, last in spans[HOME1]:
        assert all(p != public or end < first or start > last for p, start, end in spans[HOME2])
    allocated = {
        (e.subscriber, e.public, e.first_port, e.last_port)
        for e in carrier_events(lab)
        if e.kind == "port-block-allocated"
    }
    for who, blocks in spans.items():
        assert {(who, *block) for block in blocks} <= allocated


def test_exhaustion_refuses_new_flows_logs_the_subscriber_and_spares_live_flows(lab: Lab) -> None:
    # 2 blocks of 16 ports per subscriber: a burst of 40 new flows from home1 runs past them
    result = burst(lab, "phone-a", 40)
    assert result["before"] and result["after"] == result["before"], result
    assert result["answered"] < 32, result
    refused = [e for e in carrier_events(lab) if e.kind == "exhausted"]
    assert refused and {e.subscriber for e in refused} == {HOME1}
    assert "blocks_per_subscriber 2" in refused[-1].detail
    # home2 is another subscriber: its new flows still go
    assert burst(lab, "phone-b", 5)["answered"] == 5


def test_blocks_go_back_once_their_mappings_expire(lab: Lab) -> None:
    lab.advance_clock(7500)  # past every UDP and TCP timeout of the carrier and the homes
    lab.router("carrier").show(limit=0)  # the daemon sweeps on a show
    released = {e.subscriber for e in carrier_events(lab) if e.kind == "port-block-released"}
    assert {HOME1, HOME2} <= released
    assert burst(lab, "phone-a", 20)["answered"] == 20, "new flows go again once blocks are back"


def test_the_demo_tells_the_call_the_relay_and_the_exhaustion(tmp_path: Path) -> None:
    """`natlab demo cgnat` as a trainer runs it (its own lab, down again afterwards)."""
    done = subprocess.run(
        [sys.executable, "-m", "natlab", "demo", "cgnat"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    told = " ".join(done.stdout.split())
    assert "relay 203.0.113.4" in told  # ICE chose a TURN candidate
    # the burst told in a line: what the carrier mapped into home1's blocks, what it refused
    assert re.search(
        r"carrier: 48 new flows from home1: \d+ mapped to 203\.0\.113\.1[01]:\d+-1055; "
        r"\d+ refused, exhausted: subscriber 100\.64\.0\.2 uses every udp port",
        told,
    )
    assert re.search(
        r"carrier dropped \d+ udp packets 100\.64\.0\.2: \d+ ports from \d+ to \d+ -> "
        r"203\.0\.113\.2:3478 \(outbound, exhausted\)",
        told,
    )  # the step's drops, those of the refused flows in one line
    assert re.search(r"carrier gave subscriber 100\.64\.0\.2 \(home1\) ports 1024-1039 on ", told)
    assert "carrier took back home1's 1 port block (subscriber 100.64.0.2)" in told  # expired
    assert len(done.stdout.splitlines()) < 2000  # a burst no longer prints a table per flow
    assert "no ICE candidate could be gathered" in told  # the call while home1 had no port left
