"""Matrix files (`natlab matrix FILE.yaml`) and expectation files (`--expect FILE`).

A project keeps its matrix in its repository: the topology, the two
routers and the two nodes, the programs, the types, the time a pair has and
the cells it expects otherwise than the field's table (docs/matrix.md):

    topology: main-branch          # a built-in name, or a path next to this file
    routers: [branch1, branch2]
    nodes: [phone-b, phone-c]
    run: "python3 examples/ice-agent/agent.py"   # or run-a / run-b; a string or an argv list
    types: [full-cone, symmetric]
    timeout: 20
    expect:
      symmetric x symmetric: relayed

An expectation file is the `expect:` mapping alone (or a matrix file, whose
`expect:` is taken). Both are read with natlab's bounded YAML reader;
mistakes name the file, the line and the field.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from natlab import catalog
from natlab.errors import NatlabError
from natlab.scenario.expectations import TYPES
from natlab.scenario.program_matrix import (
    DEFAULT_TIMEOUT,
    OUTCOMES,
    ProgramMatrix,
)
from natlab.topology import load_topology
from natlab.topology.load import explain
from natlab.topology.yaml_source import YamlDocument, dotted, read_source, read_yaml

Command = str | list[str]
CELL = re.compile(r"\s*([a-z-]+)\s+x\s+([a-z-]+)\s*")


class MatrixSpec(BaseModel):
    """A matrix file; `run` is both programs, `run-a`/`run-b` each side's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    topology: str = "main-branch"
    routers: list[str] = Field(default=["branch1", "branch2"], min_length=2, max_length=2)
    nodes: list[str] = Field(default=["phone-b", "phone-c"], min_length=2, max_length=2)
    run: Command | None = None
    run_a: Command | None = Field(default=None, alias="run-a")
    run_b: Command | None = Field(default=None, alias="run-b")
    types: list[str] = Field(default=list(TYPES), min_length=1)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=3600)
    expect: dict[str, str] = Field(default_factory=dict)


def argv_of(command: Command, where: str) -> tuple[str, ...]:
    """A command as a user writes it (one string, split like a shell; or a list) to argv."""
    try:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
    except ValueError as error:
        raise NatlabError(
            f"cannot split the command: {error}", field=where, fix="close its quotes"
        ) from None
    if not argv or not argv[0]:
        raise NatlabError("an empty command", field=where, fix='give one, e.g. run: "./client"')
    return tuple(argv)


def parse_expect(values: Any, filename: str, doc: YamlDocument | None, at: tuple = ()) -> dict:
    """{"A x B": outcome} -> {(A, B): outcome}; a mistake names the cell."""

    def fail(key: Any, problem: str, fix: str) -> NatlabError:
        line = doc.line_of((*at, key)) if doc is not None else None
        return NatlabError(problem, file=filename, line=line, field=dotted((*at, key)), fix=fix)

    if not isinstance(values, dict):
        raise NatlabError(
            "expectations are a mapping of cells to outcomes",
            file=filename,
            field=dotted(at) or None,
            fix="write one cell a line, e.g. 'symmetric x symmetric: relayed'",
        )
    cells = {}
    for key, outcome in values.items():
        found = CELL.fullmatch(str(key))
        if not found or not {found[1], found[2]} <= set(TYPES):
            raise fail(key, f"'{key}' is not a cell", f"write TYPE x TYPE with types of {TYPES}")
        if outcome not in OUTCOMES:
            raise fail(key, f"'{outcome}' is not an outcome", f"use one of: {', '.join(OUTCOMES)}")
        cells[(found[1], found[2])] = outcome
    return cells


def load_expect(path: str) -> dict[tuple[str, str], str]:
    """--expect FILE: the cells it overrides."""
    doc = read_yaml(read_source(FilePath(path), "expectation", "expect.yaml"), path)
    data = doc.data
    if isinstance(data, dict) and "expect" in data:
        return parse_expect(data["expect"], path, doc, ("expect",))
    return parse_expect(data, path, doc)


def load_matrix_file(path: str) -> ProgramMatrix:
    """A matrix file as the plan of the matrix it describes."""
    doc = read_yaml(read_source(FilePath(path), "matrix", "matrix.yaml"), path)
    if not isinstance(doc.data, dict):
        raise NatlabError(
            "a matrix file is a YAML mapping (topology, routers, nodes, run, types, expect)",
            file=path,
            fix="see docs/matrix.md",
        )
    try:
        spec = MatrixSpec.model_validate(doc.data)
    except ValidationError as error:
        raise explain(error, doc, path, MatrixSpec) from None
    run_a, run_b = spec.run_a or spec.run, spec.run_b or spec.run
    if run_a is None or run_b is None:
        raise NatlabError(
            "no program to run" + (" on side b" if run_a is not None else ""),
            file=path,
            field="run",
            fix="add run: (both sides), or run-a: and run-b:",
        )
    unknown = [t for t in spec.types if t not in TYPES]
    if unknown:
        raise NatlabError(
            f"unknown NAT type '{unknown[0]}'",
            file=path,
            line=doc.line_of(("types",)),
            field="types",
            fix=f"use some of: {', '.join(TYPES)}",
        )
    here = FilePath(path).parent / spec.topology
    topology = load_topology(here if here.is_file() else catalog.locate("topology", spec.topology))
    try:
        return ProgramMatrix(
            topology,
            (spec.routers[0], spec.routers[1]),
            (spec.nodes[0], spec.nodes[1]),
            argv_of(run_a, "run-a" if spec.run_a else "run"),
            argv_of(run_b, "run-b" if spec.run_b else "run"),
            tuple(dict.fromkeys(spec.types)),
            spec.timeout,
            parse_expect(spec.expect, path, doc, ("expect",)),
        )
    except NatlabError as error:  # the plan's checks name options; here they are fields
        error.file = error.file or path
        error.field = (error.field or "").removeprefix("--") or None
        raise
