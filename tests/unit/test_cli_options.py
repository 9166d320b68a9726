"""One CLI: --lab everywhere (and $NATLAB_LAB), --json to stdout with a schema, uncut tables,
NO_COLOR, and help that reads whole. In-process with CliRunner; nothing here needs root.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.table import Table

from natlab.cli import cli
from natlab.json_documents import SCHEMA_KEY
from natlab.render import print_table
from natlab.scenario.demos import DEMOS

from .test_exit_codes import MAIN_BRANCH, fake_labs  # noqa: F401 (a fixture)

LAB_COMMANDS = [
    ("down",),
    ("status",),
    ("exec",),
    ("probe",),
    ("verify",),
    ("nat", "show"),
    ("nat", "events"),
    ("nat", "flush"),
    ("nat", "set"),
    ("clock", "advance"),
]


def invoke(*args: str, **kwargs: object):
    return CliRunner().invoke(cli, list(args), prog_name="natlab", **kwargs)


def command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for name in path:
        found = found.commands[name]  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize("path", LAB_COMMANDS, ids=" ".join)
def test_every_lab_command_takes_lab_or_natlab_lab(path):
    [option] = [p for p in command(path).params if "--lab" in getattr(p, "opts", ())]
    assert option.envvar == "NATLAB_LAB"


def exec_params(*args: str) -> dict:
    exec_command = command(("exec",))
    return exec_command.make_context("exec", list(args)).params


def test_exec_reads_its_options_after_node_up_to_the_dashes():
    params = exec_params("phone-b", "--lab", "x", "--", "true")
    assert params == {"node": "phone-b", "lab": "x", "command": ("true",)}


def test_exec_reads_its_options_before_node_too():
    assert exec_params("--lab=x", "phone-b", "--", "ls", "-l")["command"] == ("ls", "-l")
    assert exec_params("--lab", "x", "phone-b")["command"] == ()


def test_exec_leaves_the_commands_own_options_and_dashes_alone():
    params = exec_params("phone-b", "grep", "--lab", "-h", "--", "x")
    assert params == {"node": "phone-b", "lab": None, "command": ("grep", "--lab", "-h", "--", "x")}
    assert exec_params("phone-b", "--", "--", "x")["command"] == ("--", "x")


def test_exec_takes_the_lab_from_natlab_lab(monkeypatch):
    monkeypatch.setenv("NATLAB_LAB", "from-env")
    assert exec_params("phone-b", "--", "true")["lab"] == "from-env"
    assert exec_params("phone-b", "--lab", "given", "--", "true")["lab"] == "given"


def test_an_unknown_option_before_the_command_is_a_usage_error():
    result = invoke("exec", "phone-b", "--nope", "--", "true")
    assert result.exit_code == 2
    assert "No such option '--nope'" in result.stderr


@pytest.mark.parametrize(
    "args, env, attached",
    [
        (["status", "--lab", "a"], {}, ["a"]),
        (["status", "a"], {}, ["a"]),  # the older positional form
        (["status"], {"NATLAB_LAB": "e"}, ["e"]),
        (["status", "a"], {"NATLAB_LAB": "e"}, ["a"]),  # what is typed wins
        (["status", "a", "--lab", "a"], {}, ["a"]),
    ],
)
def test_status_attaches_the_lab_named_any_way(fake_labs, args, env, attached):  # noqa: F811
    result = invoke(*args, env=env)
    assert result.exit_code == 1  # the fake lab has a problem
    assert fake_labs == attached


def test_two_different_labs_named_are_a_user_error(fake_labs):  # noqa: F811
    result = invoke("status", "a", "--lab", "b")
    assert result.exit_code == 2
    assert "two labs named: 'a' and --lab b" in result.stderr


def test_down_all_is_not_stopped_by_natlab_lab_but_is_by_a_lab_named(monkeypatch):
    import natlab.lab

    monkeypatch.setattr(natlab.lab, "down_all", lambda: ([], []))
    assert invoke("down", "--all", env={"NATLAB_LAB": "e"}).stdout == "no lab was up\n"
    named = invoke("down", "--all", "--lab", "e")
    assert named.exit_code == 2
    assert "give a lab name or --all, not both" in named.stderr


def document(result) -> dict:
    """The one JSON document a --json run printed to stdout."""
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_validate_json_is_the_plan_with_its_schema():
    data = document(invoke("validate", "--json", str(MAIN_BRANCH)))
    assert data[SCHEMA_KEY] == "natlab/validate/1"
    [plan] = data["topologies"]
    assert plan["name"] == "main-branch"
    nodes = {node["name"]: node for node in plan["nodes"]}
    assert nodes["main"]["kind"] == "router"
    assert nodes["main"]["interfaces"][0]["addresses"] == ["203.0.113.1/24"]
    assert {"destination": "default", "via": "10.0.0.1"} in nodes["pbx"]["routes"]


def test_status_json_has_its_schema_first(fake_labs):  # noqa: F811
    data = document(invoke("status", "--json"))
    assert next(iter(data)) == SCHEMA_KEY
    assert data[SCHEMA_KEY] == "natlab/status/1"
    assert data["labs"] == [
        {**data["labs"][0], "problems": ["node phone-a: namespace natlab-x-phone-a is missing"]}
    ]


def test_demo_json_lists_every_demo():
    data = document(invoke("demo", "--json"))
    assert data[SCHEMA_KEY] == "natlab/demos/1"
    assert [demo["name"] for demo in data["demos"]] == list(DEMOS)
    assert all(demo["about"] for demo in data["demos"])


@pytest.mark.parametrize("command_name", ["run", "matrix"])
def test_json_on_run_and_matrix_no_longer_names_a_file(command_name, tmp_path):
    """`--json FILE` was a file (and `--json -` wrote one called '-'); now FILE is extra."""
    args = ["x.yaml"] if command_name == "run" else []
    result = invoke(command_name, *args, "--json", "-", catch_exceptions=False)
    assert result.exit_code == 2
    assert "unexpected extra argument (-)" in result.stderr
    assert not Path("-").exists()


def test_tables_are_not_cut_when_piped(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table()
    for column in ("node", "kind", "namespace", "interface", "addresses"):
        table.add_column(column)
    wide = ("phone-behind-branch1", "router (port-restricted)", "natlab-a-long-lab-name-phone")
    table.add_row(*wide, "branch1-lan", "10.1.0.2/24 10.1.0.3/24")
    print_table(table)
    out = capsys.readouterr().out
    assert "…" not in out
    assert any(all(cell in line for cell in wide) for line in out.splitlines())


def test_colums_still_sets_the_width(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "40")
    table = Table()
    table.add_column("words")
    table.add_row("port-restricted " * 5)
    print_table(table)
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 40


@pytest.mark.parametrize("no_color, coloured", [("1", False), ("", True)])
def test_error_lines_honour_no_color(tmp_path, no_color, coloured):
    result = CliRunner().invoke(
        cli, ["validate", str(tmp_path / "x.yaml")], env={"NO_COLOR": no_color}, color=True
    )
    assert result.exit_code == 2
    assert ("\x1b[" in result.stderr) is coloured


def every_command(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, sub in group.commands.items():  # type: ignore[attr-defined]
        yield (*path, name)
        if isinstance(sub, click.Group):
            yield from every_command(sub, (*path, name))


@pytest.mark.parametrize("path", [(), *every_command()], ids=lambda p: " ".join(p) or "natlab")
def test_every_help_prints(path):
    result = invoke(*path, "--help", terminal_width=80)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"Usage: natlab {' '.join(path)}".rstrip())


GROUPS = [(), *(path for path in every_command() if isinstance(command(path), click.Group))]


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "natlab")
def test_help_reads_whole(path):
    """No summary cut off: not with '...', nor mid-sentence at 'e.g.' as `clock --help` was."""
    result = invoke(*path, "--help", terminal_width=80)
    assert result.exit_code == 0
    listing = result.stdout.partition("\nCommands:\n")[2].partition("\n\n")[0]
    summaries = [line.split(maxsplit=1)[1] for line in listing.splitlines()]
    assert not [text for text in summaries if text.endswith("...")]
    assert not [text for text in summaries if text.count("(") != text.count(")")]


def test_jobs_help_says_what_the_default_is(monkeypatch):
    from natlab.scenario import matrix

    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert matrix.default_jobs() == 2
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert matrix.default_jobs() == 8
    help_text = " ".join(invoke("matrix", "--help").stdout.split())
    assert "Labs at a time (default: the number of CPUs, at least 2)" in help_text
