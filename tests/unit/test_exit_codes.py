"""natlab's exit codes: 0 as expected, 1 an expectation failed, 2 the user's input, 3 a bug.

Run in-process with click's CliRunner, so that a failure can be planted with
monkeypatch where natlab would call into its layers; nothing here needs root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import natlab.lab
import natlab.topology
from natlab import cli as cli_module
from natlab.cli import cli

MAIN_BRANCH = Path(__file__).resolve().parents[2] / "topologies" / "main-branch.yaml"


def invoke(*args: str, **kwargs: object):
    return CliRunner().invoke(cli, list(args), prog_name="natlab", **kwargs)


def broken_status(name: str) -> dict:
    """What Lab.status says of a lab whose phone's namespace has gone."""
    return {
        "name": name,
        "topology": "t.yaml",
        "state": "up",
        "nodes": [],
        "problems": ["node phone-a: namespace natlab-x-phone-a is missing"],
    }


class FakeLab:
    def __init__(self, name: str) -> None:
        self.name = name

    def status(self) -> dict:
        return broken_status(self.name)


@pytest.fixture
def fake_labs(monkeypatch):
    """`status` against a lab with a problem, without root or a lab; the names it attached."""
    attached: list[str | None] = []

    def attach(name=None):
        attached.append(name)
        return FakeLab(name or "only")

    monkeypatch.setattr(natlab.lab, "require_root", lambda action: None)
    monkeypatch.setattr(natlab.lab, "running_labs", lambda: ["only"])
    monkeypatch.setattr(natlab.lab.Lab, "attach", staticmethod(attach))
    return attached


def test_0_when_everything_is_as_expected():
    result = invoke("validate", str(MAIN_BRANCH))
    assert result.exit_code == 0, result.output
    assert "topology 'main-branch' is valid" in result.stdout


def test_1_when_an_expectation_fails(fake_labs):
    result = invoke("status")
    assert result.exit_code == 1
    assert "problem: node phone-a: namespace natlab-x-phone-a is missing" in result.stdout
    assert result.stderr == ""


def test_2_for_a_mistake_in_the_input(tmp_path):
    result = invoke("validate", str(tmp_path / "nowhere.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"natlab: error: {tmp_path / 'nowhere.yaml'}: no such")
    assert "Traceback" not in result.output


def test_2_for_a_usage_error():
    result = invoke("status", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_3_when_natlab_itself_fails_with_the_traceback_in_a_file(monkeypatch, tmp_path):
    def crash(path):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(natlab.topology, "load_topology", crash)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = invoke("validate", str(MAIN_BRANCH))
    assert result.exit_code == 3
    [saved] = tmp_path.glob("natlab-internal-error-*.txt")
    assert result.stderr == (
        f"natlab: internal error: RuntimeError('planted bug'); details in {saved}\n"
    )
    details = saved.read_text()
    assert "Traceback (most recent call last)" in details
    assert 'raise RuntimeError("planted bug")' in details


def test_130_when_interrupted(monkeypatch):
    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(natlab.topology, "load_topology", interrupted)
    result = invoke("validate", str(MAIN_BRANCH))
    assert result.exit_code == 130
    assert result.stderr == "natlab: interrupted\n"


def test_the_entry_point_exits_with_the_code_the_command_chose(monkeypatch, tmp_path):
    """main() runs click without its standalone mode: the code must still reach sys.exit."""

    def crash(path):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(natlab.topology, "load_topology", crash)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["natlab", "validate", str(MAIN_BRANCH)])
    monkeypatch.setattr("signal.signal", lambda signum, handler: None)  # pytest keeps its own
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    assert exited.value.code == 3


def test_the_exit_codes_are_in_the_help():
    result = invoke("--help")
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())
    for line in (
        "0 everything as expected",
        "1 an expectation failed",
        "2 the input or the environment is wrong",
        "3 natlab itself failed",
        "130 interrupted",
    ):
        assert line in help_text
