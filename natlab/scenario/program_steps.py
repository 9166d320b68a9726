"""Scenario steps for users' own programs: start, exec, wait, stop.

    - start: {node: a, run: "./agent --offer", env: {DEBUG: 1}, peer: b, role: a}
    - start: {node: b, run: ["./agent", "--answer"], peer: b-side, role: b, timeout: 20s}
    - exec: {node: a, run: "curl -s http://203.0.113.9/", timeout: 10s}
      expect: {exit: 0, output: "hello"}
    - wait: {node: a, exit: 0, within: 30s}
    - stop: b

`start` runs a program in the background as a topology's `run:` does
(supervised, logged to nodes/NODE.log, its group ended at `down`); `peer`
and `role` make it one side of a pair (NATLAB_ROLE, NATLAB_PEER,
NATLAB_SHARED; `timeout` gives NATLAB_TIMEOUT). `exec` runs one to its end
(killed with its process group after `timeout`) and holds its exit status
and output to `expect`. `wait` waits for a started program to end and holds
its exit status (killed after `within`); `stop` ends it (SIGTERM, SIGKILL
after the grace period). This module reads the steps; program_runs.py runs them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from natlab.errors import NatlabError
from natlab.topology import Topology
from natlab.topology.command import split_command
from natlab.topology.yaml_source import Path

EXEC_TIMEOUT = 30.0
WAIT_WITHIN = 30.0
EnvValue = str | int | float | bool


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartSpec(_Spec):
    node: str
    run: str | list[str]
    env: dict[str, EnvValue] = Field(default_factory=dict)
    peer: str | None = None
    role: Literal["a", "b"] | None = None
    timeout: float | str | None = None


class ExecSpec(_Spec):
    node: str
    run: str | list[str]
    env: dict[str, EnvValue] = Field(default_factory=dict)
    timeout: float | str = EXEC_TIMEOUT


class ExecExpectSpec(_Spec):
    exit: int | None = 0
    output: str | None = None  # a regular expression searched for in the output


class WaitForSpec(_Spec):
    node: str
    exit: int | None = 0
    within: float | str = WAIT_WITHIN


class StartStepSpec(_Spec):
    start: StartSpec


class ExecStepSpec(_Spec):
    exec_: ExecSpec = Field(alias="exec")
    expect: ExecExpectSpec | None = None


class WaitForStepSpec(_Spec):
    wait: WaitForSpec


class StopStepSpec(_Spec):
    stop: str


STEP_SPECS: dict[str, type[_Spec]] = {
    "start": StartStepSpec,
    "exec": ExecStepSpec,
    "wait": WaitForStepSpec,
    "stop": StopStepSpec,
}


@dataclass(frozen=True)
class StartProgram:
    node: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    peer: str | None = None
    role: str | None = None
    timeout: float | None = None  # NATLAB_TIMEOUT of a pair

    def describe(self) -> str:
        side = f" as {self.role}, peer {self.peer}" if self.peer else ""
        return f"start {_shown(self.argv)} in {self.node}{side}"


@dataclass(frozen=True)
class ExecProgram:
    node: str
    argv: tuple[str, ...]
    timeout: float = EXEC_TIMEOUT
    env: tuple[tuple[str, str], ...] = ()
    exit: int | None = 0  # the exit status expected; None: any
    output: str | None = None  # a regular expression the output must hold

    def describe(self) -> str:
        return f"exec {_shown(self.argv)} in {self.node}"


@dataclass(frozen=True)
class WaitProgram:
    node: str
    exit: int | None = 0
    within: float = WAIT_WITHIN

    def describe(self) -> str:
        return f"wait for {self.node}'s program to end (within {self.within:g} s)"


@dataclass(frozen=True)
class StopProgram:
    node: str

    def describe(self) -> str:
        return f"stop {self.node}'s program"


ProgramStep = StartProgram | ExecProgram | WaitProgram | StopProgram
Fail = Callable[[Path, str, str | None], NatlabError]
Duration = Callable[[Any, Path], float]  # seconds, or the NatlabError of the field


def _shown(argv: tuple[str, ...], limit: int = 60) -> str:
    text = shlex.join(argv)
    return f'"{text if len(text) <= limit else text[: limit - 3] + "..."}"'


def program_step(
    action: str, spec: Any, at: Path, topology: Topology, fail: Fail, duration: Duration
) -> ProgramStep:
    """The step `action` from its validated spec; at is the path of its action's field."""

    def node(name: str, where: Path) -> str:
        if name not in topology.nodes:
            raise fail(
                where,
                f"no node named '{name}' in topology '{topology.name}'",
                f"use one of: {', '.join(topology.nodes)}",
            )
        return name

    def argv(value: str | list[str], where: Path) -> tuple[str, ...]:
        try:
            return split_command(value)
        except ValueError as error:
            fix = "write the command as a shell would, or as a list"
            raise fail(where, str(error), fix) from None

    def env(values: dict[str, EnvValue]) -> tuple[tuple[str, str], ...]:
        shown = {True: "1", False: "0"}
        return tuple(
            (key, shown[v] if isinstance(v, bool) else str(v)) for key, v in values.items()
        )

    if action == "start":
        start: StartSpec = spec.start
        if (start.peer is None) != (start.role is None):
            raise fail(
                (*at, "role" if start.role is None else "peer"),
                "one side of a pair names both its peer and its role",
                "give both peer: NODE and role: a (or b), or neither",
            )
        if start.peer is not None and start.peer == start.node:
            raise fail((*at, "peer"), "a program cannot be its own peer", "name the other node")
        return StartProgram(
            node(start.node, (*at, "node")),
            argv(start.run, (*at, "run")),
            env(start.env),
            node(start.peer, (*at, "peer")) if start.peer is not None else None,
            start.role,
            duration(start.timeout, (*at, "timeout")) if start.timeout is not None else None,
        )
    if action == "exec":
        run: ExecSpec = spec.exec_
        expect = spec.expect or ExecExpectSpec()
        if expect.output is not None:
            try:
                re.compile(expect.output)
            except re.error as error:
                raise fail(
                    (*at[:-1], "expect", "output"),
                    f"not a regular expression: {error}",
                    "escape special characters with a backslash",
                ) from None
        return ExecProgram(
            node(run.node, (*at, "node")),
            argv(run.run, (*at, "run")),
            duration(run.timeout, (*at, "timeout")),
            env(run.env),
            expect.exit,
            expect.output,
        )
    if action == "wait":
        wait: WaitForSpec = spec.wait
        within = duration(wait.within, (*at, "within"))
        return WaitProgram(node(wait.node, (*at, "node")), wait.exit, within)
    return StopProgram(node(spec.stop, at))
