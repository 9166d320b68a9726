"""The `natlab` command: parse arguments, call the layers below, render.

Every command that works on a running lab takes --lab (or $NATLAB_LAB); every
--json prints one versioned JSON document to stdout, and what people read goes
to stderr meanwhile. Exit codes: 0 as expected, 1 an expectation failed, 2 the
user's input or environment is wrong (NatlabError, usage), 3 natlab itself
failed (traceback saved to a file), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from natlab.errors import NatlabError

# the built-in topologies ship in the package (the repository links topologies/ to them)
DEFAULT_TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "main-branch.yaml"
LAB_ENV = "NATLAB_LAB"  # also what `natlab exec` sets inside a node, so natlab there needs no --lab


def _default_topology() -> str:
    return str(DEFAULT_TOPOLOGY)


def say(text: str, *, red: bool = False, err: bool = False) -> None:
    """A line for people; red only where colour is wanted (NO_COLOR, no-color.org, says not)."""
    if red and not os.environ.get("NO_COLOR"):
        click.secho(text, fg="red", err=err)
    else:
        click.echo(text, err=err)


def _save_traceback() -> Path:
    """Write the traceback being handled, with the command line, to a file of its own."""
    descriptor, name = tempfile.mkstemp(prefix="natlab-internal-error-", suffix=".txt")
    with os.fdopen(descriptor, "w") as report:
        report.write(f"natlab {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
    return Path(name)


class _Natlab(click.Group):
    """The command group that turns every failure into its exit code and one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit):
            raise  # usage errors (2), --help, and click's own exits
        except BrokenPipeError:
            raise  # the reader went away (natlab ... | head): click exits quietly
        except NatlabError as error:
            say(f"natlab: error: {error}", red=True, err=True)
            ctx.exit(error.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort):  # Abort: Ctrl-C at a prompt
            click.echo("natlab: interrupted", err=True)
            ctx.exit(130)
        except Exception as error:
            saved = _save_traceback()
            say(f"natlab: internal error: {error!r}; details in {saved}", red=True, err=True)
            ctx.exit(3)


EXIT_CODES = """\b
Exit codes:
  0    everything as expected
  1    an expectation failed: a check, a pair, a router unlike its topology
  2    the input or the environment is wrong; the message says what to fix
  3    natlab itself failed: a bug (the message names the file with the details),
       or a process of the lab died: a router's NAT daemon, a phone, the PBX (a fault)
  130  interrupted (Ctrl-C); what was half-built is removed again
"""


@click.group(
    cls=_Natlab,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)
@click.version_option(package_name="natlab")
def cli() -> None:
    """natlab: NAT routers, phones and STUN in Linux network namespaces.

    Describe a network in YAML (or name a built-in one), bring it up as real network
    stacks, run anything inside any node, and take it all down again.

    Commands on a running lab take --lab NAME, or read $NATLAB_LAB; with
    neither, they use the only lab up. --json prints JSON to stdout.
    """


# -- completion: what a shell offers after TAB -----------------------------------


def complete_labs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """The labs recorded in the state root (none offered if it cannot be read)."""
    from natlab.lab.ledger import lab_names

    try:
        names = lab_names()
    except OSError:
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _lab_nodes(ctx: click.Context, routers_only: bool) -> list[str]:
    """The nodes (or routers) of the lab named so far on the command line, or the only lab up."""
    from natlab.lab import Lab
    from natlab.topology.model import Router

    named = ctx.params.get("lab") or ctx.params.get("lab_name") or os.environ.get(LAB_ENV)
    try:
        topology = Lab.attach(named).topology
    except (NatlabError, OSError, ValueError, KeyError):  # no lab, several, unreadable state
        return []
    return [n.name for n in topology.nodes.values() if not routers_only or isinstance(n, Router)]


def complete_nodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    return [CompletionItem(n) for n in _lab_nodes(ctx, False) if n.startswith(incomplete)]


def complete_routers(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    return [CompletionItem(n) for n in _lab_nodes(ctx, True) if n.startswith(incomplete)]


def complete_demos(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from natlab.scenario.demos import DEMOS

    return [CompletionItem(name) for name in DEMOS if name.startswith(incomplete)]


# -- options every lab command shares ----------------------------------------------


def lab_option(what: str = "The lab") -> Callable:
    """--lab NAME, else $NATLAB_LAB, else the only lab up (which Lab.attach(None) picks)."""
    return click.option(
        "--lab",
        metavar="NAME",
        envvar=LAB_ENV,
        shell_complete=complete_labs,
        help=f"{what} (default: ${LAB_ENV}, else the only lab up).",
    )


# down, status and verify took the lab as an argument before --lab; that form stays
lab_argument = click.argument(
    "lab_name", metavar="[LAB]", required=False, shell_complete=complete_labs
)


def _lab_named(argument: str | None, option: str | None) -> str | None:
    """The lab a command works on: LAB as an argument, or --lab (or its environment variable)."""
    if argument is None:
        return option
    explicit = click.get_current_context().get_parameter_source("lab") is not (
        ParameterSource.ENVIRONMENT
    )
    if option is not None and option != argument and explicit:
        raise NatlabError(
            f"two labs named: '{argument}' and --lab {option}", fix="name the lab once, with --lab"
        )
    return argument


def json_option(what: str = "Print JSON to stdout, for scripts") -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=f"{what}.")


def emit_json(kind: str, payload: dict) -> None:
    """One JSON document on stdout, under its schema name (see render.SCHEMA_VERSIONS)."""
    from natlab.render import json_document

    click.echo(json.dumps(json_document(kind, payload), indent=2))


@contextlib.contextmanager
def humans_aside(as_json: bool) -> Iterator[None]:
    """With --json, what people read goes to stderr, so that stdout holds the JSON alone."""
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        yield


@cli.command(short_help="Check topology files; builds nothing.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option("Print the plans as JSON to stdout (only when every file is valid)")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check topology FILES (or built-in names) and show the planned addresses; builds nothing."""
    from natlab.render import plan_json, print_table, topology_table
    from natlab.topology import load_topology

    plans = []
    for file in files:
        topology = load_topology(file)
        plans.append(plan_json(topology, file))
        if not as_json:
            print_table(topology_table(topology, f"{file}: topology '{topology.name}' is valid"))
    if as_json:
        emit_json("validate", {"topologies": plans})


_dataplane_option = click.option(
    "--dataplane",
    type=click.Choice(["natlab", "kernel"]),
    default="natlab",
    show_default=True,
    help="natlab: routers run natlab's NAT daemon; kernel: plain kernel routing, no NAT.",
)


@cli.command(short_help="Bring a topology up as network namespaces.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name); run copies side by side.")
@_dataplane_option
@click.option(
    "--verify",
    "check",
    is_flag=True,
    help="Then probe every NAT router with STUN; exit 1 if one differs from the topology.",
)
@json_option("Print the lab's status (and with --verify the verdicts) as JSON to stdout")
def up(file: str, name: str | None, dataplane: str, check: bool, as_json: bool) -> None:
    """Bring the topology in FILE (or a built-in one by name) up; the lab stays up."""
    from natlab.lab import Lab
    from natlab.render import print_table, status_table

    lab = Lab.from_file(file, name, dataplane)
    try:
        lab.up()
    except KeyboardInterrupt:
        click.echo("natlab: interrupted; what was built is removed again", err=True)
        sys.exit(130)
    status = lab.status()
    with humans_aside(as_json):
        print_table(status_table(status))
        click.echo(f"\nlab '{lab.name}' is up: natlab exec NODE -- CMD, natlab down {lab.name}")
        verdicts = _verify(lab.name) if check else None
    if as_json:
        emit_json("up", {"lab": status} | ({} if verdicts is None else {"verify": verdicts}))
    if verdicts is not None:
        _exit_for(verdicts)


@cli.command(short_help="Take a lab down: processes, namespaces, state.")
@lab_argument
@lab_option("The lab to take down")
@click.option("--all", "everything", is_flag=True, help="Take down every lab natlab recorded.")
def down(lab_name: str | None, lab: str | None, everything: bool) -> None:
    """Take the lab down (LAB or --lab; the only lab up, if not named): processes,
    namespaces, state.
    """
    from natlab.lab import down as take_down
    from natlab.lab import down_all

    from_env = click.get_current_context().get_parameter_source("lab") is (
        ParameterSource.ENVIRONMENT
    )
    lab = _lab_named(lab_name, None if everything and from_env else lab)
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


@cli.command(short_help="Show running labs as the kernel has them.")
@lab_argument
@lab_option("Show only this lab")
@json_option()
def status(lab_name: str | None, lab: str | None, as_json: bool) -> None:
    """Show running labs (or just LAB) as the kernel has them: nodes, interfaces, addresses.

    Exits 1 if a lab has a problem: a namespace missing, a process dead.
    """
    from natlab.lab import Lab, require_root, running_labs
    from natlab.render import print_table, status_table

    require_root("natlab status")
    lab = _lab_named(lab_name, lab)
    names = [lab] if lab else running_labs()
    described = [Lab.attach(name).status() for name in names]
    if as_json:
        emit_json("status", {"labs": described})
    elif not described:
        click.echo("no lab is up")
    for entry in [] if as_json else described:
        print_table(status_table(entry))
        for problem in entry["problems"]:
            say(f"  problem: {problem}", red=True)
    if any(entry["problems"] for entry in described):
        sys.exit(1)


class _CommandLast(click.Command):
    """NODE and natlab's options first, in any order; the command from its first word on.

    The command starts after `--`, or else at the first word after NODE that is
    not an option: `natlab exec phone-b --lab X -- ls -l` and `natlab exec
    --lab X phone-b ls -l` both run `ls -l`, whose options stay its own.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        ours, node_seen, index = [], False, 0
        while index < len(args):
            word = args[index]
            if word == "--":
                index += 1
                break
            if word.startswith("-") and word != "-":
                ours.append(word)
                if word in takes_value and index + 1 < len(args):
                    index += 1
                    ours.append(args[index])
            elif node_seen:
                break
            else:
                ours.append(word)
                node_seen = True
            index += 1
        return super().parse_args(ctx, [*ours, "--", *args[index:]])


@cli.command("exec", cls=_CommandLast, short_help="Run a command inside a node.")
@click.argument("node", shell_complete=complete_nodes)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@lab_option("The lab NODE is in")
def exec_(node: str, command: tuple[str, ...], lab: str | None) -> None:
    """Run COMMAND inside NODE (a shell if none); natlab's options go before `--`.

    \b
    natlab exec phone-a -- ping 203.0.113.4
    natlab exec phone-a --lab copy2 -- bash
    Standard input and output, the terminal and the exit status pass through.
    """
    from natlab.lab import Lab, require_root
    from natlab.lab.processes import EXEC
    from natlab.plumbing.namespaces import enter

    require_root("natlab exec")
    argv = list(command) or [os.environ.get("SHELL", "/bin/bash")]
    if shutil.which(argv[0]) is None:
        raise NatlabError(f"command not found: {argv[0]}", fix="check the spelling and PATH")
    target = Lab.attach(lab)
    namespace = target.namespace(node)
    target.adopt(os.getpid(), node, EXEC)
    enter(namespace)
    os.environ.update(NATLAB_LAB=target.name, NATLAB_NODE=node)
    os.execvp(argv[0], argv)


@cli.command(short_help="Who pings whom, held to what NAT should hide.")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name).")
@_dataplane_option
@json_option("Print every ping as JSON to stdout")
def reach(file: str | None, name: str | None, dataplane: str, as_json: bool) -> None:
    """Bring FILE up (default: main-branch), ping every node from every host, take it down.

    Exits 1 if any ping does not do what the topology says: reach what is
    in front of or beside a host, and not what a NAT hides.
    """
    from natlab.lab import Lab
    from natlab.render import print_table, reach_json, reach_table
    from natlab.scenario.reachability import reachability

    with humans_aside(as_json):
        with Lab.from_file(file or _default_topology(), name, dataplane) as lab:
            click.echo(f"lab '{lab.name}' is up; pinging...")
            probes = reachability(lab)
        print_table(reach_table(probes))
        wrong = [p for p in probes if not p.as_expected]
        reached = sum(p.reached for p in probes)
        click.echo(
            f"{reached} of {len(probes)} addresses reached, {len(wrong)} not as expected; "
            "lab is down"
        )
        for probe in wrong:
            should = "should reach" if probe.expected else "should NOT reach"
            say(f"  {probe.source} {should} {probe.target} ({probe.address})", red=True)
    if as_json:
        emit_json(
            "reach", {"lab": lab.name, "as_expected": not wrong, "probes": reach_json(probes)}
        )
    if wrong:
        sys.exit(1)


@cli.command(short_help="What NAT does a node sit behind? (RFC 5780)")
@click.argument("node", shell_complete=complete_nodes)
@lab_option("The lab NODE is in")
@click.option(
    "--server",
    metavar="HOST|ADDR[:PORT]",
    help="STUN server: a node of the lab or an address "
    "(default: the lab's STUN server, else NODE's router's own).",
)
@click.option("--lifetime", is_flag=True, help="Also measure the binding lifetime (lab clock).")
@json_option()
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
        emit_json("probe", report)
        return
    table = Table(title=f"NAT behaviour seen from {node}", title_justify="left")
    table.add_column("")
    table.add_column("seen")
    for row in summary(report):
        table.add_row(*row)
    print_table(table)


@cli.command(short_help="Does every NAT router do what its topology says?")
@lab_argument
@lab_option("The lab to verify")
@json_option("Print every router's verdict as JSON to stdout")
def verify(lab_name: str | None, lab: str | None, as_json: bool) -> None:
    """Probe every NAT router of the lab (LAB or --lab) with STUN: does it do what the
    topology says?

    Exits 1, naming the router and the axis, if one does not; 3 if a router's
    NAT daemon or the STUN server died (a fault, named). The lab stays up.
    """
    from natlab.lab import require_root

    require_root("natlab verify")
    with humans_aside(as_json):
        verdicts = _verify(_lab_named(lab_name, lab))
    if as_json:
        emit_json("verify", verdicts)
    _exit_for(verdicts)


def _exit_for(verdicts: dict) -> None:
    """3 when a process the lab needs died (a fault), 1 when a router differs from its topology."""
    if verdicts["faults"]:
        sys.exit(3)
    if not verdicts["as_declared"]:
        sys.exit(1)


def _verify(name: str | None) -> dict:
    """Print each router's verdict and return them all; the lab stays up either way."""
    from natlab.lab import Lab
    from natlab.render import verify_json
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
    faults = [result.fault for result in results if result.fault]
    as_declared = not faults and not any(result.mismatches for result in results)
    if faults:
        say(
            f"lab '{lab.name}' lost a process it needs (a fault, not a NAT result); "
            f"it stays up: natlab status {lab.name}, natlab down {lab.name}",
            red=True,
        )
    elif as_declared:
        click.echo(f"lab '{lab.name}' behaves as its topology says")
    else:
        say(
            f"lab '{lab.name}' does not behave as its topology says; "
            f"it stays up: natlab down {lab.name}",
            red=True,
        )
    return {
        "lab": lab.name,
        "as_declared": as_declared,
        "faults": faults,
        "routers": verify_json(results),
    }


@cli.group(short_help="A running router's NAT: mappings, events, behaviour.")
def nat() -> None:
    """Look into and steer a running router's NAT: mappings, events, behaviour."""


_lab_option = lab_option("The lab ROUTER is in")
_router_argument = click.argument("router", shell_complete=complete_routers)


@nat.command("show", short_help="ROUTER's mappings and counters.")
@_router_argument
@_lab_option
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N mappings.")
@json_option("Print JSON lines: the summary (with the schema), then one line per mapping")
def nat_show(router: str, lab: str | None, limit: int | None, as_json: bool) -> None:
    """ROUTER's mapping table (inside, outside, who may send in, age, expiry) and counters."""
    from natlab.lab import Lab, require_root
    from natlab.render import json_document, nat_tables, print_table

    require_root("natlab nat show")
    head, mappings = Lab.attach(lab).nat_show(router, limit)
    head.pop("ok", None)
    if as_json:  # streamed: a table of any size, one line at a time
        click.echo(json.dumps(json_document("nat-show", head)))
        for mapping in mappings:
            click.echo(json.dumps(mapping))
        return
    show = {**head, "mappings": list(mappings)}
    for table in nat_tables(show):
        print_table(table)
    if len(show["mappings"]) < head["mappings_total"]:
        click.echo(f"{len(show['mappings'])} of {head['mappings_total']} mappings shown (--limit)")


@nat.command("events", short_help="What ROUTER decided and why.")
@_router_argument
@_lab_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@json_option("Print each event as one line of JSON to stdout")
def nat_events(router: str, lab: str | None, follow: bool, as_json: bool) -> None:
    """What ROUTER decided and why: mappings made and expired, packets dropped with the reason."""
    from natlab.lab import Lab, require_root
    from natlab.render import event_line, json_document, print_line
    from natlab.router.eventlog import follow as following
    from natlab.router.eventlog import read_lines

    require_root("natlab nat events")
    path = Lab.attach(lab).nat_events_path(router)
    for line in following(path) if follow else read_lines(path):  # rotated files too
        event = json.loads(line)
        if as_json:
            click.echo(json.dumps(json_document("nat-event", event)))
        else:
            print_line(event_line(event))


@nat.command("flush", short_help="Forget ROUTER's dynamic mappings.")
@_router_argument
@_lab_option
def nat_flush(router: str, lab: str | None) -> None:
    """Forget every dynamic mapping of ROUTER (port forwards stay)."""
    from natlab.lab import Lab, require_root

    require_root("natlab nat flush")
    flushed = Lab.attach(lab).nat(router, {"op": "flush"})["flushed"]
    click.echo(f"router {router}: flushed {flushed} mapping(s)")


@nat.command("set", short_help="Change ROUTER's behaviour live.")
@_router_argument
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


@cli.group(short_help="Move the lab's clock instead of waiting.")
def clock() -> None:
    """The lab's clock, which ages NAT mappings: move it instead of waiting."""


@clock.command("advance", short_help="Age every mapping by DURATION at once.")
@click.argument("args", nargs=-1, required=True, metavar="[LAB] DURATION")
@lab_option("The lab whose clock to move")
def clock_advance(args: tuple[str, ...], lab: str | None) -> None:
    """Age every mapping of the lab's routers by DURATION (e.g. 31s, 2m, 1h) at once.

    The lab is --lab NAME (or LAB, the older form).
    """
    from natlab.lab import Lab, require_root

    if len(args) > 2:
        raise NatlabError("give at most a lab name and a duration", fix="natlab clock advance 31s")
    seconds = _duration(args[-1])
    require_root("natlab clock advance")
    target = Lab.attach(_lab_named(args[0] if len(args) == 2 else None, lab))
    for router, now in target.advance_clock(seconds).items():
        click.echo(f"router {router}: clock advanced {seconds:g} s to {now:.1f} s")


_json_file = click.option(
    "--json-file",
    "json_file",
    type=click.Path(dir_okay=False, allow_dash=False),
    help="Also write the results as JSON to this file (what --json prints).",
)


def _report_json(kind: str, result: Any, as_json: bool, json_file: str | None) -> None:
    """The results as a JSON document: to stdout with --json, into a file with --json-file."""
    from natlab.render import json_document

    document = json_document(kind, result.as_json())
    if json_file:
        Path(json_file).write_text(json.dumps(document, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(document, indent=2))


_junit_file = click.option(
    "--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write JUnit XML (CI)."
)
_html_file = click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report (works offline).",
)


@cli.command(short_help="Run a scenario in a lab of its own.")
@click.argument("scenario", type=click.Path(dir_okay=False))
@json_option("Print the results as JSON to stdout (what people read goes to stderr)")
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
    as_json: bool,
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
    from natlab.scenario.reports import check_writable, write_junit
    from natlab.scenario.runner import unique_lab_name
    from natlab.scenario.trace import default_trace, read_trace, run_traced
    from natlab.scenario.verdict import NOT_NAT

    loaded = load_scenario(scenario)
    for option, report in (
        ("--json-file", json_file),
        ("--junit", junit_file),
        ("--html", html_file),
    ):
        check_writable(report, option)
    require_root("natlab run")
    kept = None if trace_file else default_trace(loaded.name)  # made unique when written
    with (
        humans_aside(as_json),
        tempfile.TemporaryDirectory(prefix="natlab-run-") as scratch,
        Live() as live,
    ):
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
    with humans_aside(as_json):
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
        if result.trace and (trace_file or not result.passed):
            trace = escape(result.trace)
            print_line(f"\ntrace: {trace} (natlab explain {trace})")
    _report_json("run", result, as_json, json_file)
    if junit_file:
        write_junit(junit_file, result)
    sys.exit(result.exit_code)


@cli.command(short_help="Call across every pair of NAT types.")
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
@json_option("Print the results as JSON to stdout (what people read goes to stderr)")
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
    as_json: bool,
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
    from natlab.scenario.reports import check_writable, write_junit

    chosen = check_types([t for text in types for t in text.split(",") if t] or TYPES)
    for option, report in (
        ("--json-file", json_file),
        ("--junit", junit_file),
        ("--html", html_file),
    ):
        check_writable(report, option)
    require_root("natlab matrix")
    total, finished = len(chosen) ** 2, []

    def progress(pair: PairResult) -> None:
        finished.append(pair)
        live.done(pair_line(pair))
        live.now(f"{len(finished)} of {total} pairs done")

    with humans_aside(as_json), Live() as live:
        live.now(f"{total} pairs, {jobs or default_jobs()} labs at a time")
        result = run_matrix(
            chosen,
            relay,
            jobs,
            progress,
            Path(trace_dir) if trace_dir else None,
            Path(pcap_dir) if pcap_dir else None,
        )
    with humans_aside(as_json):
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
    _report_json("matrix", result, as_json, json_file)
    if junit_file:
        write_junit(junit_file, result)
    if html_file:
        write_html(html_file, "natlab matrix", matrix_html(result))
    sys.exit(result.exit_code)


@cli.command(short_help="Tell a trace step by step.")
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


@cli.command(short_help="Run a lesson in a lab of its own and tell it.")
@click.argument("name", required=False, shell_complete=complete_demos)
@click.option("--list", "listing", is_flag=True, help="List the demos, one line each.")
@click.option("--step", "stepwise", is_flag=True, help="Wait for Enter after each step.")
@json_option("Print the list of demos as JSON to stdout")
def demo(name: str | None, listing: bool, stepwise: bool, as_json: bool) -> None:
    """Run demo NAME in a lab of its own and tell its story, as natlab explain does.

    The lab is down again before the story starts. Without NAME: the list.
    Exits 1 if the lab did not do what the lesson says it does.
    """
    import tempfile

    from rich.markup import escape

    from natlab.lab import require_root
    from natlab.render import Live, print_line, step_line
    from natlab.scenario.demos import DEMOS, demo_lines, demo_scenario, run_demo

    if as_json:
        if name is not None:
            raise NatlabError("--json lists the demos; it cannot run one", fix="drop NAME")
        about = {name: demo_scenario(name).about for name in DEMOS}
        emit_json("demos", {"demos": [{"name": n, "about": a} for n, a in about.items()]})
        return
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
    from natlab.render import console as render_console
    from natlab.render import scene_renderables

    console = render_console()
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
    """Entry point: SIGINT and SIGTERM become Ctrl-C; every outcome becomes its exit code."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C while click itself was busy (parsing arguments)
        click.echo("natlab: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


# --- the built-in files and the file formats ----------------------------------------------


def _list_builtin(kind: str, as_json: bool) -> None:
    from natlab import catalog

    entries = catalog.entries(kind)
    if as_json:
        rows = [{"name": e.name, "path": str(e.path), "about": e.about} for e in entries]
        emit_json(catalog.PLURALS[kind], {catalog.PLURALS[kind]: rows})
        return
    from rich.table import Table

    from natlab.render import print_table

    table = Table(title=f"built-in {catalog.PLURALS[kind]}: name them instead of a path")
    for column in ("name", "about", "path"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.name, entry.about, str(entry.path))
    print_table(table)


@cli.command(short_help="List the built-in topologies.")
@json_option()
def topologies(as_json: bool) -> None:
    """List the built-in topologies: natlab up NAME, natlab validate NAME, Lab.from_file(NAME)."""
    _list_builtin("topology", as_json)


@cli.command(short_help="List the built-in scenarios.")
@json_option()
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios: natlab run NAME."""
    _list_builtin("scenario", as_json)


@cli.command(short_help="Print a file format's JSON Schema.")
@click.argument("kind", type=click.Choice(["topology", "scenario"]))  # file_formats.FORMATS
def schema(kind: str) -> None:
    """Print the JSON Schema of a topology or scenario file (docs/topology.md explains it)."""
    from natlab.file_formats import json_schema

    click.echo(json.dumps(json_schema(kind), indent=2))
