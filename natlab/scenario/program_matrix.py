"""`natlab matrix --run CMD`: any pair of programs across every pair of NAT types.

A cell brings up the topology in a lab of its own with the two routers
set to the cell's types, starts program A in node A and program B in node
B (pair_programs.py: NATLAB_ROLE a|b, NATLAB_PEER, NATLAB_SHARED, ...),
waits for both up to the timeout, and judges the cell from two sides:

- the programs: both exit 0 = connected; else failed (exit status, timeout);
- natlab's own observation of the routers while they ran (pair_path.py):
  direct (each side received the other's traffic from its public side,
  through both NATs), relayed (through a TURN server or the PBX's relay),
  the selected pair as natlab saw it, and the packets each router dropped.

The expectation of each cell is the field's table (expectations.py): a
pair that fails direct is expected to fail, or to go through the relay
when the topology has a TURN server; any cell can be overridden (a matrix
file's or --expect's `symmetric x symmetric: relayed`).
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from natlab.core.behaviour import behaviour_from
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.processes import Death
from natlab.scenario import pair_programs
from natlab.scenario.capture import capturing
from natlab.scenario.expectations import FAILING_PAIRS, TYPES, nat_preset
from natlab.scenario.pair_path import (
    DIRECT,
    RELAYED,
    PairPath,
    Relay,
    pair_path,
    read_flows,
)
from natlab.scenario.shards import shard_cells, shard_json, slow_first
from natlab.scenario.verdict import ERROR, FAILED, FAULT, PASSED, exit_code, fault_text, worst
from natlab.topology import Topology
from natlab.topology.lab_name import unique_lab_name
from natlab.topology.model import Role

CONNECTED, FAILED_TO_CONNECT = "connected", "failed"
OUTCOMES = (DIRECT, RELAYED, CONNECTED, FAILED_TO_CONNECT)  # what a cell may be expected to do
SNAPLEN = 64  # the capture keeps headers only
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ProgramMatrix:
    """What to run: a topology, its two routers and nodes, the two programs, types, table."""

    topology: Topology
    routers: tuple[str, str]
    nodes: tuple[str, str]
    run_a: tuple[str, ...]
    run_b: tuple[str, ...]
    types: tuple[str, ...] = TYPES
    timeout: float = DEFAULT_TIMEOUT
    expect: dict[tuple[str, str], str] = field(default_factory=dict)  # cells overridden

    def __post_init__(self) -> None:
        for router in self.routers:
            if router not in self.topology.routers:
                raise NatlabError(
                    f"no router named '{router}' in topology '{self.topology.name}'",
                    field="--routers",
                    fix=f"routers: {', '.join(self.topology.routers)}",
                )
        for node, router in zip(self.nodes, self.routers, strict=True):
            self.topology.node(node)  # a clear error for an unknown node
            if router_lan(self.topology, router, node) is None:
                raise NatlabError(
                    f"node '{node}' is not on a LAN of router '{router}'",
                    field="--nodes",
                    fix="name each node behind its router, in the order of --routers",
                )
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise NatlabError(
                f"--timeout {self.timeout:g} is not a time a pair can have",
                field="--timeout",
                fix=f"give seconds, more than 0 and at most {MAX_TIMEOUT:g}",
            )

    @property
    def has_turn(self) -> bool:
        return any(h.role == Role.TURN_SERVER for h in self.topology.hosts.values())

    def expected(self, a_type: str, b_type: str) -> str:
        """The cell's expectation: an override, else the field's table."""
        if (a_type, b_type) in self.expect:
            return self.expect[(a_type, b_type)]
        if frozenset({a_type, b_type}) in FAILING_PAIRS:
            return RELAYED if self.has_turn else FAILED_TO_CONNECT
        return DIRECT

    def settings_json(self) -> dict:
        return {
            "topology": self.topology.source,
            "routers": list(self.routers),
            "nodes": list(self.nodes),
            "run_a": list(self.run_a),
            "run_b": list(self.run_b),
            "timeout": self.timeout,
            "types": list(self.types),
            "expect": {f"{a} x {b}": value for (a, b), value in sorted(self.expect.items())},
        }


def router_lan(topology: Topology, router: str, node: str) -> str | None:
    """The name of router's interface on node's segment, if node sits on one of its LANs."""
    segment = topology.node(node).interfaces[0].segment
    lan = next((i for i in topology.routers[router].lans if i.segment == segment), None)
    return None if lan is None else lan.name


def outcome_matches(expected: str, observed: str) -> bool:
    """`connected` holds for direct and relayed too; the rest must be what was observed."""
    if expected == CONNECTED:
        return observed in (DIRECT, RELAYED, CONNECTED)
    return expected == observed


@dataclass
class CellResult:
    a_type: str  # routers[0]'s, node A's side
    b_type: str
    expected: str
    observed: str  # DIRECT, RELAYED, CONNECTED (path not seen), FAILED_TO_CONNECT, or error
    lab: str = ""
    programs: dict[str, str] = field(default_factory=dict)  # node -> "exit 0", "timeout", ...
    output: dict[str, list[str]] = field(default_factory=dict)  # node -> its last lines
    path: PairPath | None = None
    drops: dict[str, dict[str, int]] = field(default_factory=dict)  # router -> reason -> packets
    error: str | None = None
    deaths: list[Death] = field(default_factory=list)
    seconds: float = 0.0  # the whole cell: lab up, programs, observation, lab down
    program_seconds: float = 0.0  # from starting the programs until both ended
    phases: dict[str, float] = field(default_factory=dict)  # where the cell's time went

    @property
    def verdict(self) -> str:
        if self.deaths:
            return FAULT
        if self.error is not None:
            return ERROR
        return PASSED if outcome_matches(self.expected, self.observed) else FAILED

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def fault(self) -> str | None:
        return fault_text(self.deaths)

    @property
    def shown(self) -> str:
        """ "connected direct", "connected via relay", "failed: exit 1 / timeout"."""
        if self.error is not None:
            return "error"
        if self.observed == DIRECT:
            return "connected direct"
        if self.observed == RELAYED:
            return "connected via relay"
        if self.observed == CONNECTED:
            return "connected (path not seen)"
        return "failed: " + " / ".join(self.programs.values())

    @property
    def explanation(self) -> list[str]:
        lines = [f"error: {self.error}"] if self.error else []
        if self.fault:
            lines.append(self.fault)
        lines += [f"{node}: {outcome}" for node, outcome in self.programs.items()]
        if self.path is not None:
            lines.append(f"path as natlab saw it: {self.path.way}")
            if self.path.selected:
                lines.append(f"selected pair as natlab saw it: {self.path.selected}")
        for router, reasons in self.drops.items():
            total = sum(reasons.values())
            detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
            lines.append(f"{router} dropped {total} packet(s)" + (f": {detail}" if total else ""))
        if not self.passed:
            for node, tail in self.output.items():
                lines += [f"{node}| {line}" for line in tail]
        return lines

    def as_json(self, plan: ProgramMatrix) -> dict:
        (router_a, router_b), (node_a, node_b) = plan.routers, plan.nodes
        return {
            "caller": {"node": node_a, "router": router_a, "type": self.a_type},
            "callee": {"node": node_b, "router": router_b, "type": self.b_type},
            "expected": self.expected,
            "observed": self.observed,
            "shown": self.shown,
            "verdict": self.verdict,
            "passed": self.passed,
            "fault": self.fault,
            "error": self.error,
            "programs": self.programs,
            **(self.path or PairPath("none", None)).as_json(),
            "drops": self.drops,
            "lab": self.lab,
            "seconds": round(self.seconds, 3),
            "program_seconds": round(self.program_seconds, 3),
            "phases": {phase: round(seconds, 3) for phase, seconds in self.phases.items()},
            "explanation": self.explanation,
        }


@dataclass
class ProgramMatrixResult:
    plan: ProgramMatrix
    jobs: int
    cells: list[CellResult]
    seconds: float
    shard: tuple[int, int] | None = None

    @property
    def types(self) -> tuple[str, ...]:
        return self.plan.types

    @property
    def verdict(self) -> str:
        return worst(cell.verdict for cell in self.cells)

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict, [d for cell in self.cells for d in cell.deaths])

    def as_json(self) -> dict:
        return {
            **self.plan.settings_json(),
            "programs": True,
            "jobs": self.jobs,
            "verdict": self.verdict,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "shard": shard_json(self.shard),
            "pairs": [cell.as_json(self.plan) for cell in self.cells],
        }


Progress = Callable[[CellResult], None]


def run_program_matrix(
    plan: ProgramMatrix,
    jobs: int,
    progress: Progress | None = None,
    shard: tuple[int, int] | None = None,
) -> ProgramMatrixResult:
    """Every cell (of the shard), `jobs` labs at a time; results in table order."""
    from natlab.scenario.matrix import worker_signals

    if jobs < 1:
        raise NatlabError(f"--jobs {jobs} is not a number of labs", fix="use --jobs 1 or more")
    started = time.monotonic()
    cells = shard_cells([(a, b) for a in plan.types for b in plan.types], *(shard or (1, 1)))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["natlab.scenario.program_matrix"])
    done: dict[tuple[str, str], CellResult] = {}
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_signals)
    try:
        futures: dict[Future, tuple[str, str]] = {
            pool.submit(run_cell, plan, *cell): cell
            for cell in slow_first(cells, lambda cell: frozenset(cell) in FAILING_PAIRS)
        }
        for future in as_completed(futures):
            cell = futures[future]
            done[cell] = _collected(plan, cell, future)
            if progress:
                progress(done[cell])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    found = [done[cell] for cell in cells]
    return ProgramMatrixResult(plan, jobs, found, time.monotonic() - started, shard)


def _collected(plan: ProgramMatrix, cell: tuple[str, str], future: Future) -> CellResult:
    error = future.exception()
    if error is None:
        return future.result()
    text = "".join(traceback.format_exception(error)).strip()
    return CellResult(*cell, plan.expected(*cell), "error", error=text)


def run_cell(plan: ProgramMatrix, a_type: str, b_type: str) -> CellResult:
    """One cell in a lab of its own, always taken down again."""
    started = time.monotonic()
    behaviours = {
        router: behaviour_from(nat_preset(kind))
        for router, kind in zip(plan.routers, (a_type, b_type), strict=True)
    }
    topology = plan.topology.with_behaviours(behaviours)
    short = {"full-cone": "fc", "restricted": "rc", "port-restricted": "prc", "symmetric": "sym"}
    name = unique_lab_name(f"pm-{short.get(a_type, 'pub')}-{short.get(b_type, 'pub')}")
    result = CellResult(a_type, b_type, plan.expected(a_type, b_type), FAILED_TO_CONNECT, name)
    lab = Lab(topology, name)
    try:
        lab.up()
        result.phases["up"] = time.monotonic() - started
    except NatlabError as error:
        result.error = f"the lab did not come up: {error}"
        result.observed = "error"
        result.seconds = time.monotonic() - started
        return result
    scratch = Path(tempfile.mkdtemp(prefix=f"natlab-{name}-"))
    try:
        _run_programs(plan, lab, scratch, result)
        result.deaths = lab.deaths()
    finally:
        down = time.monotonic()
        lab.down()
        result.phases["down"] = time.monotonic() - down
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def _run_programs(plan: ProgramMatrix, lab: Lab, scratch: Path, result: CellResult) -> None:
    (node_a, node_b), (router_a, router_b) = plan.nodes, plan.routers
    topology = lab.topology
    addresses = {node: str(topology.node(node).interfaces[0].address) for node in plan.nodes}
    wanted = [
        (router, router_lan(topology, router, node), f"udp and dst host {addresses[node]}")
        for router, node in zip(plan.routers, plan.nodes, strict=True)
    ]
    programs = [
        pair_programs.Program(node_a, plan.run_a),
        pair_programs.Program(node_b, plan.run_b),
    ]
    began = time.monotonic()
    with capturing(lab, scratch, wanted, SNAPLEN) as files:
        launched = time.monotonic()
        result.phases["capture"] = launched - began
        pair_programs.run_pair(lab, programs, [node_b, node_a], plan.timeout)
        result.program_seconds = time.monotonic() - launched
    observing = time.monotonic()
    result.programs = {p.node: p.outcome() for p in programs}
    result.output = {p.node: pair_programs.output_tail(lab, p.node) for p in programs}
    not_started = [p.error for p in programs if p.error is not None]
    if not_started:
        result.error = "; ".join(not_started)
        result.observed = "error"
    public = {
        node: {addresses[node], str(topology.routers[router].wan.address)}
        for router, node in zip(plan.routers, plan.nodes, strict=True)
    }
    flows = [read_flows(path) for path in files]
    result.path = pair_path(*flows, public[node_a], public[node_b], relays(topology))
    result.drops = {router: _drops(lab, router) for router in (router_a, router_b)}
    if result.error is None and all(p.succeeded for p in programs):
        result.observed = result.path.way if result.path.way in (DIRECT, RELAYED) else CONNECTED
    result.phases["observe"] = time.monotonic() - observing


def relays(topology: Topology) -> list[Relay]:
    """Where relayed traffic comes from: TURN servers, PBXs, and routers' forwards to a PBX."""
    servers = [h for h in topology.hosts.values() if h.role in (Role.TURN_SERVER, Role.PBX)]
    found: list[Relay] = [(str(h.interfaces[0].address), 1, 65535) for h in servers]
    pbxs = {h.name for h in servers if h.role == Role.PBX}
    for router in topology.routers.values():
        found += [
            (str(router.wan.address), *forward.external_ports)
            for forward in router.forwards
            if forward.proto == "udp" and forward.host in pbxs
        ]
    return found


def _drops(lab: Lab, router: str) -> dict[str, int]:
    """The router's drop counters that are not zero, by reason."""
    counters = lab.router(router).counters()
    return {
        name.removeprefix("dropped_").replace("_", "-"): count
        for name, count in counters.items()
        if name.startswith("dropped_") and count
    }


def check_outcome(value: str, where: str) -> str:
    if value not in OUTCOMES:
        raise NatlabError(
            f"'{value}' is not what a cell can do",
            field=where,
            fix=f"use one of: {', '.join(OUTCOMES)}",
        )
    return value


def check_pair_of(values: Sequence[str], option: str) -> tuple[str, str]:
    if len(values) != 2 or not all(values):
        raise NatlabError(
            f"{option} needs two names, not {len(values)}",
            field=option,
            fix=f"write {option} FIRST,SECOND",
        )
    return values[0], values[1]
