"""The supervisor of a user's program: its capped log, and how it ends a program's group.

The log's arithmetic is pure (CappedLog); the rest runs the supervisor for
real on small shell programs, in this machine's own namespace (no root).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from natlab.lab.processes import start_time
from natlab.lab.supervise import CappedLog, ended

CAP = 1024 * 1024
SUPERVISE = """
import json, sys
from pathlib import Path
from natlab.lab.supervise import SupervisorConfig, run
c = json.loads(sys.argv[1])
sys.exit(run(SupervisorConfig(tuple(c["argv"]), c["env"], Path(c["status"]), c["cap"], c["grace"])))
"""


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(0, 2000), st.integers(0, 500))
def test_the_log_keeps_the_first_cap_bytes_and_counts_the_rest(chunks, cap, already):
    out: list[bytes] = []
    log = CappedLog(out.append, cap, written=already)
    for chunk in chunks:
        log.add(chunk)
    total = sum(map(len, chunks))
    kept = max(min(total, cap - already), 0)
    text = b"".join(out)
    assert text.startswith(b"".join(chunks)[:kept])
    assert log.dropped == total - kept
    assert log.written == already + kept
    cut = [n for n in log.notes if "log cut" in n]
    assert len(cut) == (1 if log.dropped else 0)  # one note, the first time only


def test_a_log_that_cannot_be_written_drops_instead_of_failing():
    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    log = CappedLog(full, 100)
    log.add(b"abc")
    assert log.dropped >= 3


def test_notes_start_on_a_line_of_their_own():
    out: list[bytes] = []
    log = CappedLog(out.append, 100)
    log.add(b"no newline")
    log.note("natlab: x")
    log.note("natlab: y")
    assert b"".join(out) == b"no newline\n[natlab: x]\n[natlab: y]\n"


def test_ended():
    assert ended(0) == {"state": "exited", "code": 0}
    assert ended(3) == {"state": "exited", "code": 3}
    assert ended(-9) == {"state": "killed", "signal": "SIGKILL"}
    assert ended(-40) == {"state": "killed", "signal": "40"}  # a real-time signal has no name


def supervise(tmp_path: Path, argv: list[str], grace: float = 5.0) -> subprocess.Popen:
    config = {
        "argv": argv,
        "env": dict(os.environ),
        "status": str(tmp_path / "n.state.json"),
        "cap": CAP,
        "grace": grace,
    }
    with open(tmp_path / "n.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", SUPERVISE, json.dumps(config)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def final_state(tmp_path: Path, supervisor: subprocess.Popen, timeout: float = 120) -> dict:
    assert supervisor.wait(timeout) == 0, (tmp_path / "n.log").read_bytes()[-2000:]
    return json.loads((tmp_path / "n.state.json").read_text())


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_flood_is_cut_at_the_cap_and_never_blocks_the_program(tmp_path):
    """20 MB through a 1 MB log: the program still ends by itself, having written it all."""
    supervisor = supervise(tmp_path, ["head", "-c", "20000000", "/dev/zero"])
    state = final_state(tmp_path, supervisor)
    assert state["state"] == "exited" and state["code"] == 0
    log = (tmp_path / "n.log").read_bytes()
    assert CAP <= len(log) < CAP + 1000  # the cap, and natlab's few note lines
    assert b"[natlab: log cut at 1048576 bytes; further output is dropped]" in log
    assert state["log_dropped"] == 20_000_000 - CAP  # the cap counts the program's output only
    assert log.endswith(b"[natlab: 18951424 bytes of output were dropped past the log's cap]\n")


def test_what_a_program_leaves_behind_in_its_group_is_ended_with_it(tmp_path):
    supervisor = supervise(tmp_path, ["sh", "-c", "sleep 300 & echo pid: $!; exit 4"], grace=1)
    state = final_state(tmp_path, supervisor)
    assert state == {**state, "state": "exited", "code": 4}
    log = (tmp_path / "n.log").read_text()
    child = int(log.split("\npid: ")[1].split()[0])
    assert start_time(child) is None


def test_a_program_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    argv = ["sh", "-c", "trap '' TERM; echo ready; sleep 300 & wait; sleep 300"]
    supervisor = supervise(tmp_path, argv, grace=0.5)
    wait_for(lambda: b"ready" in (tmp_path / "n.log").read_bytes())
    started = time.monotonic()
    os.kill(supervisor.pid, signal.SIGTERM)
    state = final_state(tmp_path, supervisor)
    assert state["state"] == "killed" and state["signal"] == "SIGKILL"
    assert time.monotonic() - started >= 0.5  # the grace period was given


def test_a_command_that_cannot_start_is_a_failed_state(tmp_path):
    supervisor = supervise(tmp_path, ["/no/such/program", "--flag"])
    state = final_state(tmp_path, supervisor)
    assert state["state"] == "failed"
    assert "No such file or directory: /no/such/program" in state["error"]
    assert b"cannot start the program" in (tmp_path / "n.log").read_bytes()
