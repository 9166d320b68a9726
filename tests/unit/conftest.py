"""What unit tests share across folders: the natlab command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import settings

# No per-example deadline: speed is for benchmarks/, and a loaded 2-core machine misses
# hypothesis's 200 ms default now and then (a flaky failure, not a slow engine). The rest is
# the default profile (under CI=true, hypothesis's own "ci" one).
settings.register_profile("natlab", parent=settings.default, deadline=None)
settings.load_profile("natlab")

NatlabRun = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def natlab() -> NatlabRun:
    """natlab(*args): run `python -m natlab ARGS`, capturing its output, with no root needed."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "natlab", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},  # one table row per line, whatever the path
        )

    return run
