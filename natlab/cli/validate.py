"""natlab validate: check topology files and show their plan; builds nothing, needs no root."""

from __future__ import annotations

import click

from natlab.cli.command import command
from natlab.cli.options import emit_json, json_option


@command(short_help="Check topology files; builds nothing.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option("Print the plans as JSON to stdout (only when every file is valid)")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check topology FILES (or built-in names) and show the planned addresses; builds nothing."""
    from natlab.render import dns_table, plan_json, print_table, topology_table
    from natlab.topology import load_topology

    plans = []
    for file in files:
        topology = load_topology(file)
        plans.append(plan_json(topology, file))
        if not as_json:
            print_table(topology_table(topology, f"{file}: topology '{topology.name}' is valid"))
            if topology.dns is not None:
                print_table(dns_table(topology))
    if as_json:
        emit_json("validate", {"topologies": plans})
