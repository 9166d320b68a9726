"""The routers' NAT daemons as processes: recorded, watched, stopped (issue 3).

Checked with /proc and `ip`, not with natlab's own read-back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.lab import Lab, routers

pytestmark = pytest.mark.natlab

MAIN_BRANCH = Path(__file__).resolve().parents[2] / "topologies" / "main-branch.yaml"


def daemons(lab: Lab) -> dict[str, int]:
    """router -> pid of its NAT daemon, as the lab recorded them."""
    return {p["node"]: p["pid"] for p in lab.status()["processes"] if p["what"] == "nat daemon"}


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_one_daemon_per_router_inside_its_namespace(natlab_lab):
    lab = natlab_lab(MAIN_BRANCH)
    recorded = daemons(lab)
    assert set(recorded) == set(lab.topology.routers)
    for router, pid in recorded.items():
        namespace = Path("/run/netns") / lab.namespace(router)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == namespace.stat().st_ino


def test_a_dead_daemon_shows_in_status_and_down_still_cleans_up(natlab_lab):
    lab = natlab_lab(MAIN_BRANCH)
    pid = daemons(lab)["branch1"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    shown = subprocess.run(
        [sys.executable, "-m", "natlab", "status", lab.name], capture_output=True, text=True
    )
    assert shown.returncode == 1
    assert f"branch1: nat daemon (pid {pid}) died" in shown.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "natlab", "nat", "show", "branch1", "--lab", lab.name],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2
    assert "does not answer" in failed.stderr and "Traceback" not in failed.stderr


def test_the_daemons_are_the_labs_own_children_and_their_spawner_is_gone(natlab_lab):
    """Forked by natlab.router.spawner, yet the lab's children: it alone learns how one ended."""
    lab = natlab_lab(MAIN_BRANCH)
    spawned = set()
    for entry in Path("/proc").iterdir():
        try:
            if _field(int(entry.name), 1) != str(os.getpid()):
                continue
            if b"natlab.router.spawner" in (entry / "cmdline").read_bytes():
                spawned.add(int(entry.name))
        except (ValueError, OSError):
            continue  # not a process, or one that ended while we looked
    assert spawned == set(daemons(lab).values())


def test_a_spawner_that_ends_early_stops_up_naming_the_router_and_leaves_nothing(
    natlab_lab, monkeypatch
):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the spawner exits at once
    with pytest.raises(NatlabError, match="NAT daemon of router 'main' did not start") as failed:
        natlab_lab(MAIN_BRANCH)
    assert "spawner.log" in (failed.value.fix or "")


def test_a_spawner_that_hangs_stops_up_and_is_stopped_itself(natlab_lab, monkeypatch, tmp_path):
    hanging = tmp_path / "hanging-python"
    hanging.write_text('#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 60\n')
    hanging.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(hanging))
    monkeypatch.setattr(routers, "READY_TIMEOUT", 0.5)
    with pytest.raises(NatlabError, match=r"did not start: .* does not answer"):
        natlab_lab(MAIN_BRANCH)
    pid = int((tmp_path / "hanging-python.pid").read_text())
    assert _state(pid) in ("gone", "Z")  # `up` took it down with the rest


def test_down_stops_every_daemon(natlab_lab):
    topology_lab = natlab_lab(MAIN_BRANCH)
    pids = list(daemons(topology_lab).values())
    topology_lab.down()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z"


def _state(pid: int) -> str:
    try:
        return _field(pid, 0)
    except FileNotFoundError:
        return "gone"


def _field(pid: int, index: int) -> str:
    """A field of /proc/PID/stat after the command name: 0 the state, 1 the parent's PID."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[index]
