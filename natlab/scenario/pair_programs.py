"""The two programs of a matrix cell, started, waited for and ended through natlab.lab.programs.

Each side runs as a host's `run:` does (supervised, its output in the lab's
nodes/NODE.log within a cap, recorded in the ledger, its process group ended
with SIGTERM then SIGKILL), with the pair's environment: NATLAB_ROLE a|b,
NATLAB_PEER, NATLAB_SHARED (a directory of the pair's alone), NATLAB_TIMEOUT.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab import programs as lab_programs
from natlab.lab.naming import lab_dir

STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a program past its time
POLL = 0.02
TAIL_LINES = 20


@dataclass
class Program:
    node: str
    argv: tuple[str, ...]
    state: dict = field(default_factory=dict)  # the supervisor's word (lab.programs)
    error: str | None = None  # it could not start (no such command, ...)
    timed_out: bool = False

    @property
    def running(self) -> bool:
        return self.state.get("state") == "running"

    @property
    def succeeded(self) -> bool:
        state = self.state
        return not self.timed_out and state.get("state") == "exited" and state.get("code") == 0

    def outcome(self) -> str:
        """ "exit 0", "exit 1", "killed by SIGKILL", "timeout", or why it did not start."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return "timeout"
        if self.state.get("state") == "exited":
            return f"exit {self.state['code']}"
        return lab_programs.describe(self.state) if self.state else "not started"


def run_pair(lab: Lab, programs: list[Program], peers: list[str], timeout: float) -> None:
    """Start both (side a first), wait until both ended or timeout passed, end what is left."""
    shared = lab_programs.pair_dir(lab_dir(lab.name), programs[0].node, programs[1].node)
    try:
        for program, role, peer in zip(programs, "ab", peers, strict=True):
            pair = lab_programs.Pair(role, peer, shared, timeout)
            try:
                program.state = lab.start_program(program.node, program.argv, pair=pair)
            except NatlabError as error:  # no such command: this cell's error, not natlab's
                program.error = f"cannot start {program.argv[0]}: {error.problem}"
        deadline = time.monotonic() + timeout
        while True:
            for program in programs:
                if program.error is None:
                    program.state = lab.program_state(program.node) or program.state
            if not any(p.running for p in programs) or time.monotonic() > deadline:
                break
            time.sleep(POLL)
    finally:
        for program in programs:
            if program.running:
                program.timed_out = True
            if program.error is None and program.state:
                lab.end_program(program.node, STOP_GRACE)
                program.state = lab.program_state(program.node) or program.state


def output_tail(lab: Lab, node: str) -> list[str]:
    """The last lines node's program wrote (bounded; bytes not UTF-8 shown as U+FFFD)."""
    text = lab_programs.tail(lab_programs.log_path(lab_dir(lab.name), node))
    return text.splitlines()[-TAIL_LINES:]
