"""natlab topologies, scenarios, schema: the built-in files and the file formats."""

from __future__ import annotations

import json

import click

from natlab.cli.command import command
from natlab.cli.options import emit_json, json_option


def _list_builtin(kind: str, as_json: bool) -> None:
    from natlab import catalog

    entries = catalog.entries(kind)
    plural = catalog.PLURALS[kind]
    if as_json:
        rows = [{"name": e.name, "path": str(e.path), "about": e.about} for e in entries]
        emit_json(plural, {plural: rows})
        return
    from natlab.render import catalog_table, print_table

    print_table(catalog_table(plural, entries))


@command(short_help="List the built-in topologies.")
@json_option()
def topologies(as_json: bool) -> None:
    """List the built-in topologies: natlab up NAME, natlab validate NAME, Lab.from_file(NAME)."""
    _list_builtin("topology", as_json)


@command(short_help="List the built-in scenarios.")
@json_option()
def scenarios(as_json: bool) -> None:
    """List the built-in scenarios: natlab run NAME."""
    _list_builtin("scenario", as_json)


@command(short_help="Print a file format's JSON Schema.")
@click.argument("kind", type=click.Choice(["topology", "scenario"]))  # file_formats.FORMATS
def schema(kind: str) -> None:
    """Print the JSON Schema of a topology or scenario file (docs/topology.md explains it)."""
    from natlab.file_formats import json_schema

    click.echo(json.dumps(json_schema(kind), indent=2))


COMMANDS = (topologies, scenarios, schema)
