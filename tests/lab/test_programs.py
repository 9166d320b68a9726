"""Users' own programs in nodes, and every way they can misbehave: nothing may leak.

Each test runs the natlab command with a private state root and a small
topology of its own. After `down` the host must be exactly as before (no
namespace, no state) and every process the test saw (each program, what it
left behind, its supervisor) must be gone, checked by PID and start time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from natlab.lab.ledger import Ledger
from natlab.lab.processes import PROGRAM, SUPERVISOR, ProcessRecord, start_time

pytestmark = pytest.mark.natlab

LOG_CAP = 10 * 1024 * 1024
FLOOD = 30_000_000
TOPOLOGY = """\
name: {name}
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.77.0.0/24}}
routers:
  edge:
    wan: {{segment: internet}}
    lan: {{segment: lan}}
    stun: true
hosts:
  stun1: {{segment: internet, role: stun-server, addresses: 2}}
{hosts}
"""
HOSTS = """\
  waiter: {segment: lan, run: "sh -c 'env | grep ^NATLAB_ | sort; sleep 600 & echo child $!; wait'"}
  quitter: {segment: internet, run: [sh, -c, "echo bye; exit 3"]}
  flood: {segment: internet, run: "head -c 30000000 /dev/zero"}
  garbage: {segment: lan, run: [sh, -c, "printf 'caf\\\\351 \\\\377\\\\376\\\\n'"]}
  stubborn: {segment: lan, run: "sh -c 'trap \\"\\" TERM; sleep 600 & echo child $!; wait; wait'"}
"""


def write_topology(folder: Path, name: str, hosts: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TOPOLOGY.format(name=name, hosts=hosts))
    return path


def lab_name(natlab) -> str:
    name = natlab.new_lab()[:20] + "-pg"
    natlab.labs.append(name)
    return name


def ledger_processes(natlab, lab: str) -> list[ProcessRecord]:
    os.environ["NATLAB_RUN_DIR"], saved = str(natlab.run_dir), os.environ.get("NATLAB_RUN_DIR")
    try:
        ledger = Ledger.load(lab)
    finally:
        if saved is None:
            del os.environ["NATLAB_RUN_DIR"]
        else:
            os.environ["NATLAB_RUN_DIR"] = saved
    assert ledger is not None
    return ledger.processes


def status_nodes(natlab, lab: str) -> dict[str, dict]:
    done = natlab.run("status", lab, "--json")
    assert done.returncode == 0, done.stderr
    (described,) = json.loads(done.stdout)["labs"]
    return {node["name"]: node for node in described["nodes"]}


def children(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"^child (\d+)$", log.read_text(), re.MULTILINE)]


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def gone(pids_and_starts: list[tuple[int, int | None]]) -> list[int]:
    """The PIDs still running as the same process (same start time): none, after down."""
    return [pid for pid, start in pids_and_starts if start is not None and start_time(pid) == start]


def test_programs_run_report_and_leave_nothing_behind(private_natlab, host_state, tmp_path):
    natlab = private_natlab
    lab = lab_name(natlab)
    before = host_state.now()
    up = natlab.run("up", str(write_topology(tmp_path, lab, HOSTS)), "--name", lab)
    assert up.returncode == 0, up.stderr
    nodes_dir = natlab.run_dir / lab / "nodes"

    # exits at once; floods (capped, never blocked: it ends by itself); non-UTF-8 output
    def settled():
        nodes = status_nodes(natlab, lab)
        return (
            nodes
            if all(
                nodes[n]["program"]["state"] == "exited" for n in ("quitter", "flood", "garbage")
            )
            else None
        )

    nodes = wait_for(settled)
    assert nodes["quitter"]["program"]["code"] == 3
    flood = nodes["flood"]["program"]
    assert flood["code"] == 0 and flood["log_dropped"] == FLOOD - LOG_CAP
    assert LOG_CAP <= (nodes_dir / "flood.log").stat().st_size < LOG_CAP + 1000
    assert b"[natlab: log cut at 10485760 bytes" in (nodes_dir / "flood.log").read_bytes()
    assert b"caf\xe9 \xff\xfe\n" in (nodes_dir / "garbage.log").read_bytes()
    assert nodes["waiter"]["program"]["state"] == "running"
    assert nodes["waiter"]["program"]["log"] == str(nodes_dir / "waiter.log")
    natlab.env["COLUMNS"] = "250"  # one table row per line
    shown = natlab.run("status", lab)
    assert "exited 3" in shown.stdout and "running (pid" in shown.stdout

    # the environment describes the lab
    waiter_log = nodes_dir / "waiter.log"
    wait_for(lambda: children(waiter_log))
    env = dict(re.findall(r"^(NATLAB_\w+)=(.*)$", waiter_log.read_text(), re.MULTILINE))
    assert env["NATLAB_LAB"] == lab and env["NATLAB_NODE"] == "waiter"
    assert env["NATLAB_ADDR"] == env["NATLAB_ADDR_WAITER"] == "10.77.0.2"
    assert env["NATLAB_ADDR_QUITTER"].startswith("203.0.113.")
    assert env["NATLAB_STUN"] == f"{env['NATLAB_ADDR_STUN1']}:3478,{env['NATLAB_ADDR_EDGE']}:3478"

    # everything that must be gone after down: programs, what they left, supervisors
    wait_for(lambda: children(nodes_dir / "stubborn.log"))
    seen = [
        (r.pid, r.start) for r in ledger_processes(natlab, lab) if r.what in (PROGRAM, SUPERVISOR)
    ]
    left = children(waiter_log) + children(nodes_dir / "stubborn.log")
    seen += [(pid, start_time(pid)) for pid in left]
    assert len(gone(seen)) >= 6  # waiter, stubborn, their children, their supervisors
    started = time.monotonic()
    down = natlab.run("down", lab)
    took = time.monotonic() - started
    assert down.returncode == 0, down.stderr
    assert 5.0 <= took < 30  # stubborn ignored SIGTERM: SIGKILL after the 5 s grace
    assert gone(seen) == []
    before.assert_same(host_state.now(), [lab])


def test_a_command_not_found_stops_up_before_anything_is_built(
    private_natlab, host_state, tmp_path
):
    natlab = private_natlab
    lab = lab_name(natlab)
    before = host_state.now()
    hosts = "  a: {segment: lan, run: 'no-such-program-natlab --x'}\n"
    up = natlab.run("up", str(write_topology(tmp_path, lab, hosts)), "--name", lab)
    assert up.returncode == 2, up.stderr
    assert (
        "hosts.a.run" in up.stderr and "'no-such-program-natlab' is not found in PATH" in up.stderr
    )
    assert "Traceback" not in up.stderr
    before.assert_same(host_state.now(), [lab])


def test_down_after_the_supervisor_died_still_ends_the_program_and_its_group(
    private_natlab, host_state, tmp_path
):
    """natlab's own supervisor SIGKILLed: the program lives on, orphaned; `down` finds it."""
    natlab = private_natlab
    lab = lab_name(natlab)
    before = host_state.now()
    hosts = "  a: {segment: lan, run: \"sh -c 'sleep 600 & echo child $!; wait'\"}\n"
    up = natlab.run("up", str(write_topology(tmp_path, lab, hosts)), "--name", lab)
    assert up.returncode == 0, up.stderr
    log = natlab.run_dir / lab / "nodes" / "a.log"
    (child,) = wait_for(lambda: children(log))
    records = ledger_processes(natlab, lab)
    (supervisor,) = [r for r in records if r.what == SUPERVISOR]
    (program,) = [r for r in records if r.what == PROGRAM]
    assert supervisor.alive()
    os.kill(supervisor.pid, signal.SIGKILL)
    wait_for(lambda: not supervisor.alive())
    assert program.alive()
    assert status_nodes(natlab, lab)["a"]["program"]["state"] == "unknown"
    down = natlab.run("down", lab)
    assert down.returncode == 0, down.stderr
    assert gone([(program.pid, program.start), (child, start_time(child) or program.start)]) == []
    assert not program.alive()
    before.assert_same(host_state.now(), [lab])


# a UDP packet from the internet to the router's WAN address: no mapping lets it in
SEND = "import os, socket; socket.socket(2, 2).sendto(b'x', (os.environ['NATLAB_ADDR_EDGE'], 4000))"
SCENARIO = """\
name: programs
topology: {topology}
steps:
  - start: {{node: a, peer: b, role: a, timeout: 9,
      run: "sh -c 'echo role=$NATLAB_ROLE peer=$NATLAB_PEER; ls -ld $NATLAB_SHARED; sleep 99'"}}
  - exec: {{node: b, run: [python3, -c, "{send}"], timeout: 10}}
  - exec: {{node: b, run: [sh, -c, "printf 'caf\\\\351\\\\n'; exit 1"], timeout: 10}}
    expect: {{exit: 1, output: "caf"}}
  - exec: {{node: b, run: "sh -c 'sleep 600 & echo child $!; wait'", timeout: 1}}
  - wait: {{node: a, within: 1}}
  - start: {{node: a, run: "sh -c 'exit 5'"}}
  - wait: {{node: a, exit: 5, within: 10}}
  - start: {{node: a, run: "sleep 600"}}
  - stop: a
  - exec: {{node: b, run: "no-such-program-natlab"}}
"""


def test_program_steps_report_and_leave_nothing_behind(private_natlab, host_state, tmp_path):
    natlab = private_natlab
    before = host_state.now()
    hosts = "  a: {segment: lan}\n  b: {segment: internet}\n"
    topology = write_topology(tmp_path, "progsteps", hosts)
    scenario = tmp_path / "programs.yaml"
    scenario.write_text(SCENARIO.format(topology=topology.name, send=SEND))
    report = tmp_path / "report.json"
    done = natlab.run(
        "run", str(scenario), "--json-file", str(report), "--trace", str(tmp_path / "t.jsonl")
    )
    assert done.returncode == 1, done.stderr
    steps = json.loads(report.read_text())["steps"]
    natlab.labs.append(json.loads(report.read_text())["lab"])
    verdicts = [s["verdict"] for s in steps]
    expected = ["passed"] * 3 + ["failed"] * 2 + ["passed"] * 4 + ["error"]
    assert verdicts == expected, [(s["checks"], s["error"]) for s in steps]
    started = steps[0]["report"]["program"]
    assert "role=a peer=b" in started["output"]
    assert re.search(r"^drwxrwxrwx", started["output"], re.MULTILINE)  # the pair's shared folder
    # the router dropped the unsolicited packet, and the step says so
    assert steps[1]["drops"] and any("edge dropped" in line for line in steps[1]["explanation"])
    assert steps[2]["report"]["program"]["output"].endswith("caf\ufffd\n")
    hung = steps[3]["checks"][0]["observed"]
    assert hung.startswith("timeout: still running after 1 s, killed by SIGTERM")
    (child,) = [int(p) for p in re.findall(r"child (\d+)", steps[3]["report"]["program"]["output"])]
    assert start_time(child) is None  # its group was ended with it
    assert steps[4]["checks"][0]["observed"].startswith("timeout: still running after 1 s")
    assert steps[8]["report"]["program"]["state"] == "killed"
    assert "'no-such-program-natlab' is not found in PATH" in steps[9]["error"]
    explained = natlab.run("explain", str(tmp_path / "t.jsonl"))
    assert "caf\ufffd" in explained.stdout and "killed by SIGTERM" in explained.stdout
    before.assert_same(host_state.now(), [json.loads(report.read_text())["lab"]])
