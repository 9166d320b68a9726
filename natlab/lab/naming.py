"""Kernel-visible names of a lab's resources and where its state lives."""

from __future__ import annotations

import os
import re
from pathlib import Path

from natlab.errors import NatlabError

PREFIX = "natlab-"
LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def state_root() -> Path:
    """/run/natlab, or NATLAB_RUN_DIR for tests that must not touch the real one."""
    return Path(os.environ.get("NATLAB_RUN_DIR", "/run/natlab"))


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise NatlabError(
            f"'{name}' cannot name a lab",
            field="--name",
            fix="use up to 40 lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit",
        )
    return name


def node_namespace(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}-{node}"


def switch_namespace(lab: str) -> str:
    """The namespace that holds the lab's segments (bridges), never the host's."""
    return f"{PREFIX}{lab}"


def lab_dir(lab: str) -> Path:
    return state_root() / lab
