"""A real call between symmetric (branch1) and port-restricted (branch2): its trace and its story.

The explanation must name the packet branch2 really dropped (its addresses
as the router logged them), the reason, and the mapping of branch1 that the
packet came from, the one made for a new destination.
"""

import subprocess
import sys

import pytest

from natlab.core.events import DropReason
from natlab.lab.build import planned_namespaces
from natlab.plumbing import namespaces
from natlab.records import CandidatesRecord, NatRecord
from natlab.scenario.matrix import pair_scenario
from natlab.scenario.story import tell
from natlab.scenario.trace import read_trace, run_traced
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab


def test_symmetric_against_port_restricted_names_the_drop_and_the_mapping(tmp_path):
    scenario = pair_scenario("symmetric", "port-restricted")
    lab = unique_lab_name("tx-sym-prc")
    path = tmp_path / "sym-prc.jsonl"
    result = run_traced(scenario, lab, path)
    assert not [n for n in planned_namespaces(scenario.topology, lab) if namespaces.exists(n)]
    assert result.passed  # the call had no media, as the reference says
    records = read_trace(path)
    assert [r.at for r in records[1:]] == sorted(r.at for r in records[1:])

    # the real drop, as branch2 logged it: phone-b's packet from a mapping made for phone-c
    nats = [r for r in records if isinstance(r, NatRecord)]
    made = {r.external: r for r in nats if r.kind == "mapping-created"}
    drops = [
        r
        for r in nats
        if r.kind == "drop" and r.router == "branch2" and r.reason is DropReason.FILTERED_PORT
    ]
    assert drops, "branch2 filtered none of phone-b's checks"
    drop = drops[0]
    culprit = made[drop.src]
    assert culprit.router == "branch1" and culprit.internal.startswith("10.1.0.2:")
    assert culprit.remote == drop.dst  # made for phone-c's srflx address
    offered = [
        c.address
        for r in records
        if isinstance(r, CandidatesRecord) and r.phone == "phone-b"
        for c in r.candidates
        if c.type == "srflx"
    ]
    assert offered, f"no srflx candidate of phone-b in the trace: {records}"
    offered = offered[0]
    assert offered != drop.src

    why = "\n".join(next(s for s in tell(records) if s.title == "why").lines)
    assert f"{drop.src} -> {drop.dst} (inbound, filtered-port)" in why
    assert f"the packet came from branch1's mapping {culprit.internal} -> {culprit.external}" in why
    assert f"not from {offered}, the address STUN saw and phone-b offered" in why
    assert "for a new destination is what made the call fail" in why

    told = subprocess.run(
        [sys.executable, "-m", "natlab", "explain", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert "branch2 DROPPED a packet from phone-b" in told
    assert culprit.external in told
