"""Traces: records from the phones' reports and the routers' events, merged and read back."""

import json
from dataclasses import replace

import pytest

from natlab.core.events import DropReason
from natlab.errors import NatlabError
from natlab.lab.clients import EventBatch, EventPosition
from natlab.records import (
    TRACE_VERSION,
    CallReport,
    Candidate,
    CandidatesRecord,
    HostInfo,
    IceCheck,
    IceCheckRecord,
    NatRecord,
    RouterClock,
    RouterEvent,
    RtpCounts,
    RtpRecord,
    SelectedPair,
    StepEnded,
    StepStarted,
    StunRecord,
)
from natlab.scenario import trace
from natlab.scenario.matrix import pair_scenario
from natlab.scenario.runner import StepResult
from natlab.scenario.trace import (
    Recorder,
    call_records,
    merged,
    read_trace,
    stun_records,
    write_trace,
)

CALLER = CallReport(
    call="c1",
    caller="phone-b",
    callee="phone-c",
    mode="ice",
    role="caller",
    started_at=10.0,
    ended_at=12.0,
    verdict="one-way (caller hears nothing)",
    ice="completed",
    selected_pair=SelectedPair(
        Candidate("203.0.113.2:5001", "prflx", base="10.1.0.2:5000"),
        Candidate("203.0.113.3:6000", "srflx"),
    ),
    checks=[
        IceCheck("10.1.0.2:5000", "10.2.0.2:6000", "host", "host", "failed"),
        IceCheck("10.1.0.2:5000", "203.0.113.3:6000", "host", "srflx", "succeeded"),
    ],
    rtp=RtpCounts(50, 3),
    peer_rtp=RtpCounts(50, 48),
)
CALLEE = replace(
    CALLER,
    role="callee",
    selected_pair=None,
    checks=[IceCheck("10.2.0.2:6000", "203.0.113.2:5000", "host", "srflx", "failed")],
)


def test_a_call_gives_each_side_its_candidates_checks_and_each_direction_its_rtp():
    records = call_records(CALLER, CALLEE)
    kinds = [r.type for r in records]
    caller_side = ["candidates", "ice-check", "ice-check"]
    assert kinds == ["call", *caller_side, "candidates", "ice-check", "rtp", "rtp"]
    # phone-b's srflx candidate is where phone-c's checks went; its own checks show only its host
    assert records[1].candidates == [
        Candidate("10.1.0.2:5000", "host"),
        Candidate("203.0.113.2:5000", "srflx"),
        Candidate("203.0.113.2:5001", "prflx"),
    ]
    assert [r.selected for r in records if isinstance(r, IceCheckRecord)] == [False, True, False]
    flows = {(r.sender, r.receiver): (r.sent, r.received) for r in records[-2:]}
    assert flows == {("phone-b", "phone-c"): (50, 48), ("phone-c", "phone-b"): (50, 3)}
    assert records[-1].at == 12.0 and records[0].at == 10.0


def test_without_the_callees_report_only_the_caller_side_is_told():
    records = call_records(CALLER, None)
    assert [r.phone for r in records if isinstance(r, CandidatesRecord)] == ["phone-b"]


def test_counts_the_callee_never_sent_back_are_unknown_and_the_trace_reads_back(tmp_path):
    lost = replace(CALLER, peer_rtp=None)
    rtp = [r for r in call_records(lost, None) if isinstance(r, RtpRecord)]
    assert [(r.sent, r.received) for r in rtp] == [(50, None), (None, 3)]
    # such a trace was written with "?" counts, which its own reader then refused
    path = write_trace(tmp_path / "t.jsonl", [LAB, *call_records(lost, None)])
    assert read_trace(path)[-1] == rtp[-1]


LAB = trace.lab_record(pair_scenario("symmetric", "port-restricted"), "mx-lab", 1.0)


def test_the_lab_record_names_each_hosts_router_and_each_routers_nat():
    assert LAB.routers["branch1"].nat == "symmetric"
    assert LAB.routers["branch2"].filtering == "address-and-port-dependent"
    assert LAB.hosts["phone-b"] == HostInfo("10.1.0.2", "phone", "branch1")
    assert LAB.hosts["stun1"].router is None
    assert LAB.stun_servers == ["203.0.113.4:3478", "203.0.113.1:3478"]
    assert LAB.to_json()["v"] == TRACE_VERSION


def nat(kind, at, **fields):
    return NatRecord(kind=kind, at=at, router="branch1", **fields)


def test_a_mapping_towards_a_stun_server_is_a_stun_exchange_and_no_other_is():
    to_stun = nat("mapping-created", 2.0, proto="udp", internal="10.1.0.2:5000",
                  external="203.0.113.2:5000", remote="203.0.113.4:3478")  # fmt: skip
    to_peer = replace(to_stun, remote="203.0.113.3:6000", external="203.0.113.2:5001")
    assert stun_records([LAB, to_stun, to_peer], LAB) == [
        StunRecord(at=2.0, router="branch1", host="phone-b", internal="10.1.0.2:5000",
                   mapped="203.0.113.2:5000", server="203.0.113.4:3478")
    ]  # fmt: skip


def test_merged_puts_the_lab_first_then_time_order_keeping_ties_as_recorded():
    a = nat("drop", 3.0, reason=DropReason.NO_MAPPING)
    b = nat("flushed", 2.0, count=0)
    c = nat("flushed", 2.0, count=1)
    late = replace(LAB, at=5.0)
    assert merged([a, b, late, c]) == [late, b, c, a]


def test_a_trace_reads_back_what_was_written(tmp_path):
    records = [LAB, nat("drop", 3.0, reason=DropReason.NO_MAPPING, clock=1.5)]
    path = write_trace(tmp_path / "deep" / "t.jsonl", records)
    assert read_trace(path) == records


def test_a_trace_of_a_newer_version_is_refused_naming_the_version(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**LAB.to_json(), "v": TRACE_VERSION + 1}) + "\n")
    with pytest.raises(NatlabError, match=f"written in version {TRACE_VERSION + 1}") as raised:
        read_trace(path)
    assert raised.value.line == 1 and "newer" in raised.value.fix


def test_a_trace_written_before_versions_reads_as_version_1(tmp_path):
    old = {key: value for key, value in LAB.to_json().items() if key != "v"}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(old) + "\n")
    assert read_trace(path) == [LAB]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json\n", "not a trace"), ('{"at": 1}\n', "not a trace record"), ("[1]\n", "record")],
)
def test_a_broken_trace_is_a_natlab_error_naming_the_line(tmp_path, text, problem):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(LAB.to_json()) + "\n" + text)
    with pytest.raises(NatlabError) as raised:
        read_trace(path)
    assert problem in raised.value.problem and raised.value.line == 2


def test_a_missing_trace_is_a_natlab_error(tmp_path):
    with pytest.raises(NatlabError, match="no such trace file"):
        read_trace(tmp_path / "none.jsonl")


class FakeRouter:
    """A router answering at monotonic time 100 s, ahead by its `clock advance` offset.

    Its events are a list; a position is how many of them were read.
    """

    def __init__(self, lab, name):
        self.lab, self.name = lab, name

    def events(self, since=None):
        events = self.lab.events[self.name]
        start = since.offset if since else 0
        self.lab.reads.append((self.name, start))
        return EventBatch(events[start:], EventPosition(1, len(events)))

    def clock(self):
        offset = self.lab.offsets[self.name]
        return RouterClock(clock=100.0 + offset, offset=offset)


class FakeLab:
    def __init__(self, events, offsets):
        self.events, self.offsets, self.reads = events, offsets, []

    def router(self, name):
        return FakeRouter(self, name)


@pytest.fixture
def clocks(monkeypatch):
    """The recorder reads its clocks half a second after the routers answered (a busy machine):
    wall 1000.5 s, monotonic 100.5 s."""
    monkeypatch.setattr(trace.time, "time", lambda: 1000.5)
    monkeypatch.setattr(trace.time, "monotonic", lambda: 100.5)


def test_router_events_are_placed_on_the_wall_clock_and_read_once(clocks):
    scenario = pair_scenario("symmetric", "port-restricted")
    recorder = Recorder(scenario, "mx-lab")
    made = RouterEvent(at=98.0, kind="flushed", router="branch1", count=0)
    lab = FakeLab({"main": [], "branch1": [made], "branch2": []},
                  {"main": 0.0, "branch1": 0.0, "branch2": 0.0})  # fmt: skip
    recorder.lab_up(lab)
    recorder.step_started(0, scenario.steps[0])
    recorder.step_ended(StepResult(0, "wait", None))
    nats = [r for r in recorder.records if isinstance(r, NatRecord)]
    # 2 s before the routers answered, exactly: the lateness of the reading does not count
    assert nats == [NatRecord.placed(made, 998.0)]
    assert (nats[0].clock, nats[0].at) == (98.0, 998.0)
    steps = [(type(r), r.index) for r in recorder.records if isinstance(r, StepStarted | StepEnded)]
    assert steps == [(StepStarted, 0), (StepEnded, 0)]
    # the second read went on from where the first stopped
    assert [start for name, start in lab.reads if name == "branch1"] == [0, 1]


def test_events_read_across_a_clock_advance_are_placed_from_the_clock_after_them(clocks):
    scenario = pair_scenario("symmetric", "port-restricted")
    recorder = Recorder(scenario, "mx-lab")
    events = {"main": [], "branch1": [], "branch2": []}
    lab = FakeLab(events, {"main": 0.0, "branch1": 0.0, "branch2": 0.0})
    recorder.lab_up(lab)
    recorder.step_started(0, scenario.steps[0])
    lab.offsets["branch1"] = 31.0  # clock advance 31s during the step
    events["branch1"].append(RouterEvent(at=130.5, kind="flushed", router="branch1", count=0))
    recorder.step_ended(StepResult(0, "wait", None))
    [flushed] = [r for r in recorder.records if isinstance(r, NatRecord)]
    # placed from the clock the router answered, late by the reading's delay
    assert (flushed.clock, flushed.at) == (130.5, 1000.0)


def test_a_step_that_ended_with_a_call_records_both_phones_reports(clocks):
    scenario = pair_scenario("symmetric", "port-restricted")
    recorder = Recorder(scenario, "mx-lab")
    lab = FakeLab({"main": [], "branch1": [], "branch2": []},
                  {"main": 0.0, "branch1": 0.0, "branch2": 0.0})  # fmt: skip

    class Phone:
        def reports(self):
            return [CALLEE]

    lab.phone = lambda name: Phone()
    recorder.lab_up(lab)
    recorder.step_ended(StepResult(0, "call", None, call_report=CALLER))
    phones = [r.phone for r in recorder.records if isinstance(r, CandidatesRecord)]
    assert phones == ["phone-b", "phone-c"]
    assert isinstance(recorder.records[-1], StepEnded)


def test_each_phones_sip_messages_are_sip_records_the_story_and_the_ladder_tell():
    from natlab.records import SipRecord, SipSeen
    from natlab.scenario.html import ladder_svg
    from natlab.scenario.story import tell

    invite = SipSeen(
        CALLER.started_at + 0.01,
        "sent",
        "INVITE",
        "SIP/2.0/UDP 10.1.0.2:5060;branch=z9hG4bK1;rport",
        "sip:phone-b@10.1.0.2:5060",
        "10.1.0.2:4000, ICE with 3 candidates",
    )
    ringing = SipSeen(CALLER.started_at + 0.02, "received", "180 Ringing")
    records = call_records(replace(CALLER, signalling=[invite, ringing]), CALLEE)
    sip = [r for r in records if isinstance(r, SipRecord)]
    assert [(r.phone, r.direction, r.summary) for r in sip] == [
        ("phone-b", "sent", "INVITE"),
        ("phone-b", "received", "180 Ringing"),
    ]
    story = tell(trace.merged([LAB, *records]))
    [scene] = [s for s in story if s.title == "SIP phone-b -> pbx: INVITE"]
    assert "Contact sip:phone-b@10.1.0.2:5060" in scene.lines
    assert "SDP 10.1.0.2:4000, ICE with 3 candidates" in scene.lines
    assert "SIP 180 Ringing (Call-ID" in ladder_svg(trace.merged([LAB, *records]))
