"""Traces: records from the phones' reports and the routers' events, merged and read back."""

import json

import pytest

from natlab.errors import NatlabError
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

CALLER = {
    "call": "c1",
    "caller": "phone-b",
    "callee": "phone-c",
    "mode": "ice",
    "started_at": 10.0,
    "ended_at": 12.0,
    "verdict": "one-way (caller hears nothing)",
    "ice": "completed",
    "error": None,
    "selected_pair": {
        "local": {"type": "prflx", "address": "203.0.113.2:5001", "base": "10.1.0.2:5000"},
        "remote": {"type": "srflx", "address": "203.0.113.3:6000"},
    },
    "checks": [
        {"local": "10.1.0.2:5000", "remote": "10.2.0.2:6000", "local_type": "host",
         "remote_type": "host", "state": "failed"},
        {"local": "10.1.0.2:5000", "remote": "203.0.113.3:6000", "local_type": "host",
         "remote_type": "srflx", "state": "succeeded"},
    ],
    "rtp": {"sent": 50, "received": 3},
    "peer_rtp": {"sent": 50, "received": 48},
}  # fmt: skip
CALLEE = {
    **CALLER,
    "selected_pair": None,
    "checks": [
        {"local": "10.2.0.2:6000", "remote": "203.0.113.2:5000", "local_type": "host",
         "remote_type": "srflx", "state": "failed"},
    ],
}  # fmt: skip


def test_a_call_gives_each_side_its_candidates_checks_and_each_direction_its_rtp():
    records = call_records(CALLER, CALLEE)
    kinds = [r["type"] for r in records]
    caller_side = ["candidates", "ice-check", "ice-check"]
    assert kinds == ["call", *caller_side, "candidates", "ice-check", "rtp", "rtp"]
    # phone-b's srflx candidate is where phone-c's checks went; its own checks show only its host
    assert records[1]["candidates"] == [
        {"address": "10.1.0.2:5000", "type": "host"},
        {"address": "203.0.113.2:5000", "type": "srflx"},
        {"address": "203.0.113.2:5001", "type": "prflx"},
    ]
    assert [r["selected"] for r in records if r["type"] == "ice-check"] == [False, True, False]
    flows = {(r["sender"], r["receiver"]): (r["sent"], r["received"]) for r in records[-2:]}
    assert flows == {("phone-b", "phone-c"): (50, 48), ("phone-c", "phone-b"): (50, 3)}
    assert records[-1]["at"] == 12.0 and records[0]["at"] == 10.0


def test_without_the_callees_report_only_the_caller_side_is_told():
    records = call_records(CALLER, None)
    assert [r["phone"] for r in records if r["type"] == "candidates"] == ["phone-b"]


LAB = trace.lab_record(pair_scenario("symmetric", "port-restricted"), "mx-lab", 1.0)


def test_the_lab_record_names_each_hosts_router_and_each_routers_nat():
    assert LAB["routers"]["branch1"]["nat"] == "symmetric"
    assert LAB["routers"]["branch2"]["filtering"] == "address-and-port-dependent"
    assert LAB["hosts"]["phone-b"] == {"address": "10.1.0.2", "role": "phone", "router": "branch1"}
    assert LAB["hosts"]["stun1"]["router"] is None
    assert LAB["stun_servers"] == ["203.0.113.4:3478", "203.0.113.1:3478"]


def nat(kind, at, **fields):
    return {"type": "nat", "kind": kind, "at": at, "router": "branch1", **fields}


def test_a_mapping_towards_a_stun_server_is_a_stun_exchange_and_no_other_is():
    to_stun = nat("mapping-created", 2.0, internal="10.1.0.2:5000", external="203.0.113.2:5000",
                  remote="203.0.113.4:3478")  # fmt: skip
    to_peer = {**to_stun, "remote": "203.0.113.3:6000", "external": "203.0.113.2:5001"}
    assert stun_records([LAB, to_stun, to_peer], LAB) == [
        {"type": "stun", "at": 2.0, "router": "branch1", "host": "phone-b",
         "internal": "10.1.0.2:5000", "mapped": "203.0.113.2:5000", "server": "203.0.113.4:3478"}
    ]  # fmt: skip


def test_merged_puts_the_lab_first_then_time_order_keeping_ties_as_recorded():
    a, b, c = nat("drop", 3.0), nat("mapping-created", 2.0), nat("flushed", 2.0)
    assert merged([a, b, {**LAB, "at": 5.0}, c]) == [{**LAB, "at": 5.0}, b, c, a]


def test_a_trace_reads_back_what_was_written(tmp_path):
    records = [LAB, nat("drop", 3.0, reason="no-mapping")]
    path = write_trace(tmp_path / "deep" / "t.jsonl", records)
    assert read_trace(path) == records


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json\n", "not a trace"), ('{"at": 1}\n', "not a trace record"), ("[1]\n", "record")],
)
def test_a_broken_trace_is_a_natlab_error_naming_the_line(tmp_path, text, problem):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(LAB) + "\n" + text)
    with pytest.raises(NatlabError) as raised:
        read_trace(path)
    assert problem in raised.value.problem and raised.value.line == 2


def test_a_missing_trace_is_a_natlab_error(tmp_path):
    with pytest.raises(NatlabError, match="no such trace file"):
        read_trace(tmp_path / "none.jsonl")


class FakeLab:
    """Routers answering at monotonic time 100 s, each ahead by its `clock advance` offset."""

    def __init__(self, events, offsets):
        self.events, self.offsets = events, offsets

    def nat_events(self, router):
        return self.events[router]

    def nat(self, router, request):
        assert request == {"op": "clock"}
        return {"clock": 100.0 + self.offsets[router], "offset": self.offsets[router]}


@pytest.fixture
def clocks(monkeypatch):
    """The recorder reads its clocks half a second after the routers answered (a busy machine):
    wall 1000.5 s, monotonic 100.5 s."""
    monkeypatch.setattr(trace.time, "time", lambda: 1000.5)
    monkeypatch.setattr(trace.time, "monotonic", lambda: 100.5)


def test_router_events_are_placed_on_the_wall_clock_and_read_once(clocks):
    scenario = pair_scenario("symmetric", "port-restricted")
    recorder = Recorder(scenario, "mx-lab")
    made = {"at": 98.0, "kind": "mapping-created", "router": "branch1"}
    recorder.lab = FakeLab({"main": [], "branch1": [made], "branch2": []},
                           {"main": 0.0, "branch1": 0.0, "branch2": 0.0})  # fmt: skip
    recorder.progress(scenario.steps[0].describe(), None)
    recorder.progress(scenario.steps[0].describe(), StepResult(0, "wait", None))
    nats = [r for r in recorder.records if r["type"] == "nat"]
    # 2 s before the routers answered, exactly: the lateness of the reading does not count
    assert nats == [{**made, "type": "nat", "clock": 98.0, "at": 998.0}]
    steps = [(r["phase"], r["index"]) for r in recorder.records if r["type"] == "step"]
    assert steps == [("start", 0), ("end", 0)]


def test_events_read_across_a_clock_advance_are_placed_from_the_clock_after_them(clocks):
    scenario = pair_scenario("symmetric", "port-restricted")
    recorder = Recorder(scenario, "mx-lab")
    events = {"main": [], "branch1": [], "branch2": []}
    recorder.lab = FakeLab(events, {"main": 0.0, "branch1": 0.0, "branch2": 0.0})
    recorder.progress(scenario.steps[0].describe(), None)
    recorder.lab.offsets["branch1"] = 31.0  # clock advance 31s during the step
    events["branch1"].append({"at": 130.5, "kind": "expired", "router": "branch1"})
    recorder.progress(scenario.steps[0].describe(), StepResult(0, "wait", None))
    [expired] = [r for r in recorder.records if r["type"] == "nat"]
    # placed from the clock the router answered, late by the reading's delay
    assert (expired["clock"], expired["at"]) == (130.5, 1000.0)


def test_messages_that_are_not_a_step_start_record_nothing(monkeypatch):
    recorder = Recorder(pair_scenario("symmetric", "port-restricted"), "mx-lab")
    recorder.lab = FakeLab({}, {})
    recorder.progress("bringing lab mx-lab up", None)
    recorder.progress("taking lab mx-lab down", None)
    assert [r["type"] for r in recorder.records] == ["lab"]
