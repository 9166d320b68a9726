"""natlab clock advance: age every mapping of a lab at once instead of waiting."""

from __future__ import annotations

import click

from natlab.cli.command import NatlabGroup
from natlab.cli.options import lab_named, lab_option
from natlab.errors import NatlabError


@click.group(cls=NatlabGroup, short_help="Move the lab's clock instead of waiting.")
def clock() -> None:
    """The lab's clock, which ages NAT mappings: move it instead of waiting."""


def _duration(text: str) -> float:
    """A clock advance: finite, from 0 to 30 days (the daemons hold to the same)."""
    from natlab.core.durations import FORMS, parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise NatlabError(str(error), field="DURATION", fix=FORMS) from None


def _lab_and_duration(args: tuple[str, ...], lab: str | None) -> dict:
    """[LAB] DURATION as (the lab named as an argument, seconds); checked before root."""
    if len(args) > 2:
        raise NatlabError("give at most a lab name and a duration", fix="natlab clock advance 31s")
    return {
        "lab": lab,
        "lab_name": args[0] if len(args) == 2 else None,
        "seconds": _duration(args[-1]),
    }


@clock.command(
    "advance",
    short_help="Age every mapping by DURATION at once.",
    needs_root=True,
    check_input=_lab_and_duration,
)
@click.argument("args", nargs=-1, required=True, metavar="[LAB] DURATION")
@lab_option("The lab whose clock to move")
def clock_advance(lab: str | None, lab_name: str | None, seconds: float) -> None:
    """Age every mapping of the lab's routers by DURATION (e.g. 31s, 2m, 1h) at once.

    The lab is --lab NAME (or LAB, the older form).
    """
    from natlab.lab import Lab

    target = Lab.attach(lab_named(lab_name, lab))
    for router, now in target.advance_clock(seconds).items():
        click.echo(f"router {router}: clock advanced {seconds:g} s to {now:.1f} s")
