"""Kernel-visible names of a lab's resources and where its state lives."""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "natlab-"


def state_root() -> Path:
    """/run/natlab, or NATLAB_RUN_DIR for tests that must not touch the real one."""
    return Path(os.environ.get("NATLAB_RUN_DIR", "/run/natlab"))


def node_namespace(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}-{node}"


def switch_namespace(lab: str) -> str:
    """The namespace that holds the lab's segments (bridges), never the host's."""
    return f"{PREFIX}{lab}"


def lab_dir(lab: str) -> Path:
    return state_root() / lab
