"""The two programs of a matrix cell: their environment, starting them, waiting, stopping.

Each program runs inside its node with the environment that describes the
lab (NATLAB_LAB, NATLAB_NODE, NATLAB_ADDR, NATLAB_ADDR_<NODE>, NATLAB_STUN,
NATLAB_TURN*, and for a pair NATLAB_ROLE, NATLAB_PEER, NATLAB_SHARED,
NATLAB_TIMEOUT), in a process group of its own, its output in a log file
of the lab. It is recorded in the lab's ledger, so a `down` after a crash
stops it; at the end of a cell its whole group is stopped (SIGTERM, then
SIGKILL), children included.

This is the matrix's own starter until natlab.lab.programs (hosts' `run:`)
provides the same; `pair_environment` and `start` are the two functions to
swap for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from natlab.endpoints import turn
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.endpoints import stun_servers
from natlab.lab.processes import EXEC
from natlab.topology.model import Role

ROLES = ("a", "b")  # a: the controlling, calling side
STOP_GRACE = 2.0
LOG_LIMIT = 10 * 1024 * 1024  # what a cell's report reads back of a program's output


def env_name(node: str) -> str:
    return node.upper().replace("-", "_").replace(".", "_")


def pair_environment(
    lab: Lab, node: str, role: str, peer: str, shared: Path, timeout: float
) -> dict[str, str]:
    """NATLAB_* for a program of a pair in node (issue 13's list), over natlab's own env."""
    topology = lab.topology
    env = {
        "NATLAB_LAB": lab.name,
        "NATLAB_NODE": node,
        "NATLAB_ADDR": str(topology.node(node).interfaces[0].address),
        "NATLAB_STUN": ",".join(f"{host}:{port}" for host, port in stun_servers(topology)),
        "NATLAB_ROLE": role,
        "NATLAB_PEER": peer,
        "NATLAB_SHARED": str(shared),
        "NATLAB_TIMEOUT": f"{timeout:g}",
    }
    for name, other in topology.nodes.items():
        env[f"NATLAB_ADDR_{env_name(name)}"] = str(other.interfaces[0].address)
    relays = [h for h in topology.hosts.values() if h.role == Role.TURN_SERVER]
    if relays:
        env["NATLAB_TURN"] = f"{relays[0].interfaces[0].address}:{turn.PORT}"
        env["NATLAB_TURN_USER"], env["NATLAB_TURN_PASSWORD"] = turn.USERNAME, turn.PASSWORD
    return {**os.environ, **env}


@dataclass
class Program:
    node: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None
    error: str | None = None  # it could not start (no such command, ...)
    timed_out: bool = False

    @property
    def exit(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def outcome(self) -> str:
        """ "exit 0", "exit 1", "killed by SIGKILL", "timeout", or why it did not start."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return "timeout"
        code = self.exit
        if code is None:
            return "running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit {code}"

    def output_tail(self, lines: int = 20) -> list[str]:
        """The last lines it wrote (bounded read, non-UTF-8 shown escaped)."""
        try:
            with self.log.open("rb") as stream:
                stream.seek(max(0, self.log.stat().st_size - 64 * 1024))
                text = stream.read(64 * 1024).decode(errors="backslashreplace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


def start(lab: Lab, program: Program, env: dict[str, str]) -> None:
    """Start program.argv inside its node, in a process group of its own, logging to its log."""
    try:
        with program.log.open("ab") as output:
            program.process = lab.popen(
                program.node,
                program.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as error:  # not found, not executable: the cell's verdict, not natlab's
        program.error = f"cannot start {program.argv[0]}: {error.strerror}"
        return
    lab.adopt(program.process.pid, program.node, EXEC)


def wait_all(programs: list[Program], timeout: float) -> None:
    """Wait until every started program ended or timeout seconds passed; mark the late ones."""
    deadline = time.monotonic() + timeout
    for program in programs:
        if program.process is None:
            continue
        try:
            program.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            program.timed_out = True


def stop(programs: list[Program], grace: float = STOP_GRACE) -> None:
    """SIGTERM each program's process group, SIGKILL what is left after grace; reap."""
    groups = [p.process.pid for p in programs if p.process is not None]
    for group in groups:
        _kill_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for program in programs:
        if program.process is not None and program.process.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                program.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for group in groups:  # children that outlived their leader, or ignored SIGTERM
        _kill_group(group, signal.SIGKILL)
    for program in programs:
        if program.process is not None:
            program.process.wait()


def _kill_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def check_command(argv: list[str], option: str) -> list[str]:
    if not argv:
        raise NatlabError("an empty command", field=option, fix='give one, e.g. --run "./client"')
    return argv
