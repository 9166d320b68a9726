"""Shell completion: lab names from the state root, node and router names of the lab named
(or the only lab up), demo names. Driven through click's bash protocol, as a shell asks."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from natlab.cli import cli
from natlab.lab.ledger import Ledger
from natlab.lab.processes import ProcessRecord

from .test_exit_codes import MAIN_BRANCH

TWO_NODES = """\
name: tiny
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.9.0.0/24}
routers:
  edge: {wan: {segment: internet}, lan: {segment: lan}}
hosts:
  laptop: {segment: lan}
"""


@pytest.fixture
def state_root(tmp_path, monkeypatch):
    """An empty state root of our own: what completion reads instead of /run/natlab."""
    monkeypatch.setenv("NATLAB_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("NATLAB_LAB", raising=False)
    return tmp_path


def record_lab(name: str, topology: str) -> None:
    """A lab as `natlab up` leaves it in the state root: its ledger and its topology's copy."""
    creator = ProcessRecord(os.getpid(), 0, "", "natlab up")
    ledger = Ledger(name, f"{name}.yaml", creator, state="up")
    ledger.save()
    (ledger.directory / "topology.yaml").write_text(topology)


def complete(line: str) -> list[str]:
    """What bash would be offered for the last word of `line` (click's bash_complete)."""
    words = line.split(" ")
    env = {
        "_NATLAB_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    result = CliRunner().invoke(cli, [], prog_name="natlab", env=env)
    assert result.exit_code == 0, result.output
    return [item.split(",", 1)[1] for item in result.stdout.splitlines() if item]


def test_lab_names_come_from_the_state_root(state_root):
    record_lab("alpha", TWO_NODES)
    record_lab("beta", TWO_NODES)
    (state_root / "not-a-lab").mkdir()  # no ledger: not offered
    assert complete("natlab status --lab ") == ["alpha", "beta"]
    assert complete("natlab down b") == ["beta"]
    assert complete("natlab nat show edge --lab a") == ["alpha"]


def test_node_names_are_of_the_only_lab_up(state_root):
    record_lab("alpha", TWO_NODES)
    assert complete("natlab exec ") == ["edge", "laptop"]
    assert complete("natlab probe la") == ["laptop"]


def test_node_names_are_of_the_lab_named_when_several_are_up(state_root, monkeypatch):
    record_lab("alpha", TWO_NODES)
    record_lab("beta", MAIN_BRANCH.read_text())
    assert complete("natlab exec ") == []  # which lab? none is guessed
    assert "phone-b" in complete("natlab exec --lab beta ")
    monkeypatch.setenv("NATLAB_LAB", "alpha")
    assert complete("natlab exec ") == ["edge", "laptop"]


def test_router_names_only_where_a_router_is_asked_for(state_root):
    record_lab("beta", MAIN_BRANCH.read_text())
    assert complete("natlab nat show ") == ["main", "branch1", "branch2"]
    assert complete("natlab nat set b") == ["branch1", "branch2"]


def test_nothing_is_offered_without_a_lab(state_root):
    assert complete("natlab exec ") == []
    assert complete("natlab status --lab ") == []


def test_demo_names():
    assert complete("natlab demo ") == [
        "symmetric-fails",
        "full-cone-fixes",
        "relay",
        "keepalive",
        "hairpin",
        "cgnat",
        "sip-alg",
    ]
    assert complete("natlab demo re") == ["relay"]


def test_a_broken_ledger_offers_nothing_rather_than_a_traceback(state_root):
    (state_root / "broken").mkdir()
    (state_root / "broken" / "ledger.json").write_text("{not json")
    assert complete("natlab exec ") == []
    assert complete("natlab status --lab ") == ["broken"]
