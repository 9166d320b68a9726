"""Processes natlab started, known by PID and start time so a reused PID is never hit."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass

EXEC = "exec"  # what an interactive `natlab exec` session is recorded as
CAPTURE = "capture"  # a tcpdump natlab runs for --pcap
TRANSIENT = frozenset({EXEC, CAPTURE})  # may end before the lab does: not a death to report


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start: int  # clock ticks since boot, /proc/PID/stat field 22
    node: str
    what: str

    def alive(self) -> bool:
        return start_time(self.pid) == self.start

    def as_json(self) -> dict:
        return asdict(self)


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie is as good as gone
    return int(fields[19])


def record(pid: int, node: str, what: str) -> ProcessRecord:
    start = start_time(pid)
    if start is None:
        raise ProcessLookupError(pid)
    return ProcessRecord(pid, start, node, what)


def terminate(records: list[ProcessRecord], grace: float = 1.0) -> None:
    """SIGTERM what is still ours, then SIGKILL what outlives the grace period."""
    living = [r for r in records if r.alive()]
    for r in living:
        _signal(r.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while living and time.monotonic() < deadline:
        time.sleep(0.02)
        living = [r for r in living if r.alive()]
    for r in living:
        _signal(r.pid, signal.SIGKILL)
    for r in records:
        _reap(r.pid)


def _reap(pid: int) -> None:
    """Collect the exit status of a process we forked ourselves, so no zombie stays."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
