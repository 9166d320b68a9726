"""The one error type for mistakes a user can make and fix.

Anything that is the user's to correct (a bad topology, an unknown node, not
being root) raises NatlabError. The CLI prints it without a traceback and
exits with code 2; anything else is natlab's own bug: exit 3, with the
traceback saved to a file the message names.
"""

from __future__ import annotations


class NatlabError(Exception):
    """A user-fixable problem: where it is, what is wrong, how to fix it."""

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        text = f"{where}: {self.problem}" if where else self.problem
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text
