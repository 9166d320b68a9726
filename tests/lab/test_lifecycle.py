"""A lab's life cut short: SIGKILL and Ctrl-C during `up`, a dead creator, labs side by side.

Whatever happens to the process that built a lab, `natlab down` must find
and remove every namespace and every file of it, and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from natlab import Lab

pytestmark = pytest.mark.natlab


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 30) -> None:
    """Poll fast (a build takes well under a second) until condition holds; fail if proc ends."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} ended first ({proc.returncode}): {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {proc.args}")
        time.sleep(0.001)


def ledger_of(natlab, lab: str) -> dict | None:
    try:
        return json.loads((natlab.run_dir / lab / "ledger.json").read_text())
    except FileNotFoundError:
        return None


NAMESPACES = 1 + 9  # main-branch: the lab's switch namespace and its 9 nodes


def building(natlab, lab: str) -> dict:
    """The ledger while `up` is still building, else {}."""
    ledger = ledger_of(natlab, lab) or {}
    return ledger if ledger.get("state") == "building" else {}


# Moments of a build to interrupt it at: recorded only (the daemons' spawner
# importing); some namespaces made; every namespace made (wiring veths,
# addresses and routes); starting the lab's processes (NAT daemons, the STUN
# server), which fork.
PHASES: dict[str, Callable] = {
    "ledger-written": lambda natlab, kernel, lab: ledger_of(natlab, lab) is not None,
    "some-namespaces": lambda natlab, kernel, lab: len(kernel.lab_namespaces(lab)) >= 3,
    "every-namespace": lambda natlab, kernel, lab: len(kernel.lab_namespaces(lab)) == NAMESPACES,
    "processes-starting": lambda natlab, kernel, lab: any(
        p["what"] == "nat daemon" for p in building(natlab, lab).get("processes", [])
    ),
}


def running(pid: int) -> bool:
    """Alive and not a zombie, as /proc says."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def stun_address(kernel, lab: str) -> str:
    first = sorted(kernel.addresses(f"natlab-{lab}-stun1")["internet"])[0]
    return str(IPv4Interface(first).ip)


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_during_up_then_down_all_leaves_nothing(private_natlab, kernel, main_branch, phase):
    natlab = private_natlab
    lab = natlab.new_lab()
    up = natlab.start("up", str(main_branch), "--name", lab)
    wait_for(lambda: PHASES[phase](natlab, kernel, lab), up)
    os.kill(up.pid, signal.SIGKILL)
    up.wait()
    ledger = building(natlab, lab)
    assert ledger, "killed too late to test anything: the lab was up"

    down = natlab.run("down", "--all")

    assert down.returncode == 0, down.stderr
    assert f"lab '{lab}' is down" in down.stdout
    assert kernel.lab_namespaces(lab) == set()
    assert not (natlab.run_dir / lab).exists()
    assert not [p for p in ledger["processes"] if running(p["pid"])]


@pytest.mark.parametrize("group", [False, True], ids=["process", "process-group"])
@pytest.mark.parametrize("phase", PHASES)
def test_ctrl_c_during_up_exits_130_and_leaves_nothing(
    private_natlab, kernel, main_branch, phase, group
):
    """A terminal's Ctrl-C reaches the whole process group, natlab's helper children too."""
    natlab = private_natlab
    lab = natlab.new_lab()
    up = natlab.start("up", str(main_branch), "--name", lab)
    wait_for(lambda: PHASES[phase](natlab, kernel, lab), up)
    started = (ledger_of(natlab, lab) or {}).get("processes", [])
    (os.killpg if group else os.kill)(up.pid, signal.SIGINT)
    _, stderr = up.communicate(timeout=60)

    assert up.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert kernel.lab_namespaces(lab) == set()
    assert not (natlab.run_dir / lab).exists()
    assert not [p for p in started if running(p["pid"])]


def test_private_state_root_isolates_down_all_and_names_still_cannot_collide(
    private_natlab, kernel, natlab_lab, main_branch
):
    """What the SIGKILL tests rely on: NATLAB_RUN_DIR hides other labs, never their names."""
    public = natlab_lab(main_branch)
    namespaces = kernel.lab_namespaces(public.name)
    identity = {n: kernel.inode(n) for n in namespaces}

    down_all = private_natlab.run("down", "--all")
    assert down_all.returncode == 0, down_all.stderr
    assert "no lab was up" in down_all.stdout
    status = private_natlab.run("status", "--json")
    assert json.loads(status.stdout) == {"schema": "natlab/status/1", "labs": []}

    clash = private_natlab.run("up", str(main_branch), "--name", public.name)
    assert clash.returncode == 2
    assert "exists already" in clash.stderr
    assert "Traceback" not in clash.stderr
    assert not (private_natlab.run_dir / public.name).exists()

    assert {n: kernel.inode(n) for n in kernel.lab_namespaces(public.name)} == identity
    assert (
        public.exec(
            "phone-a",
            ["ping", "-c1", "-W2", stun_address(kernel, public.name)],
            capture_output=True,
        ).returncode
        == 0
    )


def test_two_labs_of_one_file_side_by_side(natlab, kernel, host_state, main_branch):
    before = host_state.now()
    labs = [natlab.new_lab(), natlab.new_lab()]
    ups = [natlab.start("up", str(main_branch), "--name", lab) for lab in labs]  # at once
    for up in ups:
        _, stderr = up.communicate(timeout=120)
        assert up.returncode == 0, stderr
    first, second = (kernel.lab_namespaces(lab) for lab in labs)
    assert len(first) == len(second) == NAMESPACES
    assert not first & second

    for lab in labs:
        for node in ("phone-a", "phone-b"):
            ping = natlab.ping(lab, node, stun_address(kernel, lab))
            assert ping.returncode == 0, f"{lab} {node}: {ping.stdout}{ping.stderr}"
    for lab in labs:
        down = natlab.run("down", lab)
        assert down.returncode == 0, down.stderr

    before.assert_same(host_state.now(), labs)


CREATOR = """
import sys, time
from natlab.lab import Lab
Lab.from_file(sys.argv[1], sys.argv[2]).up()
print("up", flush=True)
time.sleep(3600)
"""


def test_down_after_the_creator_was_sigkilled_still_cleans_up(private_natlab, kernel, main_branch):
    """A script that built a lab with the Python API dies; `down` stops what runs inside."""
    natlab = private_natlab
    lab = natlab.new_lab()
    creator = subprocess.Popen(
        [sys.executable, "-c", CREATOR, str(main_branch), lab],
        env=natlab.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    natlab.started.append(creator)
    assert creator.stdout.readline() == "up\n"
    assert ledger_of(natlab, lab)["creator"]["pid"] == creator.pid
    session = natlab.start("exec", "--lab", lab, "phone-a", "--", "sleep", "3600")
    wait_for(
        lambda: session.pid in {p["pid"] for p in ledger_of(natlab, lab)["processes"]}, session
    )

    os.kill(creator.pid, signal.SIGKILL)
    creator.wait()
    down = natlab.run("down", lab)

    assert down.returncode == 0, down.stderr
    assert session.wait(timeout=10) == -signal.SIGTERM
    assert kernel.lab_namespaces(lab) == set()
    assert not (natlab.run_dir / lab).exists()


def test_python_api_context_manager_takes_the_lab_down(natlab, kernel, main_branch):
    lab_name = natlab.new_lab()
    with Lab.from_file(main_branch, lab_name) as lab:
        assert kernel.lab_namespaces(lab_name)
        ping = lab.exec(
            "phone-b", ["ping", "-c1", "-W2", stun_address(kernel, lab_name)], capture_output=True
        )
        assert ping.returncode == 0, ping.stdout
    assert kernel.lab_namespaces(lab_name) == set()
    assert not (natlab.run_dir / lab_name).exists()
