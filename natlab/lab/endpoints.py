"""The processes a lab starts for its hosts' roles, and how it knows they serve.

A `stun-server` host runs the lab's public STUN server on its two addresses
and ports 3478 and 3479 (natlab.endpoints.stun_server). Each endpoint logs
to hosts/NAME.log in the lab's state directory and says "ready" there once
it serves; `up` returns only after every endpoint did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from natlab.endpoints import stun_server
from natlab.errors import NatlabError
from natlab.router.launch import exited, log_tail
from natlab.topology.model import Role, Topology

STUN_SERVER = "stun server"  # what the ledger calls the process
READY = "ready"
READY_TIMEOUT = 10.0

Launch = Callable[[str, Callable[[], object], Path, str], int]


@dataclass(frozen=True)
class Started:
    host: str
    pid: int
    log: Path


def start_endpoints(topology: Topology, directory: Path, launch: Launch) -> list[Started]:
    started = []
    for host in topology.hosts.values():
        if host.role is not Role.STUN_SERVER:
            continue
        argv = [arg for a in host.interfaces[0].addresses for arg in ("--address", str(a.ip))]
        log = directory / "hosts" / f"{host.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        pid = launch(host.name, partial(stun_server.main, argv), log, STUN_SERVER)
        started.append(Started(host.name, pid, log))
    return started


def wait_ready(started: list[Started], timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for endpoint in started:
        while not _said_ready(endpoint.log):
            if exited(endpoint.pid) or time.monotonic() > deadline:
                raise NatlabError(
                    f"the STUN server of host '{endpoint.host}' did not start",
                    fix=f"its log says: {log_tail(endpoint.log)}",
                )
            time.sleep(0.01)


def _said_ready(log: Path) -> bool:
    try:
        return any(line.startswith(READY) for line in log.read_text().splitlines())
    except FileNotFoundError:
        return False
