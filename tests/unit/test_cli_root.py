"""One root check: every command that needs root says so and is refused, by name, to a user
who is not root, but only after its input was checked; the others run for anyone.
In-process with CliRunner, as a user who is not root (os.geteuid patched).
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from natlab.cli import cli
from natlab.cli.command import NatlabCommand

from .test_cli_options import every_command
from .test_exit_codes import MAIN_BRANCH

NEEDS_ROOT = {
    ("status",): [],
    ("exec",): ["phone-a"],
    ("probe",): ["phone-a"],
    ("verify",): [],
    ("nat", "show"): ["branch1"],
    ("nat", "events"): ["branch1"],
    ("nat", "flush"): ["branch1"],
    ("nat", "set"): ["branch1", "full-cone"],
    ("clock", "advance"): ["31s"],
    ("run",): ["same-lan"],
    ("matrix",): [],
    ("demo",): ["hairpin"],
}


@pytest.fixture
def not_root(monkeypatch, tmp_path):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("NATLAB_RUN_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NATLAB_LAB", raising=False)


def invoke(*args: str, prog_name: str = "natlab"):
    return CliRunner().invoke(cli, list(args), prog_name=prog_name)


def test_every_command_is_a_natlab_command_so_its_root_check_cannot_be_skipped():
    commands = [cli]
    for path in every_command():
        found = cli
        for name in path:
            found = found.commands[name]  # type: ignore[attr-defined]
        commands.append(found)
    plain = [c.name for c in commands if not isinstance(c, (NatlabCommand, click.Group))]
    assert plain == []


@pytest.mark.parametrize("path", NEEDS_ROOT, ids=" ".join)
def test_a_command_that_needs_root_refuses_a_user_by_its_name(not_root, path):
    result = invoke(*path, *NEEDS_ROOT[path])
    assert result.exit_code == 2
    assert result.stderr == (
        f"natlab: error: natlab {' '.join(path)} needs root: it creates and enters network "
        "namespaces\n  fix: run it as root, e.g. with sudo\n"
    )


def test_the_command_is_named_as_natlab_however_natlab_was_started(not_root):
    result = invoke("nat", "flush", "branch1", prog_name="python -m natlab")
    assert "natlab: error: natlab nat flush needs root" in result.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["run", "nope.yaml"], "nope.yaml: no such scenario file"),
        (["run", "same-lan", "--junit", "/nonexistent/r.xml"], "--junit: cannot write"),
        (["matrix", "--types", "cone"], "--types: unknown NAT type 'cone'"),
        (["matrix", "--html", "/nonexistent/m.html"], "--html: cannot write"),
        (["demo", "nope"], "no demo named 'nope'"),
        (["demo", "--json", "hairpin"], "--json lists the demos; it cannot run one"),
        (["clock", "advance", "1x"], "DURATION: '1x' is not a duration"),
        (["clock", "advance", "a", "b", "c"], "give at most a lab name and a duration"),
    ],
)
def test_a_mistake_in_the_input_is_reported_before_root_is_asked_for(not_root, args, says):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"natlab: error: {says}")


@pytest.mark.parametrize(
    "args",
    [
        ["validate", str(MAIN_BRANCH)],
        ["demo"],
        ["demo", "--list"],
        ["demo", "--list", "hairpin"],
        ["demo", "--json"],
        ["topologies"],
        ["scenarios", "--json"],
        ["schema", "topology"],
    ],
)
def test_what_builds_nothing_runs_for_anyone(not_root, args):
    result = invoke(*args)
    assert (result.exit_code, result.stderr) == (0, "")
