"""How a dataplane asks the lab to run something inside a node, and watches it start."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from natlab.errors import NatlabError

# launch(node, run, log) -> pid: the lab forks, enters node's namespace, sends
# output to log, calls run() and records the process for teardown.
Launch = Callable[[str, Callable[[], object], Path], int]


def exited(pid: int) -> bool:
    """Has our child pid ended (its status is collected if so)?"""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a process's log, on one line, for an error message."""
    try:
        return " | ".join(log.read_text().strip().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


def wait_started(
    ready: Callable[[], bool], pid: int, log: Path, what: str, deadline: float
) -> None:
    """Poll ready() until it holds; fail naming `what`, with its log, if it dies or time is up."""
    while not ready():
        if exited(pid) or time.monotonic() > deadline:
            raise NatlabError(f"{what} did not start", fix=f"its log says: {log_tail(log)}")
        time.sleep(0.01)
