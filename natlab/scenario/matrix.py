"""`natlab matrix`: every pair of NAT types, phone to phone, held to docs/design.md's table.

On main-branch, phone-b (behind branch1) calls phone-c (behind branch2)
with branch1's and branch2's NAT set to each pair of types: the four
presets and `public` (the router only routes). Each pair is a scenario of
its own (both phones registered, one ICE call whose media must be what
expectations.py says) run in a lab of its own, so no mapping or
registration of one pair can leak into another.

A pair whose lab lost a process while it ran (a router's NAT daemon, a
phone, the PBX, a server) is a `fault`: its cell says so, and it does not
count as the NAT behaving otherwise than the table says (verdict.py).

Labs are mostly waiting (for registrations, ICE checks, a call's length),
so pairs run side by side in `jobs` worker processes. Workers ignore
Ctrl-C: on an interrupt natlab cancels the pairs not yet started and lets
each running one finish and take its lab down.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from natlab.core.behaviour import PRESETS
from natlab.core.impair import LinkImpairment
from natlab.errors import NatlabError
from natlab.scenario.expectations import (
    FAILING_PAIRS,
    NO_MEDIA,
    PUBLIC,
    TYPES,
    expected_media,
    nat_preset,
    observed_media,
)
from natlab.scenario.model import TOPOLOGIES, Call, Scenario, WaitRegistered
from natlab.scenario.runner import ScenarioResult
from natlab.scenario.shards import shard_cells, shard_json, slow_first
from natlab.scenario.trace import TRACES, pair_trace, run_traced
from natlab.scenario.verdict import (
    ERROR,
    FAILED,
    FAULT,
    NOT_NAT,
    PASSED,
    exit_code,
    fault_text,
    worst,
)
from natlab.topology import Topology, load_topology
from natlab.topology.lab_name import unique_lab_name

TOPOLOGY = TOPOLOGIES / "main-branch.yaml"
CALLER, CALLEE = "phone-b", "phone-c"
CALLER_ROUTER, CALLEE_ROUTER = "branch1", "branch2"
CALL_SECONDS = 0.6  # 30 RTP packets each way: plenty for a verdict (half must arrive)
SHORT = {"full-cone": "fc", "restricted": "rc", "port-restricted": "prc", "symmetric": "sym"}


@dataclass
class PairResult:
    caller_type: str  # branch1's, phone-b's side
    callee_type: str  # branch2's, phone-c's side
    expected: str
    observed: str  # the phones' verdict, or what kept the call from happening (fault, error)
    result: ScenarioResult

    @property
    def verdict(self) -> str:
        ran = self.result.verdict
        if ran in (FAULT, ERROR):
            return ran
        return PASSED if ran == PASSED and self.observed == self.expected else FAILED

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def fault(self) -> str | None:
        """The lab processes that died while the pair ran, for people; None if none did."""
        return fault_text(self.result.deaths)

    @property
    def explanation(self) -> list[str]:
        lines = [f"error: {self.result.error}"] if self.result.error else []
        for step in self.result.steps:
            if step.fault:
                lines.append(f"{step.text}: {step.fault}: {NOT_NAT}")
            if step.error:
                lines.append(f"{step.text}: {step.error}")
            elif not step.passed:
                lines += [f"{c.what}: {c.observed}" for c in step.checks if not c.ok]
            if not self.passed or self.observed != "two-way":
                lines += step.explanation
        return lines

    def as_json(self) -> dict:
        return {
            "caller": {"phone": CALLER, "router": CALLER_ROUTER, "type": self.caller_type},
            "callee": {"phone": CALLEE, "router": CALLEE_ROUTER, "type": self.callee_type},
            "expected": self.expected,
            "observed": self.observed,
            "verdict": self.verdict,
            "passed": self.passed,
            "fault": self.fault,
            "explanation": self.explanation,
            "scenario": self.result.as_json(),
        }


@dataclass
class MatrixResult:
    types: tuple[str, ...]
    relay: bool
    jobs: int
    pairs: list[PairResult]
    seconds: float
    shard: tuple[int, int] | None = None  # --shard K/N: this run holds that slice of the cells
    impair: dict[str, LinkImpairment] = field(default_factory=dict)  # --impair, by interface

    @property
    def verdict(self) -> str:
        return worst(pair.verdict for pair in self.pairs)

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def wrong(self) -> list[PairResult]:
        """The pairs that did otherwise than the table says (a fault is not one)."""
        return [pair for pair in self.pairs if pair.verdict in (FAILED, ERROR)]

    @property
    def faults(self) -> list[PairResult]:
        return [pair for pair in self.pairs if pair.verdict == FAULT]

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict, [d for pair in self.pairs for d in pair.result.deaths])

    def as_json(self) -> dict:
        return {
            "topology": str(TOPOLOGY),
            "types": list(self.types),
            "relay": self.relay,
            "jobs": self.jobs,
            "verdict": self.verdict,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "shard": shard_json(self.shard),
            "impair": {iface: link.describe() for iface, link in self.impair.items()},
            "pairs": [pair.as_json() for pair in self.pairs],
        }


def check_types(types: Sequence[str]) -> tuple[str, ...]:
    unknown = [kind for kind in types if kind not in TYPES]
    if unknown or not types:
        raise NatlabError(
            f"unknown NAT type '{unknown[0]}'" if unknown else "no NAT type given",
            field="--types",
            fix=f"use some of: {', '.join(TYPES)}",
        )
    return tuple(dict.fromkeys(types))


def pair_scenario(
    caller_type: str,
    callee_type: str,
    relay: bool = False,
    impair: dict[str, LinkImpairment] | None = None,
) -> Scenario:
    """One pair as a scenario: both phones registered, one call whose media the table says;
    every router's interfaces `impair` names impaired so."""
    media = expected_media(caller_type, callee_type, relay)
    behaviours = {
        CALLER_ROUTER: PRESETS[nat_preset(caller_type)],
        CALLEE_ROUTER: PRESETS[nat_preset(callee_type)],
    }
    call = Call(
        CALLER,
        CALLEE,
        CALL_SECONDS,
        mode="relay" if relay else "ice",
        media="none" if media == NO_MEDIA else media,
    )
    name = f"{caller_type}-x-{callee_type}"
    return Scenario(
        name=name,
        source=f"matrix/{name}",
        topology=_main_branch().with_behaviours(behaviours).with_impairments(impair or {}),
        steps=(WaitRegistered((CALLER, CALLEE)), call),
    )


@cache
def _main_branch() -> Topology:
    return load_topology(TOPOLOGY)


def default_jobs() -> int:
    return max(2, os.cpu_count() or 1)


Progress = Callable[[PairResult], None]


def run_matrix(
    types: Sequence[str] = TYPES,
    relay: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    trace_dir: Path | None = None,
    pcap_dir: Path | None = None,
    shard: tuple[int, int] | None = None,
    impair: dict[str, LinkImpairment] | None = None,
) -> MatrixResult:
    """Every ordered pair of `types`, `jobs` labs at a time; results in table order.

    Each pair's trace (trace.py) goes to `trace_dir`, or, for a failed pair only, to a file of
    its own in natlab-traces/ (its result says which).
    With `pcap_dir`, each pair's captures go to a folder of its own there (capture.py).
    With `shard` (K, N), only that slice of the pairs runs (shards.py).
    With `impair` (interface -> impairment), every router's such interface is impaired.
    """
    types = check_types(types)
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise NatlabError(f"--jobs {jobs} is not a number of labs", fix="use --jobs 1 or more")
    started = time.monotonic()
    pairs = shard_cells([(a, b) for a in types for b in types], *(shard or (1, 1)))
    scenarios = {pair: pair_scenario(*pair, relay, impair) for pair in pairs}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["natlab.scenario.trace"])
    keep_all, traces = trace_dir is not None, (trace_dir or TRACES).resolve()
    done: dict[tuple[str, str], PairResult] = {}
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_signals)
    try:
        futures: dict[Future, tuple[str, str]] = {
            pool.submit(
                run_traced,
                scenarios[pair],
                _lab_name(*pair),
                pair_trace(traces, *pair) if keep_all else None,
                None if keep_all else pair_trace(traces, *pair),
                None,
                pair_trace(pcap_dir.resolve(), *pair).with_suffix("") if pcap_dir else None,
            ): pair
            for pair in slow_first(pairs, lambda pair: frozenset(pair) in FAILING_PAIRS)
        }
        for future in as_completed(futures):
            pair = futures[future]
            done[pair] = _pair_result(*pair, relay, scenarios[pair], future)
            if progress:
                progress(done[pair])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return MatrixResult(
        types,
        relay,
        jobs,
        [done[pair] for pair in pairs],
        time.monotonic() - started,
        shard,
        impair or {},
    )


def _lab_name(caller_type: str, callee_type: str) -> str:
    short = {**SHORT, PUBLIC: "pub"}
    return unique_lab_name(f"mx-{short[caller_type]}-{short[callee_type]}")


def worker_signals() -> None:
    """Ctrl-C is the parent's to handle; SIGTERM still takes a worker's lab down on its way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _pair_result(
    caller_type: str, callee_type: str, relay: bool, scenario: Scenario, future: Future
) -> PairResult:
    expected = expected_media(caller_type, callee_type, relay)
    error = future.exception()
    if error is not None:  # a bug, not a verdict: keep its traceback for the report
        text = "".join(traceback.format_exception(error)).strip()
        result = ScenarioResult(scenario.name, scenario.source, "", error=text)
        return PairResult(caller_type, callee_type, expected, "error", result)
    result: ScenarioResult = future.result()
    call = next((s for s in result.steps if s.report is not None), None)
    if result.verdict == FAULT:
        observed = FAULT
    elif call is not None:
        observed = observed_media(call.call_report) if call.call_report else "error"
    elif result.error or any(s.error for s in result.steps):
        observed = "error"
    else:
        observed = "not run"
    return PairResult(caller_type, callee_type, expected, observed, result)
