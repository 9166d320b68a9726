"""How a dataplane asks the lab to run something inside a node, and watches it start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

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
