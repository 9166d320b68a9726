"""natlab up, down, status, exec, reach: a lab's life, and running things inside it.

up, down and reach need root too: the lab library checks that itself when it
builds or removes namespaces, after the topology file has been read.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from natlab.cli.command import NatlabCommand, command
from natlab.cli.options import (
    complete_nodes,
    dataplane_option,
    emit_json,
    humans_aside,
    json_option,
    lab_argument,
    lab_named,
    lab_option,
)
from natlab.cli.probe import exit_for, verify_lab
from natlab.errors import NatlabError

# the built-in topologies ship in the package (the repository links topologies/ to them)
DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "main-branch.yaml"


@command(short_help="Bring a topology up as network namespaces.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name); run copies side by side.")
@dataplane_option
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
        verdicts = verify_lab(lab.name) if check else None
    if as_json:
        emit_json("up", {"lab": status} | ({} if verdicts is None else {"verify": verdicts}))
    if verdicts is not None:
        exit_for(verdicts)


@command(short_help="Take a lab down: processes, namespaces, state.")
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
    lab = lab_named(lab_name, None if everything and from_env else lab)
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


@command(short_help="Show running labs as the kernel has them.", needs_root=True)
@lab_argument
@lab_option("Show only this lab")
@json_option()
def status(lab_name: str | None, lab: str | None, as_json: bool) -> None:
    """Show running labs (or just LAB) as the kernel has them: nodes, interfaces, addresses.

    Exits 1 if a lab has a problem: a namespace missing, a process dead.
    """
    from natlab.lab import Lab, running_labs
    from natlab.render import print_status

    lab = lab_named(lab_name, lab)
    names = [lab] if lab else running_labs()
    described = [Lab.attach(name).status() for name in names]
    if as_json:
        emit_json("status", {"labs": described})
    elif not described:
        click.echo("no lab is up")
    for entry in [] if as_json else described:
        print_status(entry)
    if any(entry["problems"] for entry in described):
        sys.exit(1)


class _CommandLast(NatlabCommand):
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


@command("exec", cls=_CommandLast, short_help="Run a command inside a node.", needs_root=True)
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
    from natlab.lab import Lab
    from natlab.lab.processes import EXEC
    from natlab.plumbing.namespaces import enter

    argv = list(command) or [os.environ.get("SHELL", "/bin/bash")]
    if shutil.which(argv[0]) is None:
        raise NatlabError(f"command not found: {argv[0]}", fix="check the spelling and PATH")
    target = Lab.attach(lab)
    namespace = target.namespace(node)
    target.adopt(os.getpid(), node, EXEC)
    enter(namespace)
    os.environ.update(NATLAB_LAB=target.name, NATLAB_NODE=node)
    os.execvp(argv[0], argv)


@command(short_help="Who pings whom, held to what NAT should hide.")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="Lab name (default: the topology's name).")
@dataplane_option
@json_option("Print every ping as JSON to stdout")
def reach(file: str | None, name: str | None, dataplane: str, as_json: bool) -> None:
    """Bring FILE up (default: main-branch), ping every node from every host, take it down.

    Exits 1 if any ping does not do what the topology says: reach what is
    in front of or beside a host, and not what a NAT hides.
    """
    from natlab.lab import Lab
    from natlab.render import print_reach, reach_json
    from natlab.scenario.reachability import reachability

    with humans_aside(as_json):
        with Lab.from_file(file or str(DEFAULT_TOPOLOGY), name, dataplane) as lab:
            click.echo(f"lab '{lab.name}' is up; pinging...")
            probes = reachability(lab)
        print_reach(probes)
    as_expected = all(probe.as_expected for probe in probes)
    if as_json:
        emit_json(
            "reach", {"lab": lab.name, "as_expected": as_expected, "probes": reach_json(probes)}
        )
    if not as_expected:
        sys.exit(1)


COMMANDS = (up, down, status, exec_, reach)
