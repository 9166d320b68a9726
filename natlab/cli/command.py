"""What every natlab command is: click's, plus its input checked and then root asked for, once.

A command that needs root says so (needs_root: True, or a test of its parsed
parameters); this is the one place that checks it. Commands that read files
or paths first do that in check_input, which runs before the root check, so
that a mistake in the input is reported to anyone, root or not, before natlab
asks for root. Neither runs while a shell completes a command line.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import click

Params = dict[str, Any]


class NatlabCommand(click.Command):
    """click's Command, taking needs_root= and check_input= (see above) where it is declared."""

    def __init__(
        self,
        *args: Any,
        needs_root: bool | Callable[[Params], bool] = False,
        check_input: Callable[..., Params] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.needs_root = needs_root
        self.check_input = check_input  # the parameters in, the parameters the command takes out

    def invoke(self, ctx: click.Context) -> Any:
        if self.check_input is not None:
            ctx.params = self.check_input(**ctx.params)
        if self.needs_root is True or (callable(self.needs_root) and self.needs_root(ctx.params)):
            from natlab.lab import require_root

            require_root(command_line(ctx))
        return super().invoke(ctx)


def command_line(ctx: click.Context) -> str:
    """'natlab nat show': the command as a user names it, however natlab was started."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["natlab", *reversed(names)])


class NatlabGroup(click.Group):
    """A group whose commands are natlab's."""

    command_class = NatlabCommand


command = partial(click.command, cls=NatlabCommand)
