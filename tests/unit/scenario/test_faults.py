"""A lab process that dies is a fault, never a NAT result (no root: fake labs, real children).

The tester's cases: a router daemon, a phone or the PBX SIGKILLed mid-call
read "one-way (callee hears nothing)" with NAT drops as the reason, and
`verify` blamed the STUN server when a router daemon had died.
"""

from __future__ import annotations

import json
import os
import signal
import xml.etree.ElementTree as ET
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from natlab.core.events import DropReason
from natlab.errors import NatlabError
from natlab.lab.endpoints import PBX, PHONE, STUN_SERVER, TURN_SERVER
from natlab.lab.processes import Death, death, record
from natlab.lab.routers import DAEMON
from natlab.records import (
    CallRecord,
    CallReport,
    HostInfo,
    LabRecord,
    NatRecord,
    ProbeReport,
    RouterInfo,
    RtpCounts,
    RtpRecord,
    StepEnded,
)
from natlab.render import matrix_table, pair_line, scenario_table, step_line
from natlab.scenario import runner, verify
from natlab.scenario.expectations import Check
from natlab.scenario.explain import explain_call
from natlab.scenario.html import matrix_html, run_html
from natlab.scenario.matrix import MatrixResult, _pair_result, pair_scenario
from natlab.scenario.model import AdvanceClock, Call, Scenario
from natlab.scenario.reports import write_junit
from natlab.scenario.runner import ScenarioResult, StepResult, run_scenario
from natlab.scenario.story import tell
from natlab.scenario.trace import call_records, keep_trace, read_trace
from natlab.scenario.verdict import (
    ERROR,
    FAILED,
    FAULT,
    LABELS,
    PASSED,
    THIRD_PARTY,
    describe,
    exit_code,
    step_verdict,
    worst,
)
from natlab.topology import load_topology

MAIN_BRANCH = Path(__file__).resolve().parents[3] / "topologies" / "main-branch.yaml"
DAEMON_KILLED = Death("branch1", DAEMON, 4242, signal="SIGKILL")
PBX_KILLED = Death("pbx", PBX, 4243, signal="SIGKILL")
PHONE_KILLED = Death("phone-c", PHONE, 4244, signal="SIGKILL")
COTURN_EXITED = Death("turn1", TURN_SERVER, 4245, code=1)

# What the caller reported when the PBX died mid-call: 306 packets came in, its bye went
# unanswered, so the callee's counts never came back and the phone guessed the rest.
LOST_PEER = CallReport(
    call="phone-b-1-abc",
    caller="phone-b",
    callee="phone-c",
    mode="ice",
    role="caller",
    started_at=1.0,
    verdict="one-way (callee hears nothing)",
    error="the other phone's RTP counts never came back",
    rtp=RtpCounts(310, 306),
)


# -- the verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "checks", "deaths", "verdict"),
    [
        (None, [True, True], [], PASSED),
        (None, [True, False], [], FAILED),
        ("phone-b: no answer", [], [], ERROR),
        (None, [True], [DAEMON_KILLED], FAULT),  # even a step whose checks held
        (None, [False], [PBX_KILLED], FAULT),
        ("phone-b: no answer", [False], [PHONE_KILLED], FAULT),
    ],
)
def test_a_step_with_a_dead_lab_process_is_a_fault_whatever_it_observed(
    error, checks, deaths, verdict
):
    assert step_verdict(error, checks, deaths) == verdict


def test_a_fault_outranks_every_other_verdict_and_exits_3_for_natlab_2_for_coturn():
    assert worst([PASSED, FAILED, FAULT, ERROR]) == FAULT
    assert worst([PASSED, FAILED]) == FAILED
    assert worst([]) == PASSED
    assert exit_code(PASSED) == 0
    assert exit_code(FAILED) == exit_code(ERROR) == 1
    assert exit_code(FAULT, [DAEMON_KILLED]) == 3
    assert exit_code(FAULT, [PHONE_KILLED, COTURN_EXITED]) == 3
    assert exit_code(FAULT, [COTURN_EXITED]) == 2  # the environment's process, not natlab's


def test_a_death_names_the_node_the_process_and_how_it_ended():
    assert describe(DAEMON_KILLED) == "branch1's NAT daemon died (signal SIGKILL)"
    assert describe(PBX_KILLED) == "pbx's PBX died (signal SIGKILL)"
    assert describe(COTURN_EXITED) == "turn1's TURN server (coturn) died (exit 1)"
    unknown = Death("branch1", DAEMON, 7)
    assert describe(unknown) == (
        "branch1's NAT daemon died (exit status unknown: another process started it)"
    )


def test_the_labels_are_the_names_the_lab_records_its_processes_under():
    assert set(LABELS) == {DAEMON, PBX, PHONE, STUN_SERVER, TURN_SERVER}
    assert {TURN_SERVER} == THIRD_PARTY


# -- liveness of processes the lab started -----------------------------------------------------


def _child(then: int | None) -> tuple[int, int]:
    """A child that waits for a byte, then exits with `then` (None: SIGKILLs itself); (pid, fd)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(write)
        os.read(read, 1)
        if then is None:
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(then)
    os.close(read)
    return pid, write


def _end(write: int, pid: int) -> None:
    """Let the child go and wait until it is a zombie, without collecting its status."""
    os.write(write, b"x")
    os.close(write)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def test_our_child_killed_by_a_signal_or_exiting_is_a_death_with_its_status():
    pid, write = _child(None)
    killed = record(pid, "branch1", DAEMON)
    assert death(killed) is None  # still running
    _end(write, pid)
    assert death(killed) == Death("branch1", DAEMON, pid, signal="SIGKILL")
    assert death(killed) == Death("branch1", DAEMON, pid, signal="SIGKILL")  # kept once collected

    pid, write = _child(7)
    exited = record(pid, "pbx", PBX)
    _end(write, pid)
    assert death(exited) == Death("pbx", PBX, pid, code=7)


def test_a_process_gone_that_is_not_ours_to_wait_for_is_dead_with_no_status():
    pid, write = _child(0)
    gone = record(pid, "phone-c", PHONE)
    _end(write, pid)
    os.waitpid(pid, 0)  # collected elsewhere, as the parent of another process's lab would
    assert death(gone) == Death("phone-c", PHONE, pid)


# -- a run: the fault is the step's and the run's verdict ------------------------------------


@dataclass
class FakeLab:
    """What the runner asks of a lab: its topology, router events, and which processes died."""

    topology: object
    name: str = "fake"
    dead: list[Death] = field(default_factory=list)
    dies_at: int = 0  # the number of deaths() calls after which `dead` is reported
    calls: int = 0

    def up(self) -> None:
        pass

    def down(self) -> None:
        pass

    def deaths(self) -> list[Death]:
        self.calls += 1
        return list(self.dead) if self.calls > self.dies_at else []

    answer: CallReport | Exception | None = None  # what a phone's call() gives

    def advance_clock(self, seconds: float) -> dict:
        return {}

    def phone(self, name: str) -> FakePhone:
        return FakePhone(self.answer)


@dataclass
class FakePhone:
    answer: CallReport | Exception | None

    def call(self, to: str, seconds: float, mode: str, *timing: float | None) -> CallReport:
        if isinstance(self.answer, Exception):
            raise self.answer
        assert self.answer is not None
        return self.answer


TOPOLOGY = SimpleNamespace(routers={}, hosts={})
CALL = Call("phone-b", "phone-c", 5.0, "ice", media="two-way")


def _run(monkeypatch, lab: FakeLab, answer, steps=(CALL,)) -> ScenarioResult:
    monkeypatch.setattr(runner, "Lab", lambda topology, name: lab)
    lab.answer = answer
    return run_scenario(Scenario("fault", "fault.yaml", TOPOLOGY, tuple(steps)), "fault-abc")


def test_the_pbx_dying_mid_call_is_a_fault_and_the_lost_counts_unknown_not_callee_deaf(
    monkeypatch,
):
    result = _run(monkeypatch, FakeLab(TOPOLOGY, dead=[PBX_KILLED]), LOST_PEER)
    (step,) = result.steps
    assert step.verdict == result.verdict == FAULT
    assert step.fault == "pbx's PBX died (signal SIGKILL)"
    (media,) = step.checks
    assert media.observed == "unknown (the other phone's RTP counts never came back)"
    assert "hears nothing" not in json.dumps(result.as_json()["steps"][0]["checks"])
    assert result.exit_code == 3
    data = result.as_json()
    assert (data["verdict"], data["exit_code"], data["passed"]) == (FAULT, 3, False)
    assert data["steps"][0]["fault"] == "pbx's PBX died (signal SIGKILL)"
    assert data["steps"][0]["deaths"] == [
        {"node": "pbx", "what": "pbx", "pid": 4243, "code": None, "signal": "SIGKILL", "log": None}
    ]


def test_lost_counts_with_every_process_alive_are_unknown_and_fail_the_expectation(monkeypatch):
    result = _run(monkeypatch, FakeLab(TOPOLOGY), LOST_PEER)
    assert result.verdict == FAILED and result.exit_code == 1
    assert result.steps[0].checks[0].observed.startswith("unknown")


def test_a_caller_that_cannot_report_is_unknown_and_its_death_the_fault(monkeypatch):
    lost = NatlabError("phone-b does not answer on its control socket")
    result = _run(
        monkeypatch, FakeLab(TOPOLOGY, dead=[Death("phone-b", PHONE, 9, signal="SIGKILL")]), lost
    )
    (step,) = result.steps
    assert step.verdict == FAULT and step.report is None
    assert step.checks == [
        Check(
            "media",
            "two-way",
            "unknown (no report: phone-b: phone-b does not answer on its control socket)",
            False,
        )
    ]
    assert step.fault == "phone-b's phone died (signal SIGKILL)"


def test_a_fault_stops_the_scenario_at_the_step_it_happened_in(monkeypatch):
    steps = (AdvanceClock(10), AdvanceClock(20), AdvanceClock(30))
    lab = FakeLab(TOPOLOGY, dead=[DAEMON_KILLED], dies_at=1)
    result = _run(monkeypatch, lab, None, steps)
    assert [step.verdict for step in result.steps] == [PASSED, FAULT]
    assert result.verdict == FAULT and result.exit_code == 3


def _faulted() -> ScenarioResult:
    good = StepResult(0, "wait until phone-b, phone-c registered", 4, seconds=0.1)
    call = StepResult(
        1,
        "call phone-b -> phone-c, 1 s (ice)",
        5,
        [
            Check(
                "media", "two-way", "unknown (the other phone's RTP counts never came back)", False
            )
        ],
        explanation=["branch2 dropped 7 udp packets (inbound, filtered-port)"],
        call_report=LOST_PEER,
        deaths=[DAEMON_KILLED],
        seconds=9.0,
    )
    return ScenarioResult("fault", "f.yaml", "fault-abc", [good, call], seconds=12.0)


def test_reports_for_people_and_machines_say_fault_and_name_the_dead_daemon(tmp_path):
    result = _faulted()
    console = Console(width=200, record=True)
    console.print(scenario_table(result))
    console.print(step_line(result.steps[1]))
    text = console.export_text()
    assert "FAULT" in text and "branch1's NAT daemon died (signal SIGKILL)" in text

    write_junit(tmp_path / "r.xml", result)
    cases = ET.parse(tmp_path / "r.xml").getroot().iter("testcase")
    outcome = [case.find("error") for case in cases][1]
    assert outcome.get("type") == "fault"
    assert outcome.get("message").startswith("branch1's NAT daemon died (signal SIGKILL)")

    html = run_html(result, [])
    assert 'class="fault-text">FAULT<' in html
    assert "branch1&#x27;s NAT daemon died (signal SIGKILL)" in html


# -- the matrix: a fault is its own cell, not a NAT pair gone wrong ----------------------------


def _pair(caller: str, callee: str, result: ScenarioResult):
    future: Future = Future()
    future.set_result(result)
    return _pair_result(caller, callee, False, pair_scenario(caller, callee), future)


def _called(verdict: str, expected: str) -> ScenarioResult:
    report = CallReport(
        "c1", "phone-b", "phone-c", "ice", "caller", verdict=verdict,
        rtp=RtpCounts(50, 50), peer_rtp=RtpCounts(50, 50),
    )  # fmt: skip
    checks = [Check("media", expected, verdict, verdict == expected)]
    return ScenarioResult("x", "x", "x", [StepResult(1, "call", 5, checks, call_report=report)])


def test_a_faulted_pair_is_a_fault_cell_not_counted_as_the_nat_behaving_wrongly(tmp_path):
    faulted = _pair("full-cone", "full-cone", _faulted())
    assert (faulted.observed, faulted.verdict) == (FAULT, FAULT)
    assert faulted.explanation[0] == (
        "call phone-b -> phone-c, 1 s (ice): branch1's NAT daemon died (signal SIGKILL): "
        "what the phones and routers saw after that is not a NAT result"
    )
    wrong = _pair("symmetric", "symmetric", _called("two-way", "none"))
    assert wrong.verdict == FAILED
    fine = [
        _pair("full-cone", "symmetric", _called("two-way", "two-way")),
        _pair("symmetric", "full-cone", _called("two-way", "two-way")),
    ]
    assert [pair.verdict for pair in fine] == [PASSED, PASSED]

    types = ("full-cone", "symmetric")
    matrix = MatrixResult(types, False, 1, [faulted, fine[0], fine[1], wrong], 30.0)
    assert matrix.wrong == [wrong] and matrix.faults == [faulted]
    assert matrix.verdict == FAULT and matrix.exit_code == 3
    only_wrong = MatrixResult(types, False, 1, [fine[0], fine[0], fine[1], wrong], 30.0)
    assert only_wrong.exit_code == 1

    table = matrix_table(matrix)
    assert "1 not as expected" in table.title
    assert "1 not judged: a lab process died (fault)" in table.title
    console = Console(width=250, record=True)
    console.print(table)
    console.print(pair_line(faulted))
    text = console.export_text()
    assert "│   fault   │" in text
    assert "FAULT  full-cone x full-cone: fault: branch1's NAT daemon died (signal SIGKILL)" in text

    data = matrix.as_json()
    assert (data["verdict"], data["exit_code"]) == (FAULT, 3)
    first = data["pairs"][0]
    assert (first["verdict"], first["observed"]) == (FAULT, FAULT)
    assert first["fault"] == "branch1's NAT daemon died (signal SIGKILL)"
    write_junit(tmp_path / "m.xml", matrix)
    suite = ET.parse(tmp_path / "m.xml").getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    assert suite.find("testcase/error").get("type") == "fault"
    assert 'class="cell fault"' in matrix_html(matrix)


# -- explain: the story says what died, and blames no NAT for it ------------------------------

LAB_RECORD = LabRecord(
    at=0.0,
    scenario="fault",
    about="",
    source="f.yaml",
    lab="fault-abc",
    routers={
        "branch2": RouterInfo(
            "203.0.113.3",
            ["10.2.0.0/24"],
            "port-restricted",
            "endpoint-independent",
            "address-and-port-dependent",
        )
    },
    hosts={"phone-c": HostInfo("10.2.0.2", "phone", "branch2")},
    stun_servers=[],
)


def test_explain_tells_the_fault_and_no_why_for_a_call_a_dead_process_cut_short():
    drop = NatRecord(
        at=1.0,
        clock=101.0,
        router="branch2",
        kind="drop",
        reason=DropReason.FILTERED_PORT,
        direction="inbound",
        proto="udp",
        src="203.0.113.2:4000",
        dst="203.0.113.3:5000",
        detail="mapping 10.2.0.2:5000 -> 203.0.113.3:5000 has not sent to 203.0.113.2",
    )
    call = CallRecord(
        at=0.5,
        call="c1",
        caller="phone-b",
        callee="phone-c",
        mode="ice",
        verdict="unknown",
        error="the other phone's RTP counts never came back",
        fault="branch1's NAT daemon died (signal SIGKILL)",
    )
    rtp = [
        RtpRecord(at=2.0, call="c1", sender=a, receiver=b, sent=9, received=0)
        for a, b in (("phone-b", "phone-c"), ("phone-c", "phone-b"))
    ]
    end = StepEnded(
        at=3.0,
        index=0,
        text="call phone-b -> phone-c",
        verdict=FAULT,
        passed=False,
        fault="branch1's NAT daemon died (signal SIGKILL)",
    )
    scenes = tell([LAB_RECORD, call, drop, *rtp, end])
    assert not [scene for scene in scenes if scene.kind == "why"]
    media = next(scene for scene in scenes if scene.title.startswith("media"))
    assert media.title == "media: fault (branch1's NAT daemon died (signal SIGKILL))"
    assert scenes[-1].title == "step 1 FAULT: call phone-b -> phone-c"
    assert scenes[-1].lines[0].startswith("branch1's NAT daemon died (signal SIGKILL): ")


# -- verify: a dead router daemon is named, not the STUN server --------------------------------


@dataclass
class VerifyLab:
    topology: object
    dead: list[Death]
    name: str = "verify"
    dataplane: object = field(default_factory=lambda: SimpleNamespace(translates=lambda r: True))

    def deaths(self) -> list[Death]:
        return list(self.dead)


def test_verify_names_the_dead_daemon_and_still_checks_the_other_routers(monkeypatch):
    topology = load_topology(MAIN_BRANCH)
    probed = []

    def probe(lab, host, address):
        probed.append(host)
        return ProbeReport(
            server=address,
            local="10.0.0.9:1",
            mapped="203.0.113.9:1",
            other=None,
            mapping="endpoint-independent",
            filtering="address-and-port-dependent",
            hairpin=True,
            lifetime=None,
            name="port-restricted",
        )

    monkeypatch.setattr(verify, "discover", probe)
    results = verify.verify(VerifyLab(topology, [DAEMON_KILLED]))
    by_router = {result.router: result for result in results}
    assert by_router["branch1"].fault == "branch1's NAT daemon died (signal SIGKILL)"
    assert not by_router["branch1"].checks
    assert all(by_router[r].fault is None for r in by_router if r != "branch1")
    assert len(probed) == len(results) - 1  # branch1 was not probed


def test_verify_tells_a_daemon_that_died_during_the_probe_from_a_silent_server(monkeypatch):
    topology = load_topology(MAIN_BRANCH)
    silent = NatlabError("probe failed: the STUN server 203.0.113.4:3478 does not answer")
    lab = VerifyLab(topology, [])

    def dying(lab_, host, address):  # every router's daemon dies while the probe waits
        lab.dead = [Death(router, DAEMON, 1, signal="SIGKILL") for router in topology.routers]
        raise silent

    monkeypatch.setattr(verify, "discover", dying)
    results = verify.verify(lab)
    assert [r.fault for r in results] == [
        f"{router}'s NAT daemon died (signal SIGKILL)" for router in topology.routers
    ]

    def quiet(lab_, host, address):
        raise silent

    monkeypatch.setattr(verify, "discover", quiet)
    with pytest.raises(NatlabError) as raised:  # everything runs: the server is silent
        verify.verify(VerifyLab(topology, []))
    assert raised.value is silent


# -- traces of failed runs: a file of their own each ------------------------------------------


def test_failed_runs_keep_their_traces_in_files_of_their_own_even_in_the_same_second(tmp_path):
    base = tmp_path / "natlab-traces" / "symmetric-fails.jsonl"
    first = keep_trace(base, [LAB_RECORD], now=1_700_000_000.0)
    second = keep_trace(base, [replace(LAB_RECORD, lab="other")], now=1_700_000_000.0)
    assert first != second
    assert first.parent == second.parent == base.parent
    assert first.name.startswith("symmetric-fails-2023") and first.name.endswith(
        f"-{os.getpid()}.jsonl"
    )
    assert read_trace(first)[0].lab == "fault-abc"
    assert read_trace(second)[0].lab == "other"
    assert not base.exists()


def test_counts_that_never_came_back_read_as_unknown_not_as_nothing_received():
    assert explain_call(LOST_PEER, {})[0] == (
        "RTP phone-b -> phone-c: 310 sent, ? received; phone-c -> phone-b: ? sent, 306 received "
        "(0 lost, 0 late, jitter 0 ms)"
    )
    rtp = [r for r in call_records(LOST_PEER, None) if isinstance(r, RtpRecord)]
    assert [(r.sent, r.received) for r in rtp] == [(310, None), (None, 306)]
