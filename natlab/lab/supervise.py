"""The small process that runs a user's program inside a node and outlives `natlab up`.

`up` returns once the lab stands, but a program named by `run:` goes on, and
someone has to read its output (or it blocks on a full pipe), keep its log
within bounds and learn how it ended. The lab forks this supervisor into
the node like its other processes (natlab.lab.lab.Lab._launch: no new
interpreter to start, its stdout is the node's log), and it:

- starts the program in a process group of its own, stdin from /dev/null,
  stdout and stderr into one pipe, with the environment it was given;
- copies that output into the log up to a cap (CappedLog): past it one note
  line says so and the rest is read and dropped, so the program never blocks;
- writes the program's state to a small JSON file beside the log: running
  (with its PID and start time, for the ledger), then exited N or killed by
  SIGNAL, or failed (it could not be started at all);
- when the program ends, ends what it left behind in its group (SIGTERM, then
  SIGKILL after the grace period), holding the program unreaped meanwhile so
  its group's ID cannot pass to a stranger;
- on SIGTERM, SIGINT or SIGHUP ends the program's group the same way.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from natlab.lab.processes import group_members, start_time
from natlab.records import ProgramState

CHUNK = 65536
DRAIN = 1.0  # seconds to wait for the pipe to close once the group is gone (an escaped child)
TICK = 0.05  # how often the group is looked at while it is being ended


@dataclass(frozen=True)
class SupervisorConfig:
    argv: tuple[str, ...]
    env: dict[str, str]
    status: Path  # the state file
    log_cap: int  # bytes of output kept in the log
    grace: float  # seconds between SIGTERM and SIGKILL


@dataclass
class CappedLog:
    """Output to `write` up to `cap` bytes in all (counting `written` already there).

    Past the cap it writes one note, then counts what it drops. A write that
    fails (a full disk) is dropped too: the program must never wait for its log.
    """

    write: Callable[[bytes], object]
    cap: int
    written: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    at_line_start: bool = True

    def add(self, data: bytes) -> None:
        room = max(self.cap - self.written, 0)
        kept, rest = data[:room], data[room:]
        if kept:
            self._out(kept)
            self.written += len(kept)
            self.at_line_start = kept.endswith(b"\n")
        if rest:
            if not self.dropped:
                self.note(f"natlab: log cut at {self.cap} bytes; further output is dropped")
            self.dropped += len(rest)

    def note(self, text: str) -> None:
        """A line of natlab's own, on a line of its own, whatever the cap."""
        self._out(b"" if self.at_line_start else b"\n")
        self._out(f"[{text}]\n".encode())
        self.at_line_start = True
        self.notes.append(text)

    def _out(self, data: bytes) -> None:
        try:
            self.write(data)
        except OSError:
            self.dropped += len(data)


def write_all(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def write_state(path: Path, state: dict) -> None:
    """Replace the state file whole, so a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(ProgramState.from_json(state).to_json()))
    os.replace(temporary, path)


def ended(returncode: int) -> dict:
    """Popen's returncode as the state file says it: exited N, or killed by SIGNAL."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"state": "killed", "signal": name}
    return {"state": "exited", "code": returncode}


def run(config: SupervisorConfig) -> int:
    """Supervise config.argv until it and its group are gone; the log is this process's stdout."""
    log = CappedLog(write_all(1), config.log_cap, written=os.fstat(1).st_size)
    base = {"argv": list(config.argv), "log_cap": config.log_cap}
    stop = _on_stop_signals()
    log.note(f"natlab: starting {shlex.join(config.argv)}")
    try:
        program = subprocess.Popen(
            config.argv,
            env=config.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    except OSError as error:
        problem = f"{error.strerror or error}: {config.argv[0]}"
        log.note(f"natlab: cannot start the program: {problem}")
        write_state(config.status, {**base, "state": "failed", "error": problem})
        return 0
    base |= {"pid": program.pid, "start": start_time(program.pid)}
    write_state(config.status, {**base, "state": "running"})
    _pump(program, config, log, stop)
    final = ended(program.wait())
    how = f"exited {final['code']}" if "code" in final else f"was killed by {final['signal']}"
    log.note(f"natlab: the program {how}")
    if log.dropped:
        log.note(f"natlab: {log.dropped} bytes of output were dropped past the log's cap")
    write_state(config.status, {**base, **final, "log_dropped": log.dropped})
    return 0


def _pump(program: subprocess.Popen, config: SupervisorConfig, log: CappedLog, stop: int) -> None:
    """Copy output until the program has ended, its group is gone and its pipe closed."""
    assert program.stdout is not None
    output: int | None = program.stdout.fileno()
    os.set_blocking(output, False)
    exit_fd = os.pidfd_open(program.pid)  # readable once it ends; it stays unreaped till then
    netns = os.stat("/proc/self/ns/net").st_ino
    watch = selectors.DefaultSelector()
    for fd in (output, exit_fd, stop):
        watch.register(fd, selectors.EVENT_READ)
    exited = stopping = False
    kill_at: float | None = None
    drain_until: float | None = None
    while True:
        for key, _ in watch.select(TICK if exited or stopping else None):
            if key.fd == output:
                data = _read(output)
                if data == b"":
                    watch.unregister(output)
                    output = None
                elif data:
                    log.add(data)
            elif key.fd == exit_fd:
                watch.unregister(exit_fd)
                exited = True
            else:
                while _read(stop):
                    pass
                stopping = True
        if not (exited or stopping):
            continue
        now = time.monotonic()
        members = group_members(program.pid, netns)
        if members and kill_at is None:
            os.killpg(program.pid, signal.SIGTERM)
            kill_at = now + config.grace
        elif members and now >= kill_at:
            os.killpg(program.pid, signal.SIGKILL)
            kill_at = float("inf")
        if exited and not members:
            drain_until = drain_until or now + DRAIN
            if output is None or now >= drain_until:
                break
    os.close(exit_fd)


def _read(fd: int) -> bytes | None:
    """What the pipe holds now; b"" at its end (or if it broke), None if it holds nothing yet."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _on_stop_signals() -> int:
    """A file descriptor that turns readable when SIGTERM, SIGINT or SIGHUP arrives."""
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)  # the wakeup fd carries it
    return read
