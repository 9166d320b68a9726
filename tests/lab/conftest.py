"""Shared pieces of the lab tests: the `natlab` command as a user runs it, and the kernel's view.

Every check asks the kernel with `ip` itself, never through natlab, so a bug in
natlab's plumbing cannot hide behind a matching bug in its own read-back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from natlab.lab import teardown
from natlab.lab.naming import state_root
from natlab.topology import load_topology
from natlab.topology.lab_name import unique_lab_name

MAIN_BRANCH = Path(__file__).resolve().parents[2] / "topologies" / "main-branch.yaml"
# the CLI of the interpreter the tests run under, never whatever `natlab` is on PATH
NATLAB = [sys.executable, "-m", "natlab"]
LIFETIMES = ("valid_life_time", "preferred_life_time")  # count down on their own


class Kernel:
    """What the kernel says, asked with `ip`."""

    @staticmethod
    def ip_json(*args: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """`ip -json ARGS`, in the host's namespace or inside `namespace`."""
        where = ["-n", namespace] if namespace else []
        out = subprocess.run(
            ["ip", "-json", *where, *args], check=True, capture_output=True, text=True
        ).stdout
        return json.loads(out) if out.strip() else []

    @staticmethod
    def namespaces() -> frozenset[str]:
        out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
        return frozenset(line.split()[0] for line in out.stdout.splitlines() if line.strip())

    @classmethod
    def lab_namespaces(cls, lab: str) -> frozenset[str]:
        return frozenset(n for n in cls.namespaces() if of_lab(n, lab))

    @classmethod
    def addresses(cls, namespace: str) -> dict[str, set[str]]:
        """{ifname: {"a.b.c.d/len", ...}} for every link but lo inside the namespace."""
        return {
            link["ifname"]: {
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", [])
                if a["family"] == "inet"
            }
            for link in cls.ip_json("addr", namespace=namespace)
            if link["ifname"] != "lo"
        }

    @staticmethod
    def inode(namespace: str) -> int:
        """The namespace's identity: a namespace made anew under the same name has another."""
        return os.stat(f"/run/netns/{namespace}").st_ino

    @staticmethod
    def tcp_connections(namespace: str) -> list[tuple[str, str]]:
        """The established TCP connections in the namespace (`ss`): (local, peer), as ip:port."""
        out = subprocess.run(
            ["ip", "netns", "exec", namespace, "ss", "-Htn", "state", "established"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return [(row[-2], row[-1]) for row in rows]

    @classmethod
    def tcp_peers(cls, namespace: str, port: int) -> list[str]:
        """The peers (ip:port) of the established TCP connections on a local port."""
        return [
            peer for local, peer in cls.tcp_connections(namespace) if local.endswith(f":{port}")
        ]


def of_lab(namespace: str, lab: str) -> bool:
    return namespace == f"natlab-{lab}" or namespace.startswith(f"natlab-{lab}-")


@dataclass
class HostState:
    """What a lab must leave exactly as it found it in the host's namespace."""

    namespaces: frozenset[str]
    links: list[dict]
    routes: list[dict]
    addresses: list[dict]
    run_dir: frozenset[str] | None  # every path under the state root; None: no root

    @classmethod
    def now(cls) -> HostState:
        addresses = Kernel.ip_json("-4", "addr")
        for link in addresses:
            for address in link.get("addr_info", []):
                for key in LIFETIMES:
                    address.pop(key, None)
        root = state_root()
        return cls(
            namespaces=Kernel.namespaces(),
            links=Kernel.ip_json("link"),
            routes=Kernel.ip_json("route"),
            addresses=addresses,
            run_dir=frozenset(str(p.relative_to(root)) for p in root.rglob("*"))
            if root.is_dir()
            else None,
        )

    def others(self, labs: Collection[str]) -> set[str]:
        """Namespaces and state of natlab labs that are not ours (other tests, other users)."""
        foreign = {
            n
            for n in self.namespaces
            if n.startswith("natlab-") and not any(of_lab(n, lab) for lab in labs)
        }
        tops = {p.split("/")[0] for p in self.run_dir or ()}
        return foreign | {t for t in tops if t != ".lock" and t not in labs}

    def without(self, others: set[str]) -> HostState:
        """Blind to `others`, and so to whether the state root exists only because of them."""
        run_dir = {p for p in self.run_dir or () if p.split("/")[0] not in others | {".lock"}}
        return replace(self, namespaces=self.namespaces - others, run_dir=frozenset(run_dir))

    def assert_same(self, later: HostState, labs: Collection[str]) -> None:
        """`later` is exactly this; only labs not in `labs` may have come or gone meanwhile."""
        before, after = self, later
        others = before.others(labs) | after.others(labs)
        if others:
            before, after = before.without(others), after.without(others)
        assert after.namespaces == before.namespaces
        assert after.links == before.links
        assert after.routes == before.routes
        assert after.addresses == before.addresses
        assert after.run_dir == before.run_dir


class NatlabCommand:
    """The `natlab` command as a user runs it, with its state in `run_dir`.

    Every lab named through `new_lab` and every process started through
    `start` is removed after the test, pass or fail; the fixture then fails the
    test if natlab's own teardown left anything that `ip netns delete` had to
    remove.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.env = {**os.environ, "NATLAB_RUN_DIR": str(run_dir)}
        self.labs: list[str] = []
        self.started: list[subprocess.Popen] = []

    def new_lab(self) -> str:
        name = unique_lab_name(load_topology(MAIN_BRANCH).name)
        self.labs.append(name)
        return name

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        options = {"capture_output": True, "text": True, "timeout": 120, **kwargs}
        return subprocess.run([*NATLAB, *args], env=self.env, check=False, **options)

    def start(self, *args: str, **kwargs: Any) -> subprocess.Popen:
        """In a session of its own, as a shell would start it in its own process group."""
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
        proc = subprocess.Popen([*NATLAB, *args], env=self.env, start_new_session=True, **options)
        self.started.append(proc)
        return proc

    def exec(self, lab: str, node: str, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return self.run("exec", "--lab", lab, node, "--", *argv, **kwargs)

    def ping(self, lab: str, node: str, address: str) -> subprocess.CompletedProcess:
        """Two echo requests; success if any is answered (the first may wait for ARP)."""
        return self.exec(lab, node, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", address)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        failures = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NATLAB_RUN_DIR", str(self.run_dir))
            for lab in self.labs:
                try:
                    teardown(lab)
                except Exception as error:
                    failures.append(f"natlab's teardown of {lab} failed: {error!r}")
        for lab in self.labs:
            left = sorted(Kernel.lab_namespaces(lab))
            for namespace in left:
                subprocess.run(["ip", "netns", "delete", namespace], check=False)
            if left:
                failures.append(f"lab {lab} left namespaces: {left}")
            etc = sorted(p.name for p in Path("/etc/netns").glob(f"natlab-{lab}-*"))
            if etc:
                failures.append(f"lab {lab} left /etc/netns entries: {etc}")
            if (self.run_dir / lab).exists():
                shutil.rmtree(self.run_dir / lab)
                failures.append(f"lab {lab} left its state in {self.run_dir / lab}")
        assert not failures, "\n".join(failures)


@pytest.fixture
def kernel() -> type[Kernel]:
    return Kernel


@pytest.fixture
def host_state() -> type[HostState]:
    """HostState.now() takes a snapshot; before.assert_same(after, labs) compares two."""
    return HostState


@pytest.fixture
def main_branch() -> Path:
    return MAIN_BRANCH


@pytest.fixture
def main_branch_nodes() -> dict[str, set[str]]:
    """Every node of main-branch and the segments it sits on, read from the YAML itself."""
    spec = yaml.safe_load(MAIN_BRANCH.read_text())
    nodes = {
        name: {router["wan"]["segment"], router["lan"]["segment"]}
        for name, router in spec["routers"].items()
    }
    nodes.update({name: {host["segment"]} for name, host in spec["hosts"].items()})
    return nodes


@pytest.fixture
def natlab() -> Iterator[NatlabCommand]:
    """The natlab command with natlab's real state root (/run/natlab)."""
    command = NatlabCommand(state_root())
    yield command
    command.cleanup()


@pytest.fixture
def private_natlab(tmp_path: Path) -> Iterator[NatlabCommand]:
    """The natlab command with a private state root: `down --all` sees only this test's labs."""
    command = NatlabCommand(tmp_path / "run")
    yield command
    command.cleanup()
