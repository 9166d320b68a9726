"""The `natlab` command: parse arguments, call the layers below, render.

User mistakes (NatlabError) print one clear message and exit 2, never a
traceback; Ctrl-C exits 130 after whatever was half-built is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import click

from natlab.errors import NatlabError

# the built-in topologies ship in the package (the repository links topologies/ to them)
DEFAULT_TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "main-branch.yaml"


def _default_topology() -> str:
    return str(DEFAULT_TOPOLOGY)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="natlab")
def cli() -> None:
    """natlab: NAT routers, phones and STUN in Linux network namespaces.

    Describe a network in YAML (or name a built-in one), bring it up as real network
    stacks, run anything inside any node, and take it all down again.
    """


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check topology FILES (or built-in names) and show the planned addresses; builds nothing."""
    from natlab.render import print_table, topology_table
    from natlab.topology import load_topology

    for file in files:
        topology = load_topology(file)
        print_table(topology_table(topology, f"{file}: topology '{topology.name}' is valid"))


_dataplane_option = click.option(
    "--dataplane",
    type=click.Choice(["natlab", "kernel"]),
    default="natlab",
    show_default=True,
    help="natlab: routers run natlab's NAT daemon; kernel: plain kernel routing, no NAT.",
)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name); run copies side by side.")
@_dataplane_option
@click.option(
    "--verify",
    "check",
    is_flag=True,
    help="Then probe every NAT router with STUN; exit 1 if one differs from the topology.",
)
def up(file: str, name: str | None, dataplane: str, check: bool) -> None:
    """Bring the topology in FILE (or a built-in one by name) up as network namespaces."""
    from natlab.lab import Lab
    from natlab.render import print_table, status_table

    lab = Lab.from_file(file, name, dataplane)
    try:
        lab.up()
    except KeyboardInterrupt:
        click.echo("natlab: interrupted; what was built is removed again", err=True)
        sys.exit(130)
    print_table(status_table(lab.status()))
    click.echo(f"\nlab '{lab.name}' is up: natlab exec NODE -- CMD, natlab down {lab.name}")
    if check:
        _verify(lab.name)


@cli.command()
@click.argument("lab", required=False)
@click.option("--all", "everything", is_flag=True, help="Take down every lab natlab recorded.")
def down(lab: str | None, everything: bool) -> None:
    """Take LAB down (the only lab up, if not named): processes, namespaces, state."""
    from natlab.lab import down as take_down
    from natlab.lab import down_all

    if everything:
        if lab:
            raise NatlabError("give a lab name or --all, not both", fix="drop one of them")
        removed, skipped = down_all()
        for name in removed:
            click.echo(f"lab '{name}' is down")
        for name in skipped:
            click.echo(f"lab '{name}' is still being built by a live 'natlab up'; left alone")
        if not removed and not skipped:
            click.echo("no lab was up")
        return
    click.echo(f"lab '{take_down(lab)}' is down")


@cli.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(lab: str | None, as_json: bool) -> None:
    """Show running labs (or LAB) as the kernel has them: nodes, interfaces, addresses."""
    from natlab.lab import Lab, require_root, running_labs
    from natlab.render import print_table, status_table

    require_root("natlab status")
    names = [lab] if lab else running_labs()
    described = [Lab.attach(name).status() for name in names]
    if as_json:
        click.echo(json.dumps({"labs": described}, indent=2))
    elif not described:
        click.echo("no lab is up")
    for entry in [] if as_json else described:
        print_table(status_table(entry))
        for problem in entry["problems"]:
            click.secho(f"  problem: {problem}", fg="red")
    if any(entry["problems"] for entry in described):
        sys.exit(1)


@cli.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--lab", help="The lab NODE is in (default: the only lab up).")
def exec_(node: str, command: tuple[str, ...], lab: str | None) -> None:
    """Run COMMAND inside NODE (a shell if none): natlab exec phone-a -- ping 203.0.113.4

    Standard input and output, the terminal and the exit status pass through.
    """
    from natlab.lab import Lab, require_root
    from natlab.lab.processes import EXEC
    from natlab.plumbing.namespaces import enter

    require_root("natlab exec")
    argv = list(command[1:] if command[:1] == ("--",) else command)
    argv = argv or [os.environ.get("SHELL", "/bin/bash")]
    if shutil.which(argv[0]) is None:
        raise NatlabError(f"command not found: {argv[0]}", fix="check the spelling and PATH")
    target = Lab.attach(lab)
    namespace = target.namespace(node)
    target.adopt(os.getpid(), node, EXEC)
    enter(namespace)
    os.environ.update(NATLAB_LAB=target.name, NATLAB_NODE=node)
    os.execvp(argv[0], argv)


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name).")
@_dataplane_option
def reach(file: str | None, name: str | None, dataplane: str) -> None:
    """Bring FILE up (default: main-branch), ping every node from every host, take it down.

    Exits 1 if any ping does not do what the topology says: reach what is
    in front of or beside a host, and not what a NAT hides.
    """
    from natlab.lab import Lab
    from natlab.render import print_table, reach_table
    from natlab.scenario.reachability import reachability

    with Lab.from_file(file or _default_topology(), name, dataplane) as lab:
        click.echo(f"lab '{lab.name}' is up; pinging...")
        probes = reachability(lab)
    print_table(reach_table(probes))
    wrong = [p for p in probes if not p.as_expected]
    reached = sum(p.reached for p in probes)
    click.echo(
        f"{reached} of {len(probes)} addresses reached, {len(wrong)} not as expected; lab is down"
    )
    for probe in wrong:
        should = "should reach" if probe.expected else "should NOT reach"
        click.secho(f"  {probe.source} {should} {probe.target} ({probe.address})", fg="red")
    if wrong:
        sys.exit(1)


@cli.command()
@click.argument("node")
@click.option("--lab", help="The lab NODE is in (default: the only lab up).")
@click.option(
    "--server",
    metavar="HOST|ADDR[:PORT]",
    help="STUN server: a node of the lab or an address "
    "(default: the lab's STUN server, else NODE's router's own).",
)
@click.option("--lifetime", is_flag=True, help="Also measure the binding lifetime (lab clock).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def probe(node: str, lab: str | None, server: str | None, lifetime: bool, as_json: bool) -> None:
    """What NAT does NODE sit behind? RFC 5780 discovery from inside NODE.

    \b
    natlab probe phone-b
    natlab probe phone-b --server main --lifetime
    --lifetime advances the lab's clock (every router's mappings age) instead of waiting.
    """
    from rich.table import Table

    from natlab.lab import Lab, require_root
    from natlab.render import print_table
    from natlab.scenario.probe import probe as run_probe
    from natlab.scenario.probe import summary

    require_root("natlab probe")
    report = run_probe(Lab.attach(lab), node, server, lifetime)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"NAT behaviour seen from {node}", title_justify="left")
    table.add_column("")
    table.add_column("seen")
    for row in summary(report):
        table.add_row(*row)
    print_table(table)


@cli.command()
@click.argument("lab", required=False)
def verify(lab: str | None) -> None:
    """Probe every NAT router of LAB with STUN: does it do what the topology says?

    Exits 1, naming the router and the axis, if one does not; 3 if a router's
    NAT daemon or the STUN server died (a fault, named). The lab stays up.
    """
    from natlab.lab import require_root

    require_root("natlab verify")
    _verify(lab)


def _verify(name: str | None) -> None:
    """Print each router's verdict; exit 1 on any mismatch. The lab stays up either way."""
    from natlab.lab import Lab
    from natlab.scenario.verify import verify as run_verify

    lab = Lab.attach(name)
    click.echo(
        f"verifying lab '{lab.name}' (it stays up whatever this finds): "
        "probing every NAT router with STUN..."
    )
    results = run_verify(lab)
    for result in results:
        seen = ", ".join(f"{check.axis} {check.observed}" for check in result.checks)
        if result.fault is not None:
            click.secho(f"  router {result.router}: not verified: {result.fault}", fg="magenta")
        elif result.host is None:
            click.echo(f"  router {result.router}: skipped")
        elif result.mismatches:
            click.secho(f"  router {result.router} (from {result.host}): {seen}", fg="red")
        else:
            click.echo(f"  router {result.router} (from {result.host}): {seen}: as declared")
        for check in result.mismatches:
            click.secho(
                f"    router {result.router}: {check.axis}: "
                f"expected {check.expected}, observed {check.observed}",
                fg="red",
            )
        for note in result.notes:
            click.echo(f"    note: {note}")
    if any(result.fault for result in results):
        click.secho(
            f"lab '{lab.name}' lost a process it needs (a fault, not a NAT result); "
            f"it stays up: natlab status {lab.name}, natlab down {lab.name}",
            fg="magenta",
        )
        sys.exit(3)
    if any(result.mismatches for result in results):
        click.secho(
            f"lab '{lab.name}' does not behave as its topology says; "
            f"it stays up: natlab down {lab.name}",
            fg="red",
        )
        sys.exit(1)
    click.echo(f"lab '{lab.name}' behaves as its topology says")


@cli.group()
def nat() -> None:
    """Look into and steer a running router's NAT: mappings, events, behaviour."""


_lab_option = click.option("--lab", help="The lab ROUTER is in (default: the only lab up).")


@nat.command("show")
@click.argument("router")
@_lab_option
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N mappings.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON lines: the summary, then one per mapping."
)
def nat_show(router: str, lab: str | None, limit: int | None, as_json: bool) -> None:
    """ROUTER's mapping table (inside, outside, who may send in, age, expiry) and counters."""
    from natlab.lab import Lab, require_root
    from natlab.render import nat_tables, print_table

    require_root("natlab nat show")
    head, mappings = Lab.attach(lab).nat_show(router, limit)
    head.pop("ok", None)
    if as_json:  # streamed: a table of any size, one line at a time
        click.echo(json.dumps(head))
        for mapping in mappings:
            click.echo(json.dumps(mapping))
        return
    show = {**head, "mappings": list(mappings)}
    for table in nat_tables(show):
        print_table(table)
    if len(show["mappings"]) < head["mappings_total"]:
        click.echo(f"{len(show['mappings'])} of {head['mappings_total']} mappings shown (--limit)")


@nat.command("events")
@click.argument("router")
@_lab_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines.")
def nat_events(router: str, lab: str | None, follow: bool, as_json: bool) -> None:
    """What ROUTER decided and why: mappings made and expired, packets dropped with the reason."""
    from natlab.lab import Lab, require_root
    from natlab.render import event_line, print_line
    from natlab.router.eventlog import follow as following
    from natlab.router.eventlog import read_lines

    require_root("natlab nat events")
    path = Lab.attach(lab).nat_events_path(router)
    for line in following(path) if follow else read_lines(path):  # rotated files too
        click.echo(line) if as_json else print_line(event_line(json.loads(line)))


@nat.command("flush")
@click.argument("router")
@_lab_option
def nat_flush(router: str, lab: str | None) -> None:
    """Forget every dynamic mapping of ROUTER (port forwards stay)."""
    from natlab.lab import Lab, require_root

    require_root("natlab nat flush")
    flushed = Lab.attach(lab).nat(router, {"op": "flush"})["flushed"]
    click.echo(f"router {router}: flushed {flushed} mapping(s)")


@nat.command("set")
@click.argument("router")
@click.argument("settings", nargs=-1, required=True)
@_lab_option
def nat_set(router: str, settings: tuple[str, ...], lab: str | None) -> None:
    """Change ROUTER's behaviour live: a PRESET and/or AXIS=VALUE settings.

    \b
    natlab nat set branch1 full-cone
    natlab nat set branch1 filtering=address-dependent hairpin=off udp_timeout=30
    Dynamic mappings are flushed: new behaviour, new mappings.
    """
    from natlab.core.behaviour_input import changed_behaviour
    from natlab.lab import Lab, require_root

    require_root("natlab nat set")
    target = Lab.attach(lab)
    current = target.nat(router, {"op": "show"})["behaviour"]
    behaviour = changed_behaviour(current, settings)
    answer = target.nat(router, {"op": "set", "behaviour": behaviour.as_json()})
    now = answer["behaviour"]
    click.echo(
        f"router {router}: mapping {now['mapping']}, filtering {now['filtering']}, "
        f"ports {now['ports']}, hairpin {'on' if now['hairpin'] else 'off'}, "
        f"udp_timeout {now['udp_timeout']:g} s; mappings flushed"
    )


@cli.group()
def clock() -> None:
    """The lab's clock, which ages NAT mappings: move it instead of waiting."""


@clock.command("advance")
@click.argument("args", nargs=-1, required=True, metavar="[LAB] DURATION")
def clock_advance(args: tuple[str, ...]) -> None:
    """Age every mapping of LAB's routers by DURATION (e.g. 31s, 2m, 1h) at once."""
    from natlab.lab import Lab, require_root

    if len(args) > 2:
        raise NatlabError("give at most a lab name and a duration", fix="natlab clock advance 31s")
    seconds = _duration(args[-1])
    require_root("natlab clock advance")
    target = Lab.attach(args[0] if len(args) == 2 else None)
    for router, now in target.advance_clock(seconds).items():
        click.echo(f"router {router}: clock advanced {seconds:g} s to {now:.1f} s")


_json_file = click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), help="Also write the results as JSON."
)
_junit_file = click.option(
    "--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write JUnit XML (CI)."
)
_html_file = click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report (works offline).",
)


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@_json_file
@_junit_file
@_html_file
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
    scenario: str,
    json_file: str | None,
    junit_file: str | None,
    html_file: str | None,
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
    import tempfile

    from rich.markup import escape

    from natlab.lab import require_root
    from natlab.render import Live, print_line, print_table, scenario_table, step_line
    from natlab.scenario.html import run_html, write_html
    from natlab.scenario.model import load_scenario
    from natlab.scenario.reports import check_writable, write_json, write_junit
    from natlab.scenario.runner import unique_lab_name
    from natlab.scenario.trace import default_trace, read_trace, run_traced
    from natlab.scenario.verdict import NOT_NAT

    loaded = load_scenario(scenario)
    for option, report in (("--json", json_file), ("--junit", junit_file), ("--html", html_file)):
        check_writable(report, option)
    require_root("natlab run")
    kept = None if trace_file else default_trace(loaded.name)  # made unique when written
    with tempfile.TemporaryDirectory(prefix="natlab-run-") as scratch, Live() as live:
        written = Path(trace_file) if trace_file else None
        if html_file and written is None:  # --html needs the trace, even of a passed run
            written = Path(scratch) / "trace.jsonl"
        live.done(
            f"scenario {escape(loaded.name)}"
            + (f": {escape(loaded.about)}" if loaded.about else "")
        )
        result = run_traced(
            loaded,
            unique_lab_name(loaded.name),
            written,
            kept,
            progress=lambda text, step: (
                live.now(text) if step is None else live.done(step_line(step))
            ),
            pcap=Path(pcap_dir).resolve() if pcap_dir else None,
        )
        if html_file:
            records = read_trace(written)
            write_html(html_file, f"natlab run {loaded.name}", run_html(result, records))
    print_table(scenario_table(result))
    if pcap_dir:
        print_line(f"captures of every router interface: {escape(pcap_dir)}/")
    for step in result.steps:
        media = (step.report or {}).get("verdict")
        if step.fault or (step.explanation and (not step.passed or media != "two-way")):
            print_line(f"\nstep {step.index + 1}, {escape(step.text)}: what happened")
            if step.fault:
                print_line(f"  {escape(step.fault)}: {NOT_NAT}")
            for line in step.explanation:
                print_line(f"  {escape(line)}")
    if json_file:
        write_json(json_file, result)
    if junit_file:
        write_junit(junit_file, result)
    if result.trace and (trace_file or not result.passed):
        trace = escape(result.trace)
        print_line(f"\ntrace: {trace} (natlab explain {trace})")
    sys.exit(result.exit_code)


@cli.command()
@click.option(
    "--types",
    multiple=True,
    metavar="TYPE,...",
    help="NAT types to pair (default: full-cone, restricted, port-restricted, symmetric, public).",
)
@click.option("--relay", is_flag=True, help="Relay every call through the PBX: every pair works.")
@click.option("--jobs", type=int, help="Labs at a time (default: 2, or the number of CPUs).")
@_json_file
@_junit_file
@_html_file
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
def matrix(
    types: tuple[str, ...],
    relay: bool,
    jobs: int | None,
    json_file: str | None,
    junit_file: str | None,
    html_file: str | None,
    trace_dir: str | None,
    pcap_dir: str | None,
) -> None:
    """Call phone-b -> phone-c across every pair of NAT types, against the reference matrix.

    On main-branch, branch1 (phone-b's router) and branch2 (phone-c's) take
    every pair of types, each pair in a lab of its own. The reference (the
    field's): media flows both ways for every pair but symmetric against
    port-restricted or symmetric, and for every pair through a relay. Exits
    1 when a pair does otherwise, with the explanation for it; 3 when a
    process of a pair's lab died (a fault: that cell is no NAT result).
    """
    from rich.markup import escape

    from natlab.lab import require_root
    from natlab.render import Live, matrix_table, pair_line, print_line, print_table
    from natlab.scenario.expectations import TYPES
    from natlab.scenario.html import matrix_html, write_html
    from natlab.scenario.matrix import PairResult, check_types, default_jobs, run_matrix
    from natlab.scenario.reports import check_writable, write_json, write_junit

    chosen = check_types([t for text in types for t in text.split(",") if t] or TYPES)
    for option, report in (("--json", json_file), ("--junit", junit_file), ("--html", html_file)):
        check_writable(report, option)
    require_root("natlab matrix")
    total, finished = len(chosen) ** 2, []

    def progress(pair: PairResult) -> None:
        finished.append(pair)
        live.done(pair_line(pair))
        live.now(f"{len(finished)} of {total} pairs done")

    with Live() as live:
        live.now(f"{total} pairs, {jobs or default_jobs()} labs at a time")
        result = run_matrix(
            chosen,
            relay,
            jobs,
            progress,
            Path(trace_dir) if trace_dir else None,
            Path(pcap_dir) if pcap_dir else None,
        )
    print_table(matrix_table(result))
    for pair in result.pairs:
        if not pair.passed:
            print_line(f"\n{pair.caller_type} x {pair.callee_type}: why")
            for line in pair.explanation:
                print_line(f"  {escape(line)}")
            if pair.result.trace:
                print_line(f"  the whole story: natlab explain {escape(pair.result.trace)}")
    if trace_dir:
        print_line(f"\ntraces of every pair: {escape(trace_dir)}/")
    if json_file:
        write_json(json_file, result)
    if junit_file:
        write_junit(junit_file, result)
    if html_file:
        write_html(html_file, "natlab matrix", matrix_html(result))
    sys.exit(result.exit_code)


@cli.command()
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--step", "stepwise", is_flag=True, help="Wait for Enter after each step.")
@_html_file
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


@cli.command()
@click.argument("name", required=False)
@click.option("--list", "listing", is_flag=True, help="List the demos, one line each.")
@click.option("--step", "stepwise", is_flag=True, help="Wait for Enter after each step.")
def demo(name: str | None, listing: bool, stepwise: bool) -> None:
    """Run demo NAME in a lab of its own and tell its story, as natlab explain does.

    The lab is down again before the story starts. Without NAME: the list.
    Exits 1 if the lab did not do what the lesson says it does.
    """
    import tempfile

    from rich.markup import escape

    from natlab.lab import require_root
    from natlab.render import Live, print_line, step_line
    from natlab.scenario.demos import demo_lines, demo_scenario, run_demo

    if listing or name is None:
        for line in demo_lines():
            click.echo(line)
        return
    scenario = demo_scenario(name)
    require_root("natlab demo")
    with tempfile.TemporaryDirectory(prefix="natlab-demo-") as folder, Live() as live:
        live.done(f"demo {escape(scenario.name)}: {escape(scenario.about)}")
        result, scenes = run_demo(
            scenario,
            Path(folder) / f"{scenario.name}.jsonl",
            progress=lambda text, step: (
                live.now(text) if step is None else live.done(step_line(step))
            ),
        )
    _tell(scenes, stepwise)
    if not result.passed:
        print_line(
            f"\ndemo {escape(scenario.name)}: the lab did not do what this lesson expects"
            + (f" ({escape(result.error)})" if result.error else "")
        )
        sys.exit(1)


def _tell(scenes: list, stepwise: bool) -> None:
    """Print the scenes; with stepwise, wait for Enter between them (Ctrl-C stops)."""
    from rich.console import Console

    from natlab.render import scene_renderables

    console = Console(highlight=False)
    for number, scene in enumerate(scenes, 1):
        for renderable in scene_renderables(number, len(scenes), scene):
            console.print(renderable)
        if stepwise and number < len(scenes):
            click.prompt("", default="", show_default=False, prompt_suffix="[Enter] ")


_UNITS = {"s": 1, "m": 60, "h": 3600}


def _duration(text: str) -> float:
    """A clock advance: finite, from 0 to 30 days (the daemons hold to the same)."""
    from natlab.router.control import check_advance

    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        return check_advance(float(number) * _UNITS[unit])
    except ValueError:
        raise NatlabError(
            f"'{text}' is not a duration from 0 to 30 days",
            field="DURATION",
            fix="write e.g. 31s, 2m or 1h",
        ) from None


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM unwind natlab (cleaning up); a forked helper just exits."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: NatlabError -> message and exit 2; Ctrl-C or SIGTERM -> exit 130."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cli.main(standalone_mode=False)
    except NatlabError as error:
        click.secho(f"natlab: error: {error}", fg="red", err=True)
        sys.exit(error.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("natlab: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


# --- the built-in files and the file formats ----------------------------------------------

LISTING_SCHEMA = 1  # the version of `natlab topologies --json` / `natlab scenarios --json`


def _list_builtin(kind: str, as_json: bool) -> None:
    from natlab import catalog

    entries = catalog.entries(kind)
    if as_json:
        rows = [{"name": e.name, "path": str(e.path), "about": e.about} for e in entries]
        click.echo(json.dumps({"schema": LISTING_SCHEMA, catalog.PLURALS[kind]: rows}, indent=2))
        return
    from rich.table import Table

    from natlab.render import print_table

    table = Table(title=f"built-in {catalog.PLURALS[kind]}: name them instead of a path")
    for column in ("name", "about", "path"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.name, entry.about, str(entry.path))
    print_table(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def topologies(as_json: bool) -> None:
    """List the built-in topologies: natlab up NAME, natlab validate NAME, Lab.from_file(NAME)."""
    _list_builtin("topology", as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios: natlab run NAME."""
    _list_builtin("scenario", as_json)


@cli.command()
@click.argument("kind", type=click.Choice(["topology", "scenario"]))  # file_formats.FORMATS
def schema(kind: str) -> None:
    """Print the JSON Schema of a topology or scenario file (docs/topology.md explains it)."""
    from natlab.file_formats import json_schema

    click.echo(json.dumps(json_schema(kind), indent=2))
