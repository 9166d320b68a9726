"""natlab probe, verify: what NAT the routers do, found out with STUN from inside the lab."""

from __future__ import annotations

import sys

import click

from natlab.cli.command import command
from natlab.cli.options import (
    complete_nodes,
    emit_json,
    humans_aside,
    json_option,
    lab_argument,
    lab_named,
    lab_option,
)


@command(short_help="What NAT does a node sit behind? (RFC 5780)", needs_root=True)
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
    from natlab.lab import Lab
    from natlab.render import print_table, probe_table
    from natlab.scenario.probe import discover

    report = discover(Lab.attach(lab), node, server, lifetime)
    if as_json:
        emit_json("probe", report.to_json())
    else:
        print_table(probe_table(node, report))


@command(short_help="Does every NAT router do what its topology says?", needs_root=True)
@lab_argument
@lab_option("The lab to verify")
@json_option("Print every router's verdict as JSON to stdout")
def verify(lab_name: str | None, lab: str | None, as_json: bool) -> None:
    """Probe every NAT router of the lab (LAB or --lab) with STUN: does it do what the
    topology says?

    Exits 1, naming the router and the axis, if one does not; 3 if a router's
    NAT daemon or the STUN server died (a fault, named). The lab stays up.
    """
    with humans_aside(as_json):
        verdicts = verify_lab(lab_named(lab_name, lab))
    if as_json:
        emit_json("verify", verdicts)
    exit_for(verdicts)


def verify_lab(name: str | None) -> dict:
    """Verify the lab (also `natlab up --verify`), print each router's verdict, return them all;
    the lab stays up either way.
    """
    from natlab.lab import Lab
    from natlab.render import print_verify, verify_json
    from natlab.scenario.verify import verify as run_verify

    lab = Lab.attach(name)
    click.echo(
        f"verifying lab '{lab.name}' (it stays up whatever this finds): "
        "probing every NAT router with STUN..."
    )
    results = run_verify(lab)
    verdicts = verify_json(lab.name, results)
    print_verify(verdicts, results)
    return verdicts


def exit_for(verdicts: dict) -> None:
    """3 when a process the lab needs died (a fault), 1 when a router differs from its topology."""
    if verdicts["faults"]:
        sys.exit(3)
    if not verdicts["as_declared"]:
        sys.exit(1)


COMMANDS = (probe, verify)
