"""How a dataplane asks the lab to run something inside a router's namespace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# launch(node, run, log) -> pid: the lab forks, enters node's namespace, sends
# output to log, calls run() and records the process for teardown.
Launch = Callable[[str, Callable[[], object], Path], int]
