"""The story of a stored trace: symmetric (branch1) against port-restricted (branch2), no media.

The records are a real trace's, trimmed: the STUN requests, the ICE checks'
mappings and drops, both phones' reports. The story must name the packet
branch2 really dropped, the reason, and branch1's mapping that made it fail.
"""

import os
import subprocess
import sys
from dataclasses import replace

from natlab.core.events import DropReason
from natlab.records import (
    CallRecord,
    Candidate,
    CandidatesRecord,
    HostInfo,
    IceCheckRecord,
    LabRecord,
    NatRecord,
    RouterInfo,
    RtpRecord,
    StepEnded,
    StepStarted,
    StunRecord,
)
from natlab.scenario.story import tell
from natlab.scenario.trace import write_trace

APD = "address-and-port-dependent"
LAB = LabRecord(
    at=0.0,
    scenario="symmetric-x-port-restricted",
    about="",
    source="matrix/symmetric-x-port-restricted",
    lab="mx-sym-prc-abc123",
    routers={
        "branch1": RouterInfo("203.0.113.2", ["10.1.0.0/24"], "symmetric", APD, APD),
        "branch2": RouterInfo(
            "203.0.113.3", ["10.2.0.0/24"], "port-restricted", "endpoint-independent", APD
        ),
    },
    hosts={
        "phone-b": HostInfo("10.1.0.2", "phone", "branch1"),
        "phone-c": HostInfo("10.2.0.2", "phone", "branch2"),
        "stun1": HostInfo("203.0.113.4", "stun-server", None),
    },
    stun_servers=["203.0.113.4:3478"],
)
B, C = "10.1.0.2:43494", "10.2.0.2:59433"
B_STUN, B_NEW, C_OUT = "203.0.113.2:43494", "203.0.113.2:43497", "203.0.113.3:59433"
STUN = "203.0.113.4:3478"


def mapping(at, router, internal, external, remote):
    return NatRecord(
        at=at,
        clock=100 + at,
        router=router,
        kind="mapping-created",
        proto="udp",
        internal=internal,
        external=external,
        remote=remote,
        detail=f"udp mapping {internal} -> {external} (first sent to {remote})",
    )


def filtered(at, router, reason, src, dst, detail):
    return NatRecord(
        at=at,
        clock=100 + at,
        router=router,
        kind="drop",
        reason=reason,
        direction="inbound",
        proto="udp",
        src=src,
        dst=dst,
        detail=detail,
    )


TO_C = filtered(
    1.5,
    "branch2",
    DropReason.FILTERED_PORT,
    B_NEW,
    C_OUT,
    f"mapping {C} -> {C_OUT} has not sent to {B_NEW} (address-and-port-dependent filtering; "
    f"it sent to {STUN}, {B_STUN})",
)
TRACE = [
    LAB,
    StepStarted(at=0.1, index=0, text="call phone-b -> phone-c"),
    CallRecord(at=0.2, call="c1", caller="phone-b", callee="phone-c", mode="ice",
               verdict="no media", ice="failed", error=None),
    CandidatesRecord(at=0.2, call="c1", phone="phone-b",
                     candidates=[Candidate(B, "host"), Candidate(B_STUN, "srflx")]),
    CandidatesRecord(at=0.2, call="c1", phone="phone-c",
                     candidates=[Candidate(C, "host"), Candidate(C_OUT, "srflx")]),
    IceCheckRecord(at=0.2, call="c1", phone="phone-b", local=B, remote=C_OUT,
                   local_type="host", remote_type="srflx", state="failed"),
    mapping(0.3, "branch1", B, B_STUN, STUN),
    StunRecord(at=0.3, router="branch1", host="phone-b", internal=B, mapped=B_STUN, server=STUN),
    mapping(0.4, "branch2", C, C_OUT, STUN),
    filtered(
        1.0,
        "branch1",
        DropReason.FILTERED_ADDRESS,
        C_OUT,
        B_STUN,
        f"mapping {B} -> {B_STUN} has not sent to 203.0.113.3 (address-and-port-dependent "
        f"filtering; it sent to {STUN})",
    ),
    mapping(1.4, "branch1", B, B_NEW, C_OUT),
    TO_C,
    replace(TO_C, at=1.9),
    RtpRecord(at=3.0, call="c1", sender="phone-b", receiver="phone-c", sent=0, received=0),
    RtpRecord(at=3.0, call="c1", sender="phone-c", receiver="phone-b", sent=0, received=0),
    StepEnded(at=3.1, index=0, text="call phone-b -> phone-c", passed=True),
]  # fmt: skip


def scene(scenes, title):
    return next(s for s in scenes if s.title == title)


def test_the_why_names_the_dropped_packet_the_router_the_reason_and_the_mapping():
    why = scene(tell(TRACE), "why")
    text = "\n".join(why.lines)
    assert f"branch2 dropped 2 udp packets {B_NEW} -> {C_OUT} (inbound, filtered-port)" in text
    assert f"the packet came from branch1's mapping {B} -> {B_NEW}" in text
    assert f"which phone-b got by sending to {C_OUT} (phone-c's srflx candidate)" in text
    assert f"not from {B_STUN}, the address STUN saw and phone-b offered" in text
    assert f"branch1's mapping {B} -> {B_NEW} for a new destination is what made the call" in text


def test_the_why_tells_a_martian_source_drop_with_its_reason():
    forged = filtered(
        2.0,
        "branch2",
        DropReason.MARTIAN_SOURCE,
        "203.0.113.3:5060",
        "203.0.113.3:5060",
        "source 203.0.113.3 is the router's own address: no packet from the WAN can come from "
        "there",
    )
    why = scene(tell([*TRACE[:-3], forged, *TRACE[-3:]]), "why")
    assert (
        "branch2 dropped 1 udp packet 203.0.113.3:5060 -> 203.0.113.3:5060 (inbound, "
        "martian-source): source 203.0.113.3 is the router's own address"
    ) in "\n".join(why.lines)


def test_each_drop_is_told_once_when_it_first_happens_with_its_sender():
    drops = [s for s in tell(TRACE) if s.kind == "drop"]
    assert [s.title for s in drops] == [
        "branch1 DROPPED a packet from phone-c",
        "branch2 DROPPED a packet from phone-b",
    ]
    assert drops[1].lines[0] == (
        f"{B_NEW} (phone-b's mapping on branch1) -> {C_OUT} (phone-c's srflx candidate)"
    )
    assert drops[1].clock == 101.5


def test_mapping_tables_are_rebuilt_from_the_events_at_each_scene():
    scenes = tell(TRACE)
    first = scene(scenes, "branch1: new mapping for phone-b")
    assert [(r.internal, r.external) for r in first.tables["branch1"]] == [(B, B_STUN)]
    assert "branch2" not in first.tables
    last = [s for s in scenes if s.kind == "drop"][-1]
    rows = last.tables["branch1"]
    assert [(r.external, r.for_remote) for r in rows] == [(B_STUN, STUN), (B_NEW, C_OUT)]
    assert [r.for_remote for r in last.tables["branch2"]] == [f"any (first {STUN})"]


def test_the_stun_request_and_the_new_mapping_for_each_destination_are_told():
    lines = [line for s in tell(TRACE) if s.kind == "mapping" for line in s.lines]
    assert f"phone-b sent udp from {B} to {STUN} (STUN server stun1)" in lines
    assert f"a STUN binding request: the server answers that it sees phone-b as {B_STUN}" in lines
    assert (
        f"branch1 created mapping {B} -> {B_NEW} for {C_OUT} only "
        "(symmetric: a new port for each destination)"
    ) in lines


def test_candidates_come_before_the_first_check_and_the_result_after_the_media():
    titles = [s.title for s in tell(TRACE)]
    assert (
        titles.index("candidates offered")
        == titles.index("branch1 DROPPED a packet from phone-c") - 1
    )
    assert (
        titles.index("media: no media")
        < titles.index("why")
        < titles.index("step 1 passed: call phone-b -> phone-c")
    )


def test_expiry_and_reconfiguration_empty_the_tables():
    expired = NatRecord(
        at=2.0,
        clock=250.0,
        router="branch1",
        kind="mapping-expired",
        proto="udp",
        internal=B,
        external=B_STUN,
        expired_at=220.0,
        detail=f"udp mapping {B} -> {B_STUN} expired at 220",
    )
    reconfigured = NatRecord(
        at=2.5,
        clock=250.5,
        router="branch2",
        kind="reconfigured",
        behaviour="full-cone",
        flushed=1,
        detail="behaviour is now full-cone; flushed 1 dynamic mapping(s)",
    )
    scenes = tell(
        [LAB, TRACE[6], TRACE[8], expired, reconfigured, mapping(3, "branch2", C, C_OUT, B_STUN)]
    )
    gone = scene(scenes, "branch1: a mapping expired")
    assert gone.tables == {"branch2": gone.tables["branch2"]}
    assert f"phone-b's udp mapping {B} -> {B_STUN} expired at 220" in gone.lines[0]
    after = scenes[-1]
    assert after.tables["branch2"][0].for_remote == f"any (first {B_STUN})"
    assert "branch2" not in scene(scenes, "branch2: reconfigured").tables  # flushed


def test_telling_twice_tells_the_same_story():
    assert [s.lines for s in tell(TRACE)] == [s.lines for s in tell(TRACE)]


def test_a_file_that_is_not_a_trace_says_so():
    assert tell([TRACE[6]])[0].title == "not a trace"


def explain(*args):
    return subprocess.run(
        [sys.executable, "-m", "natlab", "explain", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_natlab_explain_tells_a_trace_file_scene_by_scene(tmp_path):
    path = write_trace(tmp_path / "t.jsonl", TRACE)
    told = explain(str(path))
    assert told.returncode == 0, told.stderr
    assert "[9/12] branch2 DROPPED a packet from phone-b" in told.stdout
    assert f"branch1's mapping {B} -> {B_NEW} for a new destination" in told.stdout


def test_natlab_explain_of_a_missing_file_exits_2(tmp_path):
    told = explain(str(tmp_path / "none.jsonl"))
    assert told.returncode == 2
    assert "no such trace file" in told.stderr


def test_the_sip_alg_s_media_rewrites_are_scenes_of_their_router():
    rewritten = NatRecord(
        at=2.0,
        clock=102.0,
        router="branch2",
        kind="sip-rewritten",
        direction="outbound",
        proto="udp",
        src=C_OUT,
        dst=STUN,
        header="SDP c=",
        old="IN IP4 10.2.0.2",
        new="IN IP4 203.0.113.3",
        detail="SIP ALG rewrote SDP c= (outbound): IN IP4 10.2.0.2 -> IN IP4 203.0.113.3",
    )
    contact = replace(rewritten, header="Contact", detail="SIP ALG rewrote Contact")
    scenes = tell([LAB, rewritten, contact])
    assert scene(scenes, "branch2: SIP ALG").lines == [rewritten.detail]
    assert [s.lines for s in scenes].count([contact.detail]) == 0, "signalling: in nat events"
