"""A process of the lab killed mid-call, or before `verify`, is reported as died: a fault, exit 3.

Each test runs the natlab command with a private state root, so the only
lab there is its own; it kills (SIGKILL) exactly the process natlab
recorded in that lab's ledger, after checking the PID still is that
process (its start time). "Mid-call" is read from the lab itself: once
branch1 made the UDP mapping of phone-b's STUN request for the call's
candidates (phones ask STUN only when they call), the call is under way,
and it lasts CALL_SECONDS more, far longer than the wait before the kill.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from natlab.endpoints.sip_transport import format_endpoint
from natlab.lab import Lab
from natlab.lab.endpoints import PBX, PHONE, stun_servers
from natlab.lab.ledger import LEDGER, Ledger
from natlab.lab.routers import DAEMON
from natlab.scenario.trace import read_trace

pytestmark = pytest.mark.natlab

CALL_SECONDS = 6
SETTLE = 1.0  # after the call's first STUN mapping: ICE done, RTP flowing; the call goes on
LONG_CALL = """\
name: {name}
topology: main-branch.yaml
nat: {{branch1: full-cone, branch2: full-cone}}
steps:
  - wait-registered: [phone-b, phone-c]
  - call: {{from: phone-b, to: phone-c, seconds: {seconds}}}
    expect: {{media: two-way}}
"""
# port-restricted (branch1) against symmetric (branch2): no media, so two-way fails.
FAILING = """\
name: fails-alike
topology: main-branch.yaml
nat: {branch1: port-restricted, branch2: symmetric}
steps:
  - wait-registered: [phone-b, phone-c]
  - call: {from: phone-b, to: phone-c, seconds: 1}
    expect: {media: two-way}
"""


def _wait(what: str, found, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _the_lab(natlab) -> str:
    """The one lab in the test's private state root, once `natlab run` recorded it."""
    root = natlab.run_dir
    name = _wait(
        "the run's lab",
        lambda: next((p.name for p in root.glob("*") if (p / LEDGER).is_file()), None),
    )
    natlab.labs.append(name)  # the fixture takes it down should the run not
    return name


def _kill(lab: str, node: str, what: str) -> int:
    """SIGKILL the process natlab recorded as `what` on `node` in `lab`; its PID."""
    ledger = Ledger.load(lab)
    assert ledger is not None
    (process,) = [p for p in ledger.processes if p.node == node and p.what == what]
    assert process.alive(), f"{what} of {node} is not running (or its PID is another's)"
    os.kill(process.pid, signal.SIGKILL)
    return process.pid


def _mid_call(lab_name: str) -> None:
    """Return once phone-b's call is under way: branch1 mapped its STUN request."""
    lab = _wait("the lab up", lambda: _attached(lab_name))
    servers = {format_endpoint(server) for server in stun_servers(lab.topology)}

    def stun_mapped() -> bool:
        try:
            events = lab.router("branch1").events().events
        except OSError:
            return False
        return any(
            e.kind == "mapping-created" and e.proto == "udp" and e.remote in servers for e in events
        )

    _wait("phone-b's call to begin", stun_mapped)
    time.sleep(SETTLE)


def _attached(name: str) -> Lab | None:
    ledger = Ledger.load(name)
    return Lab.attach(name) if ledger is not None and ledger.state == "up" else None


@pytest.mark.parametrize(
    ("node", "what", "says"),
    [
        ("branch1", DAEMON, "branch1's NAT daemon died (signal SIGKILL)"),
        ("phone-c", PHONE, "phone-c's phone died (signal SIGKILL)"),
        ("pbx", PBX, "pbx's PBX died (signal SIGKILL)"),
    ],
    ids=["router-daemon", "phone", "pbx"],
)
def test_a_process_killed_mid_call_is_a_fault_that_exits_3(
    private_natlab, tmp_path: Path, monkeypatch, node: str, what: str, says: str
) -> None:
    monkeypatch.setenv("NATLAB_RUN_DIR", str(private_natlab.run_dir))
    scenario = tmp_path / "long-call.yaml"
    scenario.write_text(LONG_CALL.format(name=f"kill-{node}", seconds=CALL_SECONDS))
    report = tmp_path / "r.json"
    run = private_natlab.start("run", str(scenario), "--json-file", str(report), cwd=tmp_path)
    lab = _the_lab(private_natlab)
    _mid_call(lab)
    _kill(lab, node, what)
    out, err = run.communicate(timeout=60)

    assert run.returncode == 3, out + err
    assert says in out
    assert "hears nothing" not in out
    data = json.loads(report.read_text())
    assert (data["verdict"], data["exit_code"]) == ("fault", 3)
    call = data["steps"][1]  # the call step, not an earlier one
    assert (call["verdict"], call["fault"]) == ("fault", says)
    for check in call["checks"]:
        assert "hears nothing" not in check["observed"]
    trace = re.search(r"trace: (\S+\.jsonl)", out)
    assert trace and (tmp_path / trace[1]).is_file()


def test_verify_names_the_router_daemon_that_died_not_the_stun_server(
    private_natlab, main_branch: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NATLAB_RUN_DIR", str(private_natlab.run_dir))
    lab = private_natlab.new_lab()
    up = private_natlab.run("up", str(main_branch), "--name", lab)
    assert up.returncode == 0, up.stdout + up.stderr
    _kill(lab, "branch1", DAEMON)

    verify = private_natlab.run("verify", lab)
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert "router branch1: not verified: branch1's NAT daemon died (" in verify.stdout
    assert "does not answer" not in verify.stdout + verify.stderr
    assert "router branch2 (from phone-c): " in verify.stdout  # the others are still verified


def test_two_failing_runs_side_by_side_keep_two_traces(private_natlab, tmp_path: Path) -> None:
    scenario = tmp_path / "fails.yaml"
    scenario.write_text(FAILING)
    runs = [
        private_natlab.start(
            "run", str(scenario), "--json-file", str(tmp_path / f"{n}.json"), cwd=tmp_path
        )
        for n in range(2)
    ]
    outputs = [run.communicate(timeout=90) for run in runs]
    traces = []
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 1, out + err
        found = re.search(r"trace: (natlab-traces/fails-alike-\d{8}-\d{6}-\S+\.jsonl)", out)
        assert found, out
        traces.append(tmp_path / found[1])
    assert traces[0] != traces[1]
    labs = [read_trace(path)[0].lab for path in traces]  # each its own run's
    assert labs[0] != labs[1]
    reports = [json.loads((tmp_path / f"{n}.json").read_text()) for n in range(2)]
    assert sorted(labs) == sorted(report["lab"] for report in reports)
    assert sorted(str(t.relative_to(tmp_path)) for t in traces) == sorted(
        report["trace"] for report in reports
    )
