"""A command as a file gives it: one string split like a shell would, or a list of arguments."""

from __future__ import annotations

import shlex


def split_command(value: str | list[str]) -> tuple[str, ...]:
    """`"prog --flag 'a b'"` or `["prog", "--flag", "a b"]` -> argv; ValueError says what is wrong.

    A string is split with shlex (quotes group, nothing is expanded: no shell
    runs it); a list is taken as it is.
    """
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as error:  # "No closing quotation"
            raise ValueError(f"cannot split {value!r} into arguments: {error}") from None
    else:
        argv = tuple(value)
    if not argv or not argv[0]:
        raise ValueError("the command is empty")
    if any("\0" in arg for arg in argv):
        raise ValueError("an argument holds a NUL character")
    return argv
