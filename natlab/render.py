"""What natlab prints: tables and lines for people, the payloads of JSON documents for scripts.

Tables show what a lab looks like, what reached what, what a scenario found;
the print_* functions write a command's whole report. Piped into a file or
another program, tables are as wide as their content (a terminal's width
would cut words off); NO_COLOR is rich's to honour, and say's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from natlab.topology.dns import seen_from
from natlab.topology.model import Host, Router, Topology
from natlab.topology.routing import plan_routes

if TYPE_CHECKING:  # reading a topology must not load the lab and its netlink code
    from natlab.catalog import Entry
    from natlab.records import ProbeReport
    from natlab.scenario.matrix import MatrixResult, PairResult
    from natlab.scenario.matrix_view import CellView, MatrixView
    from natlab.scenario.model import Scenario
    from natlab.scenario.reachability import Probe
    from natlab.scenario.runner import ScenarioResult, StepResult
    from natlab.scenario.story import Scene
    from natlab.scenario.verify import RouterCheck


def say(text: str, *, red: bool = False, err: bool = False) -> None:
    """A line for people; red only where colour is wanted (NO_COLOR, no-color.org, says not)."""
    if red and not os.environ.get("NO_COLOR"):
        click.secho(text, fg="red", err=err)
    else:
        click.echo(text, err=err)


def plan_json(topology: Topology, file: str) -> dict:
    """What `validate` shows in its table, for scripts: nodes, interfaces, addresses, routes."""
    routes = plan_routes(topology, lambda router: router.behaviour.translate)
    nodes = []
    for node in topology.nodes.values():
        entry: dict = {
            "name": node.name,
            "kind": "router" if isinstance(node, Router) else "host",
            "role": node.role.value if isinstance(node, Host) else "router",
        }
        if isinstance(node, Router):
            entry["nat"] = node.behaviour.preset_name() or "custom"
        entry["interfaces"] = [
            {"name": iface.name, "addresses": [str(a) for a in iface.addresses]}
            for iface in node.interfaces
        ]
        entry["routes"] = [
            {"destination": str(route.destination or "default"), "via": str(route.via)}
            for route in routes[node.name]
        ]
        nodes.append(entry)
    plan = {"file": file, "name": topology.name, "nodes": nodes}
    if topology.dns is not None:
        plan["dns"] = {
            "zone": topology.dns.zone,
            "names": [
                {"name": name, "segments": segments, "addresses": [str(a) for a in addresses]}
                for name, segments, addresses in dns_views(topology)
            ],
        }
    return plan


def dns_views(topology: Topology) -> list[tuple[str, list[str], tuple]]:
    """Each name, the segments that see the same answer for it, and that answer."""
    views: dict[tuple[str, tuple], list[str]] = {}
    for segment in topology.segments:
        for name, addresses in seen_from(topology, segment).items():
            views.setdefault((name, addresses), []).append(segment)
    return [(name, segments, addresses) for (name, addresses), segments in sorted(views.items())]


def dns_table(topology: Topology) -> Table:
    """What each segment's nodes get for each name (split horizon), from the `dns:` section."""
    assert topology.dns is not None
    table = Table(title=f"names in {topology.dns.zone}", title_justify="left")
    for column in ("name", "seen from", "addresses"):
        table.add_column(column)
    for name, segments, addresses in dns_views(topology):
        table.add_row(name, ", ".join(segments), " ".join(str(a) for a in addresses))
    return table


def verify_json(lab: str, results: list[RouterCheck]) -> dict:
    """The lab's verdict (as declared? which processes died?) and each router's: the axes
    checked, declared against observed, and notes.
    """
    faults = [result.fault for result in results if result.fault]
    return {
        "lab": lab,
        "as_declared": not faults and not any(result.mismatches for result in results),
        "faults": faults,
        "routers": [
            {
                "router": result.router,
                "host": result.host,
                "as_declared": result.host is not None and not result.mismatches,
                "checks": [
                    {
                        "axis": check.axis,
                        "expected": check.expected,
                        "observed": check.observed,
                        "ok": check.ok,
                    }
                    for check in result.checks
                ],
                "notes": list(result.notes),
            }
            for result in results
        ],
    }


def print_verify(verdicts: dict, results: list[RouterCheck]) -> None:
    """Each router's verdict, a line each, then the lab's (verdicts: verify_json)."""
    for result in results:
        seen = ", ".join(f"{check.axis} {check.observed}" for check in result.checks)
        if result.fault is not None:
            click.secho(f"  router {result.router}: not verified: {result.fault}", fg="magenta")
        elif result.host is None:
            click.echo(f"  router {result.router}: skipped")
        elif result.mismatches:
            say(f"  router {result.router} (from {result.host}): {seen}", red=True)
        else:
            click.echo(f"  router {result.router} (from {result.host}): {seen}: as declared")
        for check in result.mismatches:
            say(
                f"    router {result.router}: {check.axis}: "
                f"expected {check.expected}, observed {check.observed}",
                red=True,
            )
        for note in result.notes:
            click.echo(f"    note: {note}")
    lab = verdicts["lab"]
    if verdicts["faults"]:
        say(
            f"lab '{lab}' lost a process it needs (a fault, not a NAT result); "
            f"it stays up: natlab status {lab}, natlab down {lab}",
            red=True,
        )
    elif verdicts["as_declared"]:
        click.echo(f"lab '{lab}' behaves as its topology says")
    else:
        say(
            f"lab '{lab}' does not behave as its topology says; it stays up: natlab down {lab}",
            red=True,
        )


def probe_table(node: str, report: ProbeReport) -> Table:
    """What RFC 5780 discovery from inside node found (a `natlab probe` report)."""
    from natlab.scenario.probe import summary

    table = Table(title=f"NAT behaviour seen from {node}", title_justify="left")
    table.add_column("")
    table.add_column("seen")
    for row in summary(report):
        table.add_row(*row)
    return table


def reach_json(probes: list[Probe]) -> list[dict]:
    """Every ping: from where, to which node and address, whether it should and did arrive."""
    return [
        {
            "source": probe.source,
            "target": probe.target,
            "address": str(probe.address),
            "expected": probe.expected,
            "reached": probe.reached,
            "as_expected": probe.as_expected,
        }
        for probe in probes
    ]


def topology_table(topology: Topology, title: str) -> Table:
    """Nodes, interfaces, addresses and gateways as planned."""
    routes = plan_routes(topology, lambda router: router.behaviour.translate)
    table = Table(title=title, title_justify="left")
    for column in ("node", "kind", "interface", "addresses", "routes"):
        table.add_column(column)
    for node in topology.nodes.values():
        if isinstance(node, Router):
            preset = node.behaviour.preset_name() or "custom"
            kind = f"router ({preset})"
            if node.cgnat is not None:
                kind += f"\nCGNAT, blocks of {node.cgnat.port_block}"
        else:
            kind = node.role.value if isinstance(node, Host) else ""
        for index, iface in enumerate(node.interfaces):
            table.add_row(
                node.name if index == 0 else "",
                kind if index == 0 else "",
                iface.name,
                " ".join(str(a) for a in iface.addresses),
                "\n".join(str(r) for r in routes[node.name]) if index == 0 else "",
                end_section=index == len(node.interfaces) - 1,
            )
    return table


def status_table(status: dict) -> Table:
    """A running lab as read back from the kernel."""
    state = status["state"]
    colour = "green" if state == "up" else "red"
    table = Table(
        title=f"lab {status['name']} ({status['topology']}): [{colour}]{state}[/]",
        title_justify="left",
    )
    columns = ["node", "kind", "namespace", "interface", "addresses", "routes"]
    with_programs = any("program" in node for node in status["nodes"])
    for column in columns + ["program"] * with_programs:
        table.add_column(column)
    for node in status["nodes"]:
        kind = f"router ({node['nat']})" if node["kind"] == "router" else node["role"]
        program = program_cell(node["program"]) if "program" in node else ""
        interfaces = node["interfaces"] or [{"name": "[red]missing[/]", "addresses": []}]
        routes = "\n".join(f"{r['destination']} via {r['via']}" for r in node["routes"])
        for index, iface in enumerate(interfaces):
            first = index == 0
            table.add_row(
                node["name"] if first else "",
                kind if first else "",
                node["namespace"] if first else "",
                iface["name"] + ("" if iface.get("up", True) else " [red](down)[/]"),
                " ".join(iface["addresses"]),
                routes if first else "",
                *([program if first else ""] * with_programs),
                end_section=index == len(interfaces) - 1,
            )
    return table


def program_cell(state: dict) -> str:
    """A node's program in `natlab status`: its state, coloured, and its log."""
    from natlab.lab.programs import describe  # natlab.lab is loaded already once a lab is up

    colour = {"running": "green", "exited": "yellow" if state.get("code") else "cyan"}
    text = escape(describe(state))
    return f"[{colour.get(state['state'], 'red')}]{text}[/]\n[dim]{escape(state['log'])}[/]"


def print_status(status: dict) -> None:
    """A running lab's table, then its problems."""
    print_table(status_table(status))
    for problem in status["problems"]:
        say(f"  problem: {problem}", red=True)


def print_reach(probes: list[Probe]) -> None:
    """The reachability table, the count, and every ping that did not do what it should."""
    print_table(reach_table(probes))
    wrong = [p for p in probes if not p.as_expected]
    reached = sum(p.reached for p in probes)
    click.echo(
        f"{reached} of {len(probes)} addresses reached, {len(wrong)} not as expected; lab is down"
    )
    for probe in wrong:
        should = "should reach" if probe.expected else "should NOT reach"
        say(f"  {probe.source} {should} {probe.target} ({probe.address})", red=True)


def reach_table(probes: list[Probe]) -> Table:
    """Rows: who pinged; columns: whom; a cell counts the addresses reached.

    Green: as the topology says (reached, or hidden by NAT and not reached);
    red: not as it says.
    """
    sources = list(dict.fromkeys(p.source for p in probes))
    targets = list(dict.fromkeys(p.target for p in probes))
    table = Table(
        title="reachability (ping: addresses reached / tried; [red]red[/] = not as the "
        "topology says, - = hidden by NAT as expected)",
        title_justify="left",
    )
    table.add_column("from \\ to")
    for target in targets:
        table.add_column(target, justify="center")
    for source in sources:
        cells = []
        for target in targets:
            tried = [p for p in probes if p.source == source and p.target == target]
            if not tried:
                cells.append("")
                continue
            reached = sum(p.reached for p in tried)
            colour = "green" if all(p.as_expected for p in tried) else "red"
            text = (
                "-"
                if not reached and not any(p.expected for p in tried)
                else f"{reached}/{len(tried)}"
            )
            cells.append(f"[{colour}]{text}[/]")
        table.add_row(source, *cells)
    return table


def nat_tables(show: dict) -> list[Table]:
    """A router's mapping table and counters, from its daemon's `show` answer."""
    behaviour = show["behaviour"]
    title = (
        f"router {show['router']}: mapping {behaviour['mapping']}, "
        f"filtering {behaviour['filtering']}, ports {behaviour['ports']}, "
        f"hairpin {behaviour['hairpin']}, unsolicited SYN {behaviour['tcp_unsolicited']} "
        f"(clock {show['clock']:.1f} s)"
    )
    mappings = Table(title=title, title_justify="left")
    columns = ("proto", "internal", "external", "for remote", "lets in", "age", "expires in")
    for column in (*columns, "made by"):
        mappings.add_column(column)
    for m in show["mappings"]:
        state = f" ({m['tcp_state']})" if m.get("tcp_state") else ""
        mappings.add_row(
            m["proto"] + state,
            m["internal"],
            m["external"],
            m["remote"] or "any",
            "\n".join(m["permissions"]) or "-",
            f"{m['age']:.1f} s",
            f"{m['expires_in']:.1f} s",
            _made_by(m),
        )
    counters = Table(title="counters", title_justify="left")
    counters.add_column("counter")
    counters.add_column("packets", justify="right")
    for name, value in sorted(show["counters"].items()):
        if value:
            counters.add_row(name, str(value))
    if show.get("cgnat"):
        return [mappings, port_block_table(show["cgnat"]), counters]
    return [mappings, counters]


def _made_by(mapping: dict) -> str:
    """Traffic, or the port control protocol that asked, with the lifetime it granted."""
    origin = mapping.get("origin", "traffic")
    lifetime = mapping.get("lifetime")
    return origin if lifetime is None else f"{origin} ({lifetime:g} s)"


def port_block_table(cgnat: dict) -> Table:
    """A carrier-grade NAT's subscribers: public address, port blocks, ports held."""
    pool = ", ".join(
        f"{p['public']} ({p['free_blocks']}/{p['blocks']} free)" for p in cgnat["pool"]
    )
    quota = cgnat["port_quota"]
    table = Table(
        title=f"port blocks of {cgnat['port_block']} ports, at most "
        f"{cgnat['blocks_per_subscriber']} per subscriber"
        f"{f', quota {quota} ports' if quota else ''}; pool {pool}",
        title_justify="left",
    )
    for column in ("subscriber", "public", "blocks", "ports held", "since"):
        table.add_column(column)
    for s in cgnat["subscribers"]:
        table.add_row(
            s["subscriber"],
            s["public"],
            "\n".join(f"{b['first_port']}-{b['last_port']}" for b in s["blocks"]),
            str(s["ports_held"]),
            "\n".join(f"{b['allocated_at']:.1f} s" for b in s["blocks"]),
        )
    return table


def print_nat_show(head: dict, mappings: Iterable[dict]) -> None:
    """A router's mappings and counters (head: the `show` answer without its mappings)."""
    show = {**head, "mappings": list(mappings)}
    for table in nat_tables(show):
        print_table(table)
    if len(show["mappings"]) < head["mappings_total"]:
        click.echo(f"{len(show['mappings'])} of {head['mappings_total']} mappings shown (--limit)")


def behaviour_line(router: str, behaviour: dict) -> str:
    """A router's behaviour just set by `natlab nat set`."""
    return (
        f"router {router}: mapping {behaviour['mapping']}, filtering {behaviour['filtering']}, "
        f"ports {behaviour['ports']}, hairpin {behaviour['hairpin']}, "
        f"unsolicited SYN {behaviour['tcp_unsolicited']}, "
        f"udp_timeout {behaviour['udp_timeout']:g} s; mappings flushed"
    )


def link_line(router: str, state: dict) -> str:
    """One interface's impairment (`natlab link show`) and what it has done."""
    done = ", ".join(f"{key} {value:,}" for key, value in sorted(state["counters"].items()))
    return f"router {router} {state['port']}: {escape(state['described'])}" + (
        f"  [dim]({done})[/]" if done else ""
    )


def event_line(event: dict) -> str:
    """One event as a line for people: time, router, kind, what happened."""
    colour = "red" if event["kind"] in ("drop", "exhausted") else "cyan"
    reason = f" ({event['reason']})" if event.get("reason") else ""
    detail = escape(event.get("detail", ""))
    kind = f"[{colour}]{event['kind']}{reason}[/]"
    return f"{event['at']:>10.3f}  {event.get('router', ''):<10} {kind}  {detail}"


def step_line(step: StepResult) -> str:
    """A finished scenario step, as `natlab run` prints it while the scenario goes on."""
    mark = _MARKS.get(step.verdict, "[red]FAILED[/]")
    where = f" (line {step.line})" if step.line else ""
    line = f"{mark}  {step.index + 1}. {escape(step.text)}{where}  [dim]{step.seconds:.1f} s[/]"
    from natlab.scenario.explain import gathering_line  # step_line runs only with a scenario

    gathered = None if step.call_report is None else gathering_line(step.call_report)
    if gathered is not None:
        line += f"  [dim]{escape(gathered)}[/]"
    if step.fault:
        line += f"\n        [magenta]{escape(step.fault)}[/]"
    if step.error:
        line += f"\n        [red]{escape(step.error)}[/]"
    for check in step.checks:
        if not check.ok:
            line += (
                f"\n        [red]{escape(check.what)}: expected {escape(check.expected)}, "
                f"observed {escape(check.observed)}[/]"
            )
    return line


_MARKS = {"passed": "[green]passed[/]", "fault": "[magenta]FAULT[/]"}  # else FAILED


def scenario_table(result: ScenarioResult) -> Table:
    """Each step's expectations against what was observed."""
    verdict = _MARKS.get(result.verdict, "[red]FAILED[/]")
    table = Table(
        title=f"scenario {escape(result.name)} ({escape(result.source)}): {verdict} "
        f"in {result.seconds:.1f} s, lab {result.lab}",
        title_justify="left",
    )
    for column in ("step", "check", "expected", "observed", "time"):
        table.add_column(column)
    if result.error:
        table.add_row("lab up", "", "", f"[red]{escape(result.error)}[/]", "")
    for step in result.steps:
        rows = [(c.what, c.expected, c.observed, c.ok) for c in step.checks]
        if step.fault:
            rows.insert(0, ("lab processes", "running", step.fault, False))
        if step.error:
            rows.append(("ran", "yes", step.error, False))
        for index, (what, expected, observed, ok) in enumerate(rows or [("", "", "done", True)]):
            colour = "green" if ok else "red"
            table.add_row(
                f"{step.index + 1}. {escape(step.text)}" if index == 0 else "",
                escape(what),
                escape(expected),
                f"[{colour}]{escape(observed)}[/]",
                f"{step.seconds:.1f} s" if index == 0 else "",
                end_section=index == max(len(rows), 1) - 1,
            )
    return table


def scenario_heading(scenario: Scenario, what: str = "scenario") -> str:
    """The first line `natlab run` (or `demo`) prints: the scenario and what it is about."""
    about = f": {escape(scenario.about)}" if scenario.about else ""
    return f"{what} {escape(scenario.name)}{about}"


def print_run(result: ScenarioResult, pcap_dir: str | None, trace_asked: bool) -> None:
    """`natlab run`'s report: the table, then what happened in each step that went wrong
    (or whose media was not two-way), then where the trace is, if asked for or kept.
    """
    from natlab.scenario.verdict import NOT_NAT

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
    if result.trace and (trace_asked or not result.passed):
        trace = escape(result.trace)
        print_line(f"\ntrace: {trace} (natlab explain {trace})")


def demo_failure(scenario: Scenario, result: ScenarioResult) -> str:
    """What `natlab demo` says after the story when the lab did not do what the lesson says."""
    error = f" ({escape(result.error)})" if result.error else ""
    missed = "".join(
        f"\n  step {step.index + 1} {step.verdict}: {escape(step.text)}"
        for step in result.steps
        if not step.passed
    )
    return (
        f"\ndemo {escape(scenario.name)}: the lab did not do what this lesson expects{error}"
        + missed
    )


def pair_line(pair: PairResult) -> str:
    """A finished pair of the matrix, as `natlab matrix` prints it while the rest run."""
    return _finished_cell(
        pair.passed,
        pair.fault,
        f"{pair.caller_type} x {pair.callee_type}",
        pair.observed,
        pair.expected,
        pair.result.seconds,
    )


def _finished_cell(
    passed: bool, fault: str | None, cell: str, shown: str, expected: str, seconds: float
) -> str:
    """One line for a finished cell of any matrix: its mark, what it did, what was expected."""
    mark = "[green]as expected[/]" if passed else "[red]NOT AS EXPECTED[/]"
    shown = escape(shown)
    if fault:
        mark, shown = "[magenta]FAULT[/]", f"{shown}: {escape(fault)}"
    return f"{mark}  {cell}: {shown} (expected {escape(expected)})  [dim]{seconds:.1f} s[/]"


def matrix_table(result: MatrixResult) -> Table:
    """Rows: the caller's NAT type (branch1); columns: the callee's (branch2); cells: verdicts."""
    wrong, faults = len(result.wrong), len(result.faults)
    relay = " through the PBX's media relay" if result.relay else ""
    table = Table(
        title=f"NAT matrix: phone-b (behind branch1) calls phone-c (behind branch2){relay}; "
        f"{len(result.pairs)} pairs, "
        + (f"[red]{wrong} not as expected[/]" if wrong else "[green]all as expected[/]")
        + (f", [magenta]{faults} not judged: a lab process died (fault)[/]" if faults else "")
        + f" ({result.seconds:.1f} s, {result.jobs} labs at a time)",
        title_justify="left",
    )
    table.add_column("branch1 \\ branch2")
    for kind in result.types:
        table.add_column(kind, justify="center")
    cells = {(p.caller_type, p.callee_type): p for p in result.pairs}
    for caller in result.types:
        row = []
        for callee in result.types:
            pair = cells.get((caller, callee))
            if pair is None:  # another shard's (--shard K/N)
                row.append("[dim]other shard[/]")
            elif pair.passed:
                row.append(f"[green]{escape(pair.observed)}[/]")
            elif pair.fault:
                row.append(f"[magenta]{escape(pair.observed)}[/]")
            else:
                row.append(f"[red]{escape(pair.observed)}\n(expected {pair.expected})[/]")
        table.add_row(caller, *row)
    return table


def print_matrix(result: MatrixResult, trace_dir: str | None) -> None:
    """`natlab matrix`'s report: the grid, why each pair not as expected was so, the traces."""
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


def cell_line(cell: CellView) -> str:
    """A finished cell of a matrix read as a view (programs, merged shards), as it is printed."""
    return _finished_cell(
        cell.passed,
        cell.fault,
        f"{cell.caller_type} x {cell.callee_type}",
        cell.shown,
        cell.expected,
        cell.seconds,
    )


def print_view(view: MatrixView) -> None:
    """A program matrix's or a merged matrix's report: the grid, then why for each wrong cell."""
    faults = len(view.faults)
    table = Table(
        title=f"NAT matrix: {escape(view.what)}; "
        + (f"[red]{escape(view.summary())}[/]" if view.wrong else escape(view.summary()))
        + (f" [magenta]({faults} fault)[/]" if faults else "")
        + f" ({view.seconds:.1f} s"
        + (f", {view.jobs} labs at a time)" if view.jobs and not view.merged else ")"),
        title_justify="left",
    )
    table.add_column(f"{view.sides[0]} \\ {view.sides[1]}")
    for kind in view.types:
        table.add_column(kind, justify="center")
    cells = {(c.caller_type, c.callee_type): c for c in view.cells}
    for caller in view.types:
        row = []
        for callee in view.types:
            cell = cells.get((caller, callee))
            if cell is None:
                row.append("[dim]other shard[/]")
            elif cell.passed:
                row.append(f"[green]{escape(cell.shown)}[/]")
            elif cell.fault:
                row.append(f"[magenta]{escape(cell.shown)}[/]")
            else:
                row.append(f"[red]{escape(cell.shown)}\n(expected {escape(cell.expected)})[/]")
        table.add_row(caller, *row)
    print_table(table)
    for cell in view.cells:
        if not cell.passed:
            print_line(f"\n{cell.caller_type} x {cell.callee_type}: why")
            for line in cell.explanation:
                print_line(f"  {escape(line)}")


_SCENE_COLOURS = {
    "drop": "red",
    "why": "yellow",
    "mapping": "cyan",
    "result": "green",
    "step": "bold",
    "fault": "magenta",
}


def scene_renderables(
    number: int, total: int, scene: Scene, tables: dict[str, list] | None = None
) -> list:
    """One scene of `natlab explain`: a heading, its sentences, the routers' mapping tables
    (`tables`, story.shown_tables: those to show; else all of the scene's)."""
    from natlab.scenario.story import shown_rows

    colour = _SCENE_COLOURS.get(scene.kind, "default")
    clock = f"  [dim]router clock {scene.clock:.3f} s[/]" if scene.clock is not None else ""
    out: list = [f"\n[{colour}][{number}/{total}] {escape(scene.title)}[/]{clock}"]
    out += [f"  {escape(line)}" for line in scene.lines]
    for router, rows in (scene.tables if tables is None else tables).items():
        table = Table(title=f"{router}: mappings", title_justify="left", padding=(0, 1))
        for column in ("proto", "whose", "internal", "external", "for remote"):
            table.add_column(column)
        for row in shown_rows(rows):
            table.add_row(*row)
        out.append(table)
    return out


def print_scene(number: int, total: int, scene: Scene, tables: dict[str, list]) -> None:
    out = console()
    for renderable in scene_renderables(number, total, scene, tables):
        out.print(renderable)


def catalog_table(plural: str, entries: list[Entry]) -> Table:
    """The built-in topologies or scenarios (plural says which), with where each file is."""
    table = Table(title=f"built-in {plural}: name them instead of a path")
    for column in ("name", "about", "path"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.name, entry.about, str(entry.path))
    return table


class Live:
    """A spinner naming what runs now, with finished lines printed above it.

    Without a terminal (CI logs) only the finished lines are printed.
    """

    def __init__(self) -> None:
        self.console = console(soft_wrap=True)
        self.status = self.console.status("")

    def __enter__(self) -> Live:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.__exit__(*exc)

    def now(self, text: str) -> None:
        self.status.update(escape(text))

    def done(self, markup: str) -> None:
        self.console.print(markup)

    def scenario_progress(self, text: str, step: StepResult | None) -> None:
        """A scenario's progress (runner.Progress): what runs now, or a step finished."""
        if step is None:
            self.now(text)
        else:
            self.done(step_line(step))


# Wide enough for any table natlab draws; a table is only as wide as its content.
UNCUT_WIDTH = 10_000


def console(**options: object) -> Console:
    """A console for stdout: a terminal's width on a terminal, or COLUMNS if set; else uncut."""
    uncut = "COLUMNS" not in os.environ and not sys.stdout.isatty()
    return Console(highlight=False, width=UNCUT_WIDTH if uncut else None, **options)


def print_table(table: Table) -> None:
    console().print(table)


def print_line(text: str) -> None:
    console(soft_wrap=True).print(text)
