"""`natlab matrix` beyond natlab's phones: your programs over any topology, and merging shards.

`matrix` (natlab/cli/scenarios.py) parses; matrix_mode tells which matrix
its arguments ask for and checks them before root is asked for:

- `phones`: today's matrix (no TOPOLOGY other than main-branch, no programs);
- `programs`: --run/--run-a/--run-b over TOPOLOGY, or a matrix file (docs/matrix.md);
- `merge`: `natlab matrix merge A.json B.json ...`, shards' reports joined (needs no root).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natlab.cli.options import emit_json, humans_aside
from natlab.errors import NatlabError

if TYPE_CHECKING:
    from natlab.scenario.matrix_view import MatrixView
    from natlab.scenario.program_matrix import ProgramMatrix
    from natlab.scenario.reports import ReportFiles

MERGE = "merge"
MAX_REPORT = 64 * 1024 * 1024  # a 25-cell report is ~100 KiB; a shard's can't be 64 MiB honestly
DEFAULT_SIDES = {"main-branch": (("branch1", "branch2"), ("phone-b", "phone-c"))}


def matrix_mode(params: dict[str, Any], given_types: bool) -> dict[str, Any]:
    """The matrix's parameters with `mode` (and a `plan` or `reports`) settled."""
    from natlab.scenario.shards import parse_shard

    topology, reports = params.pop("topology"), params.pop("reports")
    programs = {
        key: params.pop(key)
        for key in ("run_both", "run_a", "run_b", "routers", "nodes", "timeout", "expect_file")
    }
    shard = params.pop("shard")
    params["shard"] = parse_shard(shard) if shard else None
    phone_options = [
        option
        for option, value in (
            ("--relay", params["relay"]),
            ("--trace", params["trace_dir"]),
            ("--pcap", params["pcap_dir"]),
        )
        if value
    ]
    if topology == MERGE:
        used = [f"--{k.replace('_', '-')}" for k, v in programs.items() if v is not None]
        used += phone_options + (["--types"] if given_types else [])
        used += (["--shard"] if shard else []) + (["--jobs"] if params["jobs"] else [])
        if used or not reports:
            raise NatlabError(
                f"natlab matrix merge takes report files, not {used[0]}"
                if used
                else "natlab matrix merge needs the shards' reports",
                fix="natlab matrix merge A.json B.json ... [--json-file F] [--junit F] [--html F]",
            )
        return {**params, "mode": MERGE, "reports": reports}
    if reports:
        raise NatlabError(
            f"unexpected argument '{reports[0]}'",
            fix="give one topology or matrix file; merging is: natlab matrix merge A.json ...",
        )
    if topology is not None and _is_matrix_file(topology):
        plan = _from_file(topology, programs, params["types"] if given_types else None)
    elif any(programs[key] for key in ("run_both", "run_a", "run_b")):
        plan = _from_options(topology or "main-branch", programs, params["types"])
    else:
        extra = [f"--{k.replace('_', '-')}" for k, v in programs.items() if v is not None]
        if extra or topology not in (None, "main-branch"):
            raise NatlabError(
                "a matrix over "
                + (f"topology '{topology}'" if topology else f"{extra[0]}")
                + " needs programs to run",
                fix="add --run CMD (or --run-a and --run-b); natlab's own phones run on "
                "main-branch only",
            )
        return {**params, "mode": "phones"}
    if phone_options:
        raise NatlabError(
            f"{phone_options[0]} is for natlab's own phones, not for a matrix of programs",
            fix=f"leave {phone_options[0]} out",
        )
    return {**params, "mode": "programs", "plan": plan}


def _is_matrix_file(given: str) -> bool:
    """A YAML file that is not a topology (a topology has segments)."""
    from natlab.topology.yaml_source import read_source, read_yaml

    path = Path(given)
    if not path.is_file():
        return False
    data = read_yaml(read_source(path, "matrix", "matrix.yaml"), given).data
    return not (isinstance(data, dict) and "segments" in data)


def _from_file(given: str, programs: dict[str, Any], types: tuple[str, ...] | None) -> Any:
    from natlab.scenario.matrix_file import load_expect, load_matrix_file

    used = [f"--{k.replace('_', '-')}" for k, v in programs.items() if v is not None]
    allowed = {"--expect", "--timeout"}
    if set(used) - allowed:
        first = sorted(set(used) - allowed)[0]
        raise NatlabError(
            f"{first} is written in the matrix file {given}",
            fix=f"change it in the file, or leave {first} out",
        )
    plan = load_matrix_file(given)
    if types is not None:
        plan = replace(plan, types=types)
    if programs["timeout"] is not None:
        plan = replace(plan, timeout=programs["timeout"])
    if programs["expect_file"]:
        plan = replace(plan, expect={**plan.expect, **load_expect(programs["expect_file"])})
    return plan


def _from_options(given: str, programs: dict[str, Any], types: tuple[str, ...]) -> ProgramMatrix:
    from natlab import catalog
    from natlab.scenario.matrix_file import argv_of, load_expect
    from natlab.scenario.program_matrix import DEFAULT_TIMEOUT, ProgramMatrix, check_pair_of
    from natlab.topology import load_topology

    topology = load_topology(catalog.locate("topology", given))
    routers, nodes = DEFAULT_SIDES.get(topology.name, (None, None))
    for option, value in (("--routers", programs["routers"]), ("--nodes", programs["nodes"])):
        if value is not None:
            pair = check_pair_of([v.strip() for v in value.split(",")], option)
            routers, nodes = (pair, nodes) if option == "--routers" else (routers, pair)
    if routers is None or nodes is None:
        raise NatlabError(
            f"which routers and nodes of topology '{topology.name}' make the pair?",
            field="--routers" if routers is None else "--nodes",
            fix="give --routers R1,R2 and --nodes A,B (A behind R1, B behind R2)",
        )
    both = programs["run_both"]
    run_a, run_b = programs["run_a"] or both, programs["run_b"] or both
    if run_a is None or run_b is None:
        missing = "--run-a" if run_a is None else "--run-b"
        raise NatlabError(
            f"no program for side {missing[-1]}",
            field=missing,
            fix="give --run CMD for both sides, or --run-a and --run-b",
        )
    timeout = programs["timeout"]
    return ProgramMatrix(
        topology,
        routers,
        nodes,
        argv_of(run_a, "--run-a" if programs["run_a"] else "--run"),
        argv_of(run_b, "--run-b" if programs["run_b"] else "--run"),
        types,
        DEFAULT_TIMEOUT if timeout is None else timeout,
        load_expect(programs["expect_file"]) if programs["expect_file"] else {},
    )


def run(
    mode: str,
    files: ReportFiles,
    jobs: int | None,
    as_json: bool,
    shard: tuple[int, int] | None,
    plan: ProgramMatrix | None = None,
    reports: tuple[str, ...] = (),
    **_: Any,
) -> None:
    """Run the programs' matrix, or merge reports; report; exit with the matrix's code."""
    if mode == MERGE:
        from natlab.scenario.shards import merge_reports

        document = merge_reports([(name, _read_report(name)) for name in reports])
        document.pop("schema", None)
    else:
        assert plan is not None
        document = _run_programs(plan, jobs, as_json, shard)
    _report(document, files, as_json)
    sys.exit(document["exit_code"])


def _run_programs(
    plan: ProgramMatrix, jobs: int | None, as_json: bool, shard: tuple[int, int] | None
) -> dict:
    from natlab.render import Live, cell_line
    from natlab.scenario.matrix import default_jobs
    from natlab.scenario.matrix_view import CellView
    from natlab.scenario.program_matrix import CellResult, run_program_matrix
    from natlab.scenario.shards import shard_cells

    total = len(shard_cells([(a, b) for a in plan.types for b in plan.types], *(shard or (1, 1))))
    finished: list[CellResult] = []
    labs = jobs or default_jobs()

    def progress(cell: CellResult) -> None:
        finished.append(cell)
        live.done(cell_line(CellView.from_json(cell.as_json(plan))))
        live.now(f"{len(finished)} of {total} pairs done")

    with humans_aside(as_json), Live() as live:
        live.now(f"{total} pairs, {labs} labs at a time")
        result = run_program_matrix(plan, labs, progress, shard)
    return result.as_json()


def _report(document: dict, files: ReportFiles, as_json: bool) -> None:
    from natlab.json_documents import json_document
    from natlab.render import print_view
    from natlab.scenario.matrix_view import MatrixView, write_view_html, write_view_junit

    view: MatrixView = MatrixView.from_json(document)
    if files.json:
        Path(files.json).write_text(json.dumps(json_document("matrix", document), indent=2) + "\n")
    if files.junit:
        write_view_junit(files.junit, view)
    if files.html:
        write_view_html(files.html, view)
    with humans_aside(as_json):
        print_view(view)
    if as_json:
        emit_json("matrix", document)


def _read_report(name: str) -> dict:
    try:
        with open(name, "rb") as stream:
            raw = stream.read(MAX_REPORT + 1)
    except OSError as error:
        raise NatlabError(f"cannot read {name}: {error.strerror}", file=name) from None
    if len(raw) > MAX_REPORT:
        raise NatlabError(f"more than {MAX_REPORT} bytes: not a matrix report", file=name)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise NatlabError(
            f"not JSON: {error}", file=name, fix="give the file a matrix wrote with --json-file"
        ) from None
