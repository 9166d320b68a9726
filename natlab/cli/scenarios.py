"""natlab run, matrix, explain, demo: scenarios in labs of their own, and the stories they tell.

run and matrix parse, call one function of scenario/reports.py (which runs and
writes every file asked for) and render; their input (the scenario, the NAT
types, the report paths) is checked before root is asked for.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from natlab.cli.command import command
from natlab.cli.options import (
    emit_json,
    html_file_option,
    humans_aside,
    json_option,
    report_options,
)
from natlab.errors import NatlabError

if TYPE_CHECKING:
    from natlab.scenario.model import Scenario
    from natlab.scenario.reports import ReportFiles


def _report_files(
    json_file: str | None, junit_file: str | None, html_file: str | None
) -> ReportFiles:
    """The report files asked for, refused before the run if one cannot be written."""
    from natlab.scenario.reports import ReportFiles

    files = ReportFiles(json_file, junit_file, html_file)
    files.check()
    return files


def _run_input(
    scenario: str, json_file: str | None, junit_file: str | None, html_file: str | None, **rest: Any
) -> dict:
    """The scenario loaded and the report paths checked, before root is asked for."""
    from natlab.scenario.model import load_scenario

    loaded = load_scenario(scenario)
    return {"scenario": loaded, "files": _report_files(json_file, junit_file, html_file), **rest}


@command(short_help="Run a scenario in a lab of its own.", needs_root=True, check_input=_run_input)
@click.argument("scenario", type=click.Path(dir_okay=False))
@report_options
@click.option(
    "--trace",
    "trace_file",
    type=click.Path(dir_okay=False),
    help="Write the trace (JSON lines) here; failed runs keep theirs in natlab-traces/ anyway.",
)
@click.option(
    "--pcap",
    "pcap_dir",
    type=click.Path(file_okay=False),
    help="Capture every interface of every router here (ROUTER-INTERFACE.pcap), for Wireshark.",
)
def run(
    scenario: Scenario,
    files: ReportFiles,
    as_json: bool,
    trace_file: str | None,
    pcap_dir: str | None,
) -> None:
    """Run SCENARIO (a file, or a built-in name) in a lab of its own and check its expectations.

    Exits 1 when an expectation fails, saying which packets the routers
    dropped during the call, where and why; 3 when a process of the lab
    (a router's NAT daemon, a phone, the PBX, a STUN server) died, a fault
    and no NAT result (2 if only coturn did). The lab is always taken down.
    Its trace tells the story: natlab explain TRACE.
    """
    from natlab.render import Live, print_run, scenario_heading
    from natlab.scenario.reports import run_reported

    with humans_aside(as_json), Live() as live:
        live.done(scenario_heading(scenario))
        result = run_reported(
            scenario,
            files,
            Path(trace_file) if trace_file else None,
            Path(pcap_dir).resolve() if pcap_dir else None,
            live.scenario_progress,
        )
    with humans_aside(as_json):
        print_run(result, pcap_dir, trace_asked=trace_file is not None)
    if as_json:
        emit_json("run", result.as_json())
    sys.exit(result.exit_code)


def _matrix_input(
    types: tuple[str, ...],
    json_file: str | None,
    junit_file: str | None,
    html_file: str | None,
    **rest: Any,
) -> dict:
    """The NAT types and the report paths checked, before root is asked for.

    With programs (--run..., a matrix file) or `merge`, natlab.cli.matrix checks the rest.
    """
    from natlab.cli.matrix import matrix_mode
    from natlab.scenario.expectations import TYPES
    from natlab.scenario.matrix import check_types

    chosen = check_types([t for text in types for t in text.split(",") if t] or TYPES)
    files = _report_files(json_file, junit_file, html_file)
    impair = _impair_profile(rest.pop("impair"))
    params = matrix_mode({"types": chosen, "files": files, **rest}, given_types=bool(types))
    if impair and params["mode"] != "phones":
        raise NatlabError(
            "--impair applies to the matrix of natlab's phones",
            field="--impair",
            fix="for your programs, give the topology's routers an impair: (docs/topology.md)",
        )
    return {**params, "impair": impair}


def _impair_profile(items: tuple[str, ...]) -> dict:
    from natlab.core.impair import FORMS, parse_profile

    try:
        return parse_profile(items)
    except ValueError as error:
        raise NatlabError(
            str(error), field="--impair", fix=f"write IFACE:SETTINGS, settings: {FORMS}"
        ) from None


@command(
    short_help="Every pair of NAT types: natlab's phones, or your programs.",
    needs_root=lambda params: params["mode"] != "merge",
    check_input=_matrix_input,
)
@click.argument("topology", required=False)
@click.argument("reports", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--types",
    multiple=True,
    metavar="TYPE,...",
    help="NAT types to pair (default: full-cone, restricted, port-restricted, symmetric, public).",
)
@click.option("--relay", is_flag=True, help="Relay every call through the PBX: every pair works.")
@click.option(
    "--jobs",
    type=int,
    metavar="N",
    help="Labs at a time (default: the number of CPUs, at least 2).",
)
@report_options
@click.option(
    "--trace",
    "trace_dir",
    type=click.Path(file_okay=False),
    help="Write every pair's trace here (TYPE-x-TYPE.jsonl); failed pairs keep theirs in "
    "natlab-traces/ anyway.",
)
@click.option(
    "--pcap",
    "pcap_dir",
    type=click.Path(file_okay=False),
    help="Capture every router interface of every pair here (TYPE-x-TYPE/ROUTER-INTERFACE.pcap).",
)
@click.option("--routers", metavar="R1,R2", help="The two routers whose NAT types vary.")
@click.option("--nodes", metavar="A,B", help="The two nodes the programs run in (behind R1, R2).")
@click.option("--run", "run_both", metavar="CMD", help="The program both nodes run.")
@click.option("--run-a", metavar="CMD", help="Node A's program (NATLAB_ROLE=a, the calling side).")
@click.option("--run-b", metavar="CMD", help="Node B's program (NATLAB_ROLE=b).")
@click.option(
    "--timeout", type=float, metavar="S", help="Seconds a pair's programs have (default 30)."
)
@click.option(
    "--expect",
    "expect_file",
    type=click.Path(dir_okay=False),
    help="YAML of cells expected otherwise than the field's table, e.g. symmetric x symmetric: "
    "relayed.",
)
@click.option("--shard", metavar="K/N", help="Run only the K-th of N slices of the cells (CI).")
@click.option(
    "--impair",
    multiple=True,
    metavar="IFACE:SETTINGS",
    help="Impair every router's IFACE (wan, lan) in every pair, e.g. wan:loss=1%,delay=50ms "
    "(settings as natlab link set, comma-separated); may be given once per interface.",
)
def matrix(
    mode: str,
    types: tuple[str, ...],
    files: ReportFiles,
    relay: bool,
    jobs: int | None,
    as_json: bool,
    trace_dir: str | None,
    pcap_dir: str | None,
    shard: tuple[int, int] | None,
    impair: dict,
    **programs: Any,
) -> None:
    """Call phone-b -> phone-c across every pair of NAT types, against the reference matrix.

    On main-branch, branch1 (phone-b's router) and branch2 (phone-c's) take
    every pair of types, each pair in a lab of its own. The reference (the
    field's): media flows both ways for every pair but symmetric against
    port-restricted or symmetric, and for every pair through a relay. Exits
    1 when a pair does otherwise, with the explanation for it; 3 when a
    process of a pair's lab died (a fault: that cell is no NAT result).

    Your own programs instead: natlab matrix [TOPOLOGY] --run CMD (or --run-a
    and --run-b; --routers, --nodes, --timeout, --expect FILE), or natlab
    matrix FILE.yaml (docs/matrix.md). Each cell: both exit 0 = connected,
    and natlab says whether the pair went direct or through a relay.
    --shard K/N runs a slice; natlab matrix merge A.json B.json ... joins
    the shards' --json-file reports into one report and one exit status.
    """
    from natlab.cli import matrix as other_matrices
    from natlab.render import Live, pair_line, print_matrix
    from natlab.scenario.matrix import PairResult, default_jobs
    from natlab.scenario.reports import matrix_reported
    from natlab.scenario.shards import shard_cells

    if mode != "phones":
        other_matrices.run(mode, files, jobs, as_json, shard, **programs)
    total = len(shard_cells([(a, b) for a in types for b in types], *(shard or (1, 1))))
    finished: list[PairResult] = []

    def progress(pair: PairResult) -> None:
        finished.append(pair)
        live.done(pair_line(pair))
        live.now(f"{len(finished)} of {total} pairs done")

    with humans_aside(as_json), Live() as live:
        live.now(f"{total} pairs, {jobs or default_jobs()} labs at a time")
        result = matrix_reported(
            types,
            relay,
            jobs,
            files,
            Path(trace_dir) if trace_dir else None,
            Path(pcap_dir) if pcap_dir else None,
            progress,
            shard,
            impair,
        )
    with humans_aside(as_json):
        print_matrix(result, trace_dir)
    if as_json:
        emit_json("matrix", result.as_json())
    sys.exit(result.exit_code)


@command(short_help="Tell a trace step by step.")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--step", "stepwise", is_flag=True, help="Wait for Enter after each step.")
@html_file_option
def explain(trace: str, stepwise: bool, html_file: str | None) -> None:
    """Tell TRACE (from natlab run or matrix) step by step: who sent what to whom,
    which mapping each router made, which packet was dropped and why.
    """
    from natlab.scenario.html import trace_html, write_html
    from natlab.scenario.reports import check_writable
    from natlab.scenario.story import tell
    from natlab.scenario.trace import read_trace

    check_writable(html_file, "--html")
    records = read_trace(trace)
    if html_file:
        write_html(html_file, f"natlab explain {trace}", trace_html(records))
    _tell(tell(records), stepwise)


def complete_demos(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from natlab.scenario.demos import DEMOS

    return [CompletionItem(name) for name in DEMOS if name.startswith(incomplete)]


def _demo_input(name: str | None, listing: bool, as_json: bool, **rest: Any) -> dict:
    """The demo to run, loaded (None: list them instead); checked before root."""
    from natlab.scenario.demos import demo_scenario

    if as_json and name is not None:
        raise NatlabError("--json lists the demos; it cannot run one", fix="drop NAME")
    runs = name is not None and not listing and not as_json
    return {"scenario": demo_scenario(name) if runs else None, "as_json": as_json, **rest}


@command(
    short_help="Run a lesson in a lab of its own and tell it.",
    needs_root=lambda params: params["scenario"] is not None,
    check_input=_demo_input,
)
@click.argument("name", required=False, shell_complete=complete_demos)
@click.option("--list", "listing", is_flag=True, help="List the demos, one line each.")
@click.option("--step", "stepwise", is_flag=True, help="Wait for Enter after each step.")
@json_option("Print the list of demos as JSON to stdout")
def demo(scenario: Scenario | None, stepwise: bool, as_json: bool) -> None:
    """Run demo NAME in a lab of its own and tell its story, as natlab explain does.

    The lab is down again before the story starts. Without NAME: the list.
    Exits 1 if the lab did not do what the lesson says it does.
    """
    import tempfile

    from natlab.render import Live, demo_failure, print_line, scenario_heading
    from natlab.scenario.demos import DEMOS, demo_lines, demo_scenario, run_demo

    if as_json:
        about = {name: demo_scenario(name).about for name in DEMOS}
        emit_json("demos", {"demos": [{"name": n, "about": a} for n, a in about.items()]})
        return
    if scenario is None:
        for line in demo_lines():
            click.echo(line)
        return
    with tempfile.TemporaryDirectory(prefix="natlab-demo-") as folder, Live() as live:
        live.done(scenario_heading(scenario, "demo"))
        result, scenes = run_demo(
            scenario, Path(folder) / f"{scenario.name}.jsonl", progress=live.scenario_progress
        )
    _tell(scenes, stepwise)
    if not result.passed:
        print_line(demo_failure(scenario, result))
        sys.exit(1)


def _tell(scenes: list, stepwise: bool) -> None:
    """Print the scenes; with stepwise, wait for Enter between them (Ctrl-C stops)."""
    from natlab.render import print_scene

    for number, scene in enumerate(scenes, 1):
        print_scene(number, len(scenes), scene)
        if stepwise and number < len(scenes):
            click.prompt("", default="", show_default=False, prompt_suffix="[Enter] ")


COMMANDS = (run, matrix, explain, demo)
