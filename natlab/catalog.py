"""The built-in topologies and scenarios: YAML files shipped in the package, found by name.

`natlab up main-branch` and `natlab run symmetric-fails` work from any
directory once natlab is installed. A path that exists always wins over a
name, so a user's own file is never shadowed by a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from natlab.errors import NatlabError

PACKAGE = Path(__file__).resolve().parent
FOLDERS: dict[str, Path] = {  # by kind
    "topology": PACKAGE / "topologies",  # the repository's topologies/ links here
    "scenario": PACKAGE / "scenarios",  # and its scenarios/ here
}
PLURALS: dict[str, str] = {"topology": "topologies", "scenario": "scenarios"}


@dataclass(frozen=True)
class Entry:
    """One built-in file: the name it is called by, where it is, and what it is for."""

    name: str
    path: Path
    about: str


def names(kind: str) -> list[str]:
    return sorted(path.stem for path in FOLDERS[kind].glob("*.yaml"))


def entries(kind: str) -> list[Entry]:
    return [
        Entry(name, path, _about(path, kind))
        for name in names(kind)
        for path in [FOLDERS[kind] / f"{name}.yaml"]
    ]


def locate(kind: str, given: str | Path) -> Path:
    """The file `given` names: a path if one exists, else a built-in name (.yaml optional).

    Neither: a NatlabError whose fix lists the built-in names.
    """
    path = Path(given)
    if path.exists():
        return path
    name = path.name.removesuffix(".yaml")
    if path.parent == Path() and name in names(kind):
        return FOLDERS[kind] / f"{name}.yaml"
    raise NatlabError(
        f"no such {kind} file, and no built-in {kind} of that name",
        file=str(given),
        fix=f"give the path of a YAML file, or one of the built-in {PLURALS[kind]}: "
        + ", ".join(names(kind)),
    )


def _about(path: Path, kind: str) -> str:
    """A scenario's `about`; for a topology, the first sentence of its leading comment."""
    text = path.read_text(encoding="utf-8")
    if kind == "scenario":
        return str(yaml.safe_load(text).get("about", ""))
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("# ").strip())
    first = " ".join(comment).partition(". ")[0]
    return first.rstrip(".") + "." if first else ""
