"""A router under pressure (issue 11): a full or read-only state directory, slow or greedy
control clients, huge mapping tables. Forwarding must go on through all of it.

One router `r` between a LAN host `inside` and an internet host `s1`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from natlab.control_socket import ask
from natlab.errors import NatlabError
from natlab.lab import Lab, teardown
from natlab.lab.naming import lab_dir
from natlab.router.files import config_path, log_path, socket_path
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

S1 = "203.0.113.10"
TOPOLOGY = """
name: harden
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.0.0.0/24}}
routers:
  r:
    wan: {{segment: internet, address: 203.0.113.1}}
    lan: {{segment: lan}}
    nat: {nat}
hosts:
  inside: {{segment: lan, address: 10.0.0.10}}
  s1: {{segment: internet, address: 203.0.113.10}}
"""
NATLAB = [sys.executable, "-m", "natlab"]

# One datagram from a fresh socket each: a new mapping, and events, every time.
NEW_FLOWS = """
import socket, sys, time
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (sys.argv[1], 9))
    s.close()
    if i % 500 == 499:
        time.sleep(0.02)
"""
# One socket to many destination ports: under symmetric NAT, a mapping for each.
# (the destination ports start at 1024 and stay below 65536)
MANY_DESTINATIONS = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 40000))  # the same source each round: a round refreshes the mappings of the last
for port in range(1024, 1024 + int(sys.argv[2])):
    s.sendto(b"x", (sys.argv[1], port))
    if port % 250 == 0:
        time.sleep(0.02)
"""


def topology(nat: str = "port-restricted"):
    return parse_topology(TOPOLOGY.format(nat=nat), "harden.yaml")


def rtts(lab: Lab, count: int, interval: float) -> tuple[int, float]:
    """Pings from inside to s1: how many were answered, and the largest round trip (ms)."""
    out = lab.exec(
        "inside",
        ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "2", S1],
        capture_output=True,
        text=True,
    ).stdout
    received = int(re.search(r"(\d+) received", out)[1])
    found = re.search(r"= [\d.]+/[\d.]+/([\d.]+)/", out)
    return received, float(found[1]) if found else float("inf")


@contextmanager
def tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_state_directory_costs_events_never_forwarding(tmp_path, monkeypatch):
    """A 2 MB state directory, filled by a flood of new flows: the router goes on forwarding."""
    with tmpfs(tmp_path / "state", "size=2m") as state:
        monkeypatch.setenv("NATLAB_RUN_DIR", str(state))
        lab = Lab(topology(), unique_lab_name(topology().name))
        try:
            lab.up()
            assert rtts(lab, 2, 0.2)[0] == 2
            lab.exec("inside", [sys.executable, "-c", NEW_FLOWS, S1, "20000"], check=True)
            counters = lab.router("r").counters()
            assert counters["events_dropped"] > 0
            assert counters["mappings_created"] > 2_000  # the flood went through the NAT
            disk = os.statvfs(state)
            assert disk.f_bavail * disk.f_bsize < 64 << 10  # the disk really is full
            log = log_path(config_path(state / lab.name, "r")).read_text()
            assert log.count("dropping events") <= 1  # one line in the log, not one per event
            with open(state / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
                while True:  # the last free blocks too
                    filler.write(b"x" * 4096)
            lab.exec("inside", [sys.executable, "-c", NEW_FLOWS, S1, "1000"], check=True)
            received, _ = rtts(lab, 3, 0.2)
            assert received == 3  # forwarding survives, and the daemon still answers:
            assert lab.router("r").ping().router == "r"
            # `exec` must write its session to the ledger, and says why it cannot: exit 2
            done = subprocess.run(
                [*NATLAB, "exec", "--lab", lab.name, "inside", "--", "true"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            assert f"cannot write natlab's state at {state}" in done.stderr
            assert "NATLAB_RUN_DIR" in done.stderr and "Traceback" not in done.stderr
        finally:
            teardown(lab.name)
        assert not (state / lab.name).exists()


@pytest.mark.parametrize("disk", ["read-only", "full"])
def test_up_on_a_state_directory_it_cannot_write_exits_2_and_leaves_nothing(tmp_path, disk, kernel):
    with tmpfs(tmp_path / "disk", "size=1m", *(["ro"] if disk == "read-only" else [])) as where:
        if disk == "full":
            with open(where / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
                while True:  # until every block is taken
                    filler.write(b"x" * 4096)
        before = sorted(p.name for p in where.iterdir())
        (tmp_path / "lab.yaml").write_text(TOPOLOGY.format(nat="full-cone"))
        name = unique_lab_name(topology().name)
        env = {**os.environ, "NATLAB_RUN_DIR": str(where / "state")}
        done = subprocess.run(
            [*NATLAB, "up", str(tmp_path / "lab.yaml"), "--name", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert f"cannot write natlab's state at {where / 'state'}" in done.stderr
        assert "NATLAB_RUN_DIR" in done.stderr and "Traceback" not in done.stderr
        assert sorted(p.name for p in where.iterdir()) == before  # no ledger, no .tmp, no lock
        assert not kernel.lab_namespaces(name)


def test_down_removes_a_lab_whose_first_ledger_was_never_finished(tmp_path):
    state = tmp_path / "run"
    (state / "cut-short").mkdir(parents=True)
    (state / "cut-short" / ".ledger.json.tmp").write_text('{"lab": "cut-sh')
    env = {**os.environ, "NATLAB_RUN_DIR": str(state)}
    done = subprocess.run([*NATLAB, "down", "cut-short"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (state / "cut-short").exists()


def half_requests(path: Path, stop: threading.Event) -> None:
    """A control client that sends half a request and waits; again whenever it is hung up on."""
    while not stop.is_set():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            client.sendall(b'{"op": "sh')
            client.settimeout(0.2)
            while not stop.is_set():
                try:
                    if client.recv(1024) == b"":
                        break  # the daemon gave up on us: be slow again
                except TimeoutError:
                    continue


def test_a_slow_control_client_does_not_hold_up_packets(natlab_lab):
    lab = natlab_lab(topology())
    control = socket_path(config_path(lab_dir(lab.name), "r"))
    assert rtts(lab, 2, 0.2)[0] == 2  # ARP done
    stop = threading.Event()
    slow = threading.Thread(target=half_requests, args=(control, stop), daemon=True)
    slow.start()
    try:
        received, worst = rtts(lab, 20, 0.1)
        # Others are served meanwhile, and a bad clock advance is refused by the daemon itself.
        assert lab.router("r").ping().router == "r"
        for seconds in (float("nan"), float("inf"), 1e20, -1.0, "31"):
            with pytest.raises(NatlabError, match="30 days"):
                # the wire itself: a client of natlab's own would not send these
                ask(control, {"op": "advance", "seconds": seconds}, who="the router daemon")
    finally:
        stop.set()
        slow.join(5)
    assert received == 20
    assert worst < 500, f"a ping waited {worst} ms while a control client dawdled"
    assert lab.router("r").clock().offset == 0


def test_nat_show_streams_a_table_of_64000_mappings(natlab_lab):
    # sequential ports: 64 000 of the 64 512 external ports, without random probing's misses
    lab = natlab_lab(topology("{preset: symmetric, ports: sequential}"))
    wanted = 64_000
    for _ in range(6):  # a round refreshes what is there and makes what a busy router missed
        lab.exec("inside", [sys.executable, "-c", MANY_DESTINATIONS, S1, str(wanted)], check=True)
        if lab.router("r").show(limit=0)[0].mappings_total >= wanted:
            break
    show = subprocess.run(
        [*NATLAB, "nat", "show", "r", "--lab", lab.name, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert show.returncode == 0, show.stderr
    head, *mappings = [json.loads(line) for line in show.stdout.splitlines()]
    assert head["mappings_total"] >= wanted, head["counters"]
    assert len(mappings) == head["mappings_total"]
    remotes = {m["remote"] for m in mappings}
    assert {f"{S1}:{port}" for port in range(1024, 1024 + wanted)} <= remotes
    limited = subprocess.run(
        [*NATLAB, "nat", "show", "r", "--lab", lab.name, "--json", "--limit", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert len(limited.stdout.splitlines()) == 1 + 10
    # the Python API reads the same stream, whole
    assert len([m.to_json() for m in lab.router("r").show()[1]]) >= wanted
