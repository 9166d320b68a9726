"""Running the program steps (program_steps.py) in a scenario's lab.

Each fills the step's result like a call does: checks (exit status, output),
a report ({"program": node, argv, state, exit status, the output's tail}),
explanation lines for people (the state, the output's last lines, then every
packet a router dropped while the step ran), and the drops themselves.
Output is read within bounds (EXEC_KEEP bytes are kept to match `output:`
against, the report shows the last TAIL) and shown with bytes that are not
UTF-8 replaced, never refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import time
from typing import TYPE_CHECKING

from natlab.errors import NatlabError
from natlab.lab import Lab, programs
from natlab.lab.naming import lab_dir
from natlab.lab.processes import EXEC
from natlab.lab.supervise import ended
from natlab.scenario.expectations import Check
from natlab.scenario.explain import drop_groups, drop_lines
from natlab.scenario.program_steps import (
    ExecProgram,
    ProgramStep,
    StartProgram,
    StopProgram,
    WaitProgram,
)

if TYPE_CHECKING:
    from natlab.lab.clients import EventPosition
    from natlab.records import RouterEvent
    from natlab.scenario.runner import StepResult

EXEC_KEEP = 1024 * 1024  # bytes of an exec's output kept to match `output:` against (the last)
OUTPUT_LINES = 20  # lines of output in a step's explanation
ENDED_WITHIN = 5.0  # seconds for a supervisor to say how a program it saw end ended
POLL = 0.05


def run_program_step(lab: Lab, step: ProgramStep, result: StepResult) -> None:
    """Do step in lab, filling result (a runner.StepResult)."""
    marks = _event_marks(lab)
    try:
        if isinstance(step, StartProgram):
            _start(lab, step, result)
        elif isinstance(step, ExecProgram):
            _exec(lab, step, result)
        elif isinstance(step, WaitProgram):
            _wait(lab, step, result)
        elif isinstance(step, StopProgram):
            _stop(lab, step, result)
    finally:
        result.drops = drop_groups(_events_since(lab, marks))
        if result.drops:
            result.explanation += drop_lines(result.drops, merge_sources=True)
        elif result.program is not None:
            result.explanation.append("no router dropped a packet during the step")


def _start(lab: Lab, step: StartProgram, result: StepResult) -> None:
    pair = None
    if step.peer is not None and step.role is not None:
        shared = programs.pair_dir(lab_dir(lab.name), step.node, step.peer)
        pair = programs.Pair(step.role, step.peer, shared, step.timeout)
    state = lab.start_program(step.node, step.argv, dict(step.env), pair)
    _report(lab, step.node, state, result)


def _exec(lab: Lab, step: ExecProgram, result: StepResult) -> None:
    error = programs.command_error(step.argv, os.environ.get("PATH"))
    if error is not None:
        raise error
    env = {
        **os.environ,
        **programs.program_env(lab.topology, lab.name, step.node),
        **dict(step.env),
    }
    process = lab.popen(
        step.node,
        step.argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a group of its own, so a timeout ends its children too
    )
    try:
        lab.adopt(process.pid, step.node, EXEC)
        output, seen, timed_out = _read_until(process, time.monotonic() + step.timeout)
        if timed_out:
            programs.end_group(lab.name, step.node, process.pid)
    finally:
        if process.poll() is None:  # an error above: it must not outlive the step
            programs.end_group(lab.name, step.node, process.pid, grace=0.5)
        returncode = process.wait()
        assert process.stdout is not None
        process.stdout.close()
    state = {"argv": list(step.argv), **ended(returncode)}
    text = output.decode("utf-8", errors="replace")
    _report(lab, step.node, state, result, text[-programs.TAIL :], seen)
    if timed_out:
        observed = f"timeout: still running after {step.timeout:g} s, {programs.describe(state)}"
        result.checks.append(Check("exit status", _expected(step.exit), observed, False))
    elif step.exit is not None:
        observed = programs.describe(state)
        ok = state.get("code") == step.exit
        result.checks.append(Check("exit status", _expected(step.exit), observed, ok))
    if step.output is not None:
        found = re.search(step.output, text, re.MULTILINE)
        observed = f"matched {found[0]!r}" if found else f"no match in {seen} bytes of output"
        result.checks.append(Check("output", f"matches /{step.output}/", observed, bool(found)))


def _wait(lab: Lab, step: WaitProgram, result: StepResult) -> None:
    state = _ended(lab, step.node, step.within)
    if state["state"] == "running":
        lab.end_program(step.node)
        state = _ended(lab, step.node, ENDED_WITHIN)
        observed = f"timeout: still running after {step.within:g} s; stopped: "
        observed += programs.describe(state)
        result.checks.append(Check("exit status", _expected(step.exit), observed, False))
    elif step.exit is not None:
        ok = state.get("code") == step.exit
        observed = programs.describe(state)
        result.checks.append(Check("exit status", _expected(step.exit), observed, ok))
    _report(lab, step.node, state, result)


def _stop(lab: Lab, step: StopProgram, result: StepResult) -> None:
    _ended(lab, step.node, 0)  # a clear error if it never ran a program
    lab.end_program(step.node)
    _report(lab, step.node, _ended(lab, step.node, ENDED_WITHIN), result)


def _ended(lab: Lab, node: str, within: float) -> dict:
    """node's program state once it ended, or still running after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        state = lab.program_state(node)
        if state is None:
            raise NatlabError(
                f"node '{node}' runs no program",
                fix="start one first, with a `start:` step or `run:` in the topology",
            )
        if state["state"] != "running" or time.monotonic() >= deadline:
            return state
        time.sleep(POLL)


def _expected(code: int | None) -> str:
    return "any exit status" if code is None else f"exit {code}"


def _report(
    lab: Lab,
    node: str,
    state: dict,
    result: StepResult,
    output: str | None = None,
    seen: int | None = None,
) -> None:
    """The program's state and the tail of its output, in the report and the explanation."""
    if output is None:
        output = programs.tail(programs.log_path(lab_dir(lab.name), node))
    result.program = {"node": node, **state, "output": output}
    if seen is not None:
        result.program["output_bytes"] = seen
    result.explanation.append(f"{node}: {programs.describe(state)}")
    lines = output.splitlines()[-OUTPUT_LINES:]
    if lines:
        result.explanation.append(f"{node}'s output, last {len(lines)} line(s):")
        result.explanation += [f"  {line}" for line in lines]


def _read_until(process: subprocess.Popen, deadline: float) -> tuple[bytes, int, bool]:
    """(the last EXEC_KEEP bytes of output, bytes seen, timed out) once it ended or time is up."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    kept = bytearray()
    seen = 0
    with selectors.DefaultSelector() as watch:
        watch.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(kept), seen, True
            if not watch.select(left):
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            seen += len(data)
            kept += data
            del kept[:-EXEC_KEEP]
    try:  # its output is closed; it may still be finishing
        process.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return bytes(kept), seen, True
    return bytes(kept), seen, False


def _event_marks(lab: Lab) -> dict[str, EventPosition]:
    marks = {}
    for router in lab.topology.routers:
        with contextlib.suppress(NatlabError):  # no NAT daemon (a kernel lab): no drops to tell
            marks[router] = lab.router(router).mark()
    return marks


def _events_since(lab: Lab, marks: dict[str, EventPosition]) -> dict[str, list[RouterEvent]]:
    return {router: lab.router(router).events(mark).events for router, mark in marks.items()}
