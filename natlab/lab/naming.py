"""Kernel-visible names of a lab's resources and where its state lives."""

from __future__ import annotations

import os
from pathlib import Path

from natlab.errors import NatlabError

PREFIX = "natlab-"


def state_root() -> Path:
    """/run/natlab, or NATLAB_RUN_DIR for tests that must not touch the real one."""
    return Path(os.environ.get("NATLAB_RUN_DIR", "/run/natlab"))


def state_error(error: OSError, path: Path | str | None = None) -> NatlabError:
    """natlab cannot write its state (a full or read-only disk): where, why, and the way out."""
    where = path or error.filename or state_root()
    return NatlabError(
        f"cannot write natlab's state at {where}: {error.strerror or error}",
        fix=f"free space in {state_root()} or make it writable, or point NATLAB_RUN_DIR "
        "at a writable directory with room (it holds every lab's state)",
    )


def writing_state(error: OSError) -> bool:
    """Is error a failure to write a file under the state root?"""
    return bool(error.filename) and Path(str(error.filename)).is_relative_to(state_root())


def node_namespace(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}-{node}"


def switch_namespace(lab: str) -> str:
    """The namespace that holds the lab's segments (bridges), never the host's."""
    return f"{PREFIX}{lab}"


def lab_dir(lab: str) -> Path:
    return state_root() / lab
