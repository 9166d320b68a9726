"""What may name a lab: a topology's name is its lab's name unless `up --name` gives another.

One rule for both, so `natlab validate` refuses exactly the names `natlab up` would;
and one way to make a name of its own for a run or a test's lab.
"""

from __future__ import annotations

import re
import secrets

from natlab.errors import NatlabError

LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def check_lab_name(
    name: str, field: str = "--name", file: str | None = None, line: int | None = None
) -> str:
    """name, if it can name a lab (its namespaces and state directory); else a NatlabError."""
    if not LAB_NAME.match(name):
        raise NatlabError(
            f"'{name}' cannot name a lab",
            file=file,
            line=line,
            field=field,
            fix="use up to 40 lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit",
        )
    return name


def unique_lab_name(name: str) -> str:
    """A lab name of its own, after `name`, so that runs and test labs never collide."""
    base = re.sub(r"[^a-z0-9_.-]", "-", name.lower())[:24].strip("-._") or "lab"
    return check_lab_name(f"{base}-{secrets.token_hex(3)}")
