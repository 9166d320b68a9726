"""Users' own programs in nodes: a host's `run:` and a scenario's `start:`.

natlab starts each inside its node once routers and servers serve, under a
supervisor (natlab.lab.supervise) that outlives `natlab up`: it keeps the
program's output in nodes/NODE.log within a cap and its state in
nodes/NODE.state.json. The program runs in a process group of its own,
recorded in the ledger by PID and start time, so `down` (also after natlab
crashed) ends the whole group: SIGTERM, then SIGKILL after a grace period.

Its environment is natlab's own plus NATLAB_* variables that describe the
lab (program_env): its name, the node and its address, every node's
address, the STUN and TURN servers, and, for one side of a pair (a matrix
cell, a scenario's pair of programs), its role, its peer, a directory the
two share and the seconds they have.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from natlab.endpoints import turn
from natlab.errors import NatlabError
from natlab.lab import supervise
from natlab.lab.endpoints import Launch, stun_servers
from natlab.lab.naming import node_namespace
from natlab.lab.processes import PROGRAM, SUPERVISOR, ProcessRecord, end_groups, start_time
from natlab.plumbing import namespaces
from natlab.records import ProgramState
from natlab.topology.model import Role, Topology

LOG_CAP = 10 * 1024 * 1024  # bytes of a program's output kept in its log
GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a program is ended
START_TIMEOUT = 10.0  # seconds for the supervisor to say the program runs (or cannot)
TAIL = 4096  # bytes of a log shown in a step's report
POLL = 0.02

Keep = Callable[[ProcessRecord], None]  # records a process in the lab's ledger


@dataclass(frozen=True)
class Pair:
    """One side of a pair of programs that should reach each other."""

    role: str  # "a" (controlling, calling) or "b"
    peer: str  # the other side's node
    shared: Path  # a directory of theirs alone (pair_dir)
    timeout: float | None = None  # seconds the pair has


# -- where things are --------------------------------------------------------------------------


def nodes_dir(directory: Path) -> Path:
    return directory / "nodes"


def log_path(directory: Path, node: str) -> Path:
    return nodes_dir(directory) / f"{node}.log"


def state_path(directory: Path, node: str) -> Path:
    return nodes_dir(directory) / f"{node}.state.json"


def pair_dir(directory: Path, a: str, b: str) -> Path:
    """The directory two nodes' programs share (made on first use), for rendezvous files.

    World-writable, so a program that drops root can still use it.
    """
    shared = directory / "pairs" / "+".join(sorted((a, b)))
    shared.mkdir(parents=True, exist_ok=True)
    shared.chmod(0o777)
    return shared


# -- environment -------------------------------------------------------------------------------


def env_key(node: str) -> str:
    """NATLAB_ADDR_<NODE>: upper case, and `-` or `.` (not allowed in a variable's name) as `_`."""
    return "NATLAB_ADDR_" + re.sub(r"[^A-Z0-9_]", "_", node.upper())


def program_env(
    topology: Topology, lab: str, node: str, pair: Pair | None = None
) -> dict[str, str]:
    """The NATLAB_* variables a program in node gets (added to natlab's own environment).

    A router's address is its WAN address. NATLAB_STUN lists every STUN
    service of the lab, as phones use them: the stun-server hosts on 3478, then
    the routers' own responders (`stun: true`) on their WAN address.
    """
    env = {
        "NATLAB_LAB": lab,
        "NATLAB_NODE": node,
        "NATLAB_ADDR": str(topology.node(node).interfaces[0].address),
    }
    for name, each in topology.nodes.items():
        env[env_key(name)] = str(each.interfaces[0].address)
    env["NATLAB_STUN"] = ",".join(f"{ip}:{port}" for ip, port in stun_servers(topology))
    relays = [h for h in topology.hosts.values() if h.role is Role.TURN_SERVER]
    if relays:
        env["NATLAB_TURN"] = f"{relays[0].interfaces[0].address}:{turn.PORT}"
        env["NATLAB_TURN_USER"] = turn.USERNAME
        env["NATLAB_TURN_PASSWORD"] = turn.PASSWORD
    if pair is not None:
        env["NATLAB_ROLE"] = pair.role
        env["NATLAB_PEER"] = pair.peer
        env["NATLAB_SHARED"] = str(pair.shared)
        if pair.timeout is not None:
            env["NATLAB_TIMEOUT"] = f"{pair.timeout:g}"
    return env


# -- starting ----------------------------------------------------------------------------------


def command_error(argv: Sequence[str], path: str | None, **where: str | None) -> NatlabError | None:
    """None if argv[0] names a program natlab can run; else the error saying so.

    Namespaces share the host's filesystem, so a command found here is found
    in any node; `where` (file, field) points at what named it.
    """
    if shutil.which(argv[0], path=path) is not None:
        return None
    how = "is not an executable file" if "/" in argv[0] else "is not found in PATH"
    return NatlabError(
        f"command '{argv[0]}' {how}",
        fix=f"install it or give its full path (PATH is {path or '(unset)'})",
        **where,
    )


def check_commands(topology: Topology, path: str | None) -> None:
    """Refuse a topology whose `run:` names a command that does not exist, before building."""
    for host in topology.hosts.values():
        if host.run:
            error = command_error(
                host.run, path, file=topology.source, field=f"hosts.{host.name}.run"
            )
            if error is not None:
                raise error


def start(
    launch: Launch,
    keep: Keep,
    directory: Path,
    node: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_cap: int = LOG_CAP,
    grace: float = GRACE,
) -> dict:
    """Start argv in node under a supervisor, record it, and return its state (running)."""
    nodes_dir(directory).mkdir(exist_ok=True)
    status = state_path(directory, node)
    current = read_state(directory, node)
    if current is not None and current["state"] == "running":
        raise NatlabError(
            f"node '{node}' already runs a program (pid {current['pid']})",
            fix="stop it first (a scenario's `stop:` step)",
        )
    status.unlink(missing_ok=True)
    config = supervise.SupervisorConfig(tuple(argv), dict(env), status, log_cap, grace)
    log = log_path(directory, node)
    pid = launch(node, partial(supervise.run, config), log, SUPERVISOR)
    deadline = time.monotonic() + START_TIMEOUT
    while (state := read_state(directory, node)) is None:
        if start_time(pid) is None or time.monotonic() > deadline:
            raise NatlabError(
                f"natlab could not start the program of node '{node}'",
                fix=f"its log says: {tail(log, 400) or '(nothing)'}",
            )
        time.sleep(POLL)
    if state["state"] == "failed":
        raise NatlabError(
            f"node '{node}' cannot start '{argv[0]}': {state['error']}",
            fix="check the command (natlab runs it without a shell)",
        )
    if state.get("start") is not None:  # None: it ended at once, its supervisor saw to the rest
        keep(ProcessRecord(state["pid"], state["start"], node, PROGRAM))
    return state


def start_all(topology: Topology, lab: str, directory: Path, launch: Launch, keep: Keep) -> None:
    """Every host's `run:`, in file order."""
    for host in topology.hosts.values():
        if host.run:
            env = {**os.environ, **program_env(topology, lab, host.name)}
            start(launch, keep, directory, host.name, host.run, env)


# -- what became of it -------------------------------------------------------------------------


def read_state(directory: Path, node: str) -> dict | None:
    """The supervisor's word on node's program; None if it has none (yet)."""
    try:
        return ProgramState.from_json(json.loads(state_path(directory, node).read_text())).to_json()
    except (OSError, ValueError, NatlabError):
        return None


def current_state(directory: Path, node: str, records: Sequence[ProcessRecord]) -> dict | None:
    """read_state, unless it says running of a program that is gone with nobody to say so."""
    state = read_state(directory, node)
    if state is None or state["state"] != "running":
        return state
    supervisors = [r for r in records if r.node == node and r.what == SUPERVISOR]
    if any(r.alive() for r in supervisors):
        return state  # it runs, or is being ended and the supervisor will say how
    return {**state, "state": "unknown", "error": "its supervisor is gone"}


def states(directory: Path, records: Sequence[ProcessRecord]) -> dict[str, dict]:
    """Every node's program state, by node."""
    found = {}
    for path in sorted(nodes_dir(directory).glob("*.state.json")):
        node = path.name.removesuffix(".state.json")
        state = current_state(directory, node, records)
        if state is not None:
            found[node] = state
    return found


def describe(state: dict) -> str:
    """A program's state for people: running (pid 42), exited 1, killed by SIGKILL, ..."""
    kind = state["state"]
    if kind == "running":
        return f"running (pid {state['pid']})"
    if kind == "exited":
        text = f"exited {state['code']}"
    elif kind == "killed":
        text = f"killed by {state['signal']}"
    else:  # failed, unknown
        text = f"{kind}: {state.get('error', 'no reason given')}"
    if state.get("log_dropped"):
        text += f" (log cut, {state['log_dropped']} bytes dropped)"
    return text


def tail(path: Path, limit: int = TAIL) -> str:
    """The last `limit` bytes of a log as text; bytes that are not UTF-8 become U+FFFD."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - limit, 0))
            data = handle.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


# -- ending ------------------------------------------------------------------------------------


def end_programs(lab: str, records: Sequence[ProcessRecord], grace: float = GRACE) -> None:
    """End the process group of each recorded program (all at once): SIGTERM, then SIGKILL."""
    groups = [
        (r.pid, namespaces.inode(node_namespace(lab, r.node))) for r in records if r.what == PROGRAM
    ]
    end_groups(groups, grace)


def end_group(lab: str, node: str, pgid: int, grace: float = GRACE) -> None:
    """End one process group living in node (an `exec` step's command and its children)."""
    end_groups([(pgid, namespaces.inode(node_namespace(lab, node)))], grace)
