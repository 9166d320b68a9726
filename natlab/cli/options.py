"""The options many commands share, what TAB offers for them, and --json's output.

Every command that works on a running lab takes --lab (or $NATLAB_LAB); every
--json prints one versioned JSON document to stdout, and what people read goes
to stderr meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from natlab.errors import NatlabError

LAB_ENV = "NATLAB_LAB"  # also what `natlab exec` sets inside a node, so natlab there needs no --lab


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


# -- the lab a command works on -----------------------------------------------------


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


def lab_named(argument: str | None, option: str | None) -> str | None:
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


dataplane_option = click.option(
    "--dataplane",
    type=click.Choice(["natlab", "kernel"]),
    default="natlab",
    show_default=True,
    help="natlab: routers run natlab's NAT daemon; kernel: plain kernel routing, no NAT.",
)


# -- results for scripts and for CI ------------------------------------------------------


def json_option(what: str = "Print JSON to stdout, for scripts") -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=f"{what}.")


def emit_json(kind: str, payload: dict) -> None:
    """One JSON document on stdout, under its schema name (see json_documents.py)."""
    from natlab.json_documents import json_document

    click.echo(json.dumps(json_document(kind, payload), indent=2))


@contextlib.contextmanager
def humans_aside(as_json: bool) -> Iterator[None]:
    """With --json, what people read goes to stderr, so that stdout holds the JSON alone."""
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        yield


json_file_option = click.option(
    "--json-file",
    "json_file",
    type=click.Path(dir_okay=False, allow_dash=False),
    help="Also write the results as JSON to this file (what --json prints).",
)
junit_file_option = click.option(
    "--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write JUnit XML (CI)."
)
html_file_option = click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report (works offline).",
)


def report_options(command: Callable) -> Callable:
    """--json, --json-file, --junit and --html: the results of run and matrix, for machines."""
    for option in reversed(
        (
            json_option("Print the results as JSON to stdout (what people read goes to stderr)"),
            json_file_option,
            junit_file_option,
            html_file_option,
        )
    ):
        command = option(command)
    return command
