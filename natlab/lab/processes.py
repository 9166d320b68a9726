"""Processes natlab started, known by PID and start time so a reused PID is never hit."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass

EXEC = "exec"  # what an interactive `natlab exec` session is recorded as
CAPTURE = "capture"  # a tcpdump natlab runs for --pcap
PROGRAM = "program"  # a user's program (lab/programs.py): its process group's leader...
SUPERVISOR = "program supervisor"  # ...and the natlab process that watches it
SPAWNER = "daemon spawner"  # forks the NAT daemons during `up`, then ends (natlab.router.spawner)
# May end before the lab does: not a death to report.
TRANSIENT = frozenset({EXEC, CAPTURE, PROGRAM, SUPERVISOR, SPAWNER})


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


@dataclass(frozen=True)
class Death:
    """A lab process that is no longer running, and how it ended as far as this process knows."""

    node: str
    what: str  # as the ledger calls it: "nat daemon", "phone", ...
    pid: int
    code: int | None = None  # its exit status...
    signal: str | None = None  # ...or the signal that ended it (SIGKILL); neither: unknown
    log: str | None = None  # the last lines it wrote, where natlab keeps them

    @property
    def how(self) -> str:
        if self.signal is not None:
            return f"signal {self.signal}"
        if self.code is not None:
            return f"exit {self.code}"
        return "exit status unknown: another process started it"


# Exit statuses of our children, collected once by os.waitpid and kept: (pid, start) -> status.
_collected: dict[tuple[int, int], int] = {}


def death(process: ProcessRecord) -> Death | None:
    """None while the process runs; else how it ended.

    Only the process that started it (its parent) can read its exit status,
    with os.waitpid, and only for a PID that is no longer another process
    (a zombie or gone): waiting on a reused PID could steal a stranger's.
    """
    key = (process.pid, process.start)
    if key not in _collected:
        now = start_time(process.pid)
        if now == process.start:
            return None
        if now is None:  # a zombie, ours to collect if we are its parent, or gone
            try:
                pid, status = os.waitpid(process.pid, os.WNOHANG)
            except ChildProcessError:  # not our child, or collected by someone else
                pid = -1
            if pid == 0:
                return None  # our child, still running after all
            if pid == process.pid:
                _collected[key] = status
        if key not in _collected:
            return Death(process.node, process.what, process.pid)
    status = _collected[key]
    if os.WIFSIGNALED(status):
        return Death(process.node, process.what, process.pid, signal=_name(os.WTERMSIG(status)))
    return Death(process.node, process.what, process.pid, code=os.WEXITSTATUS(status))


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal has no name of its own
        return str(signum)


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


# -- process groups: a user's program and whatever it started ------------------------------


def group_members(pgid: int, netns: int | None) -> list[int]:
    """The living processes of group pgid inside the network namespace with inode netns.

    The namespace is the proof that the group is ours: a group ID is a PID,
    free for reuse once the group is empty, but no stranger lives in a lab's
    namespace. netns None: no namespace, no members.
    """
    if netns is None:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" or int(fields[2]) != pgid:
                continue
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == netns:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # it ended while we looked
    return found


def end_groups(groups: list[tuple[int, int | None]], grace: float) -> None:
    """SIGTERM each (pgid, netns) group that has members, SIGKILL what outlives grace seconds."""
    living = [g for g in groups if group_members(*g)]
    for pgid, _ in living:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while living and time.monotonic() < deadline:
        time.sleep(0.02)
        living = [g for g in living if group_members(*g)]
    for pgid, _ in living:
        _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + grace  # SIGKILL cannot be refused: this is a bound, not a wait
    while living and time.monotonic() < deadline:
        time.sleep(0.02)
        living = [g for g in living if group_members(*g)]


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
