"""Matrix files, --expect files and the expected table of a matrix of programs (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.scenario.expectations import TYPES
from natlab.scenario.matrix_file import load_expect, load_matrix_file
from natlab.scenario.program_matrix import ProgramMatrix, outcome_matches
from natlab.topology import load_topology

EXAMPLE = Path(__file__).parents[3] / "examples" / "ice-agent"
FAILS = {("symmetric", "port-restricted"), ("port-restricted", "symmetric"), ("symmetric",) * 2}


def test_the_examples_matrix_file_reads_as_its_plan():
    plan = load_matrix_file(str(EXAMPLE / "matrix.yaml"))
    assert plan.topology.name == "ice-turn"
    assert (plan.routers, plan.nodes) == (("nat-a", "nat-b"), ("alice", "bob"))
    assert plan.run_a == plan.run_b == (".venv/bin/python", "examples/ice-agent/agent.py")
    assert (plan.types, plan.timeout, plan.expect) == (TYPES, 20, {})


def test_with_turn_the_failing_pairs_are_expected_relayed_else_failed():
    with_turn = load_matrix_file(str(EXAMPLE / "matrix.yaml"))
    without = ProgramMatrix(
        load_topology("main-branch"), ("branch1", "branch2"), ("phone-b", "phone-c"), ("x",), ("x",)
    )
    for a in TYPES:
        for b in TYPES:
            fails = (a, b) in FAILS
            assert with_turn.expected(a, b) == ("relayed" if fails else "direct")
            assert without.expected(a, b) == ("failed" if fails else "direct")


def test_an_override_wins_over_the_table(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        f"topology: {EXAMPLE / 'turn-lab.yaml'}\nrouters: [nat-a, nat-b]\nnodes: [alice, bob]\n"
        "run-a: ./client --call\nrun-b: [./client, --answer]\ntypes: [symmetric, public]\n"
        "expect:\n  symmetric x symmetric: failed\n  public x public: connected\n"
    )
    plan = load_matrix_file(str(path))
    assert plan.run_a == ("./client", "--call") and plan.run_b == ("./client", "--answer")
    assert plan.expected("symmetric", "symmetric") == "failed"
    assert plan.expected("public", "public") == "connected"
    assert plan.expected("public", "symmetric") == "direct"


@pytest.mark.parametrize(
    ("expected", "observed", "holds"),
    [
        ("direct", "direct", True),
        ("direct", "relayed", False),
        ("connected", "relayed", True),
        ("connected", "direct", True),
        ("connected", "failed", False),
        ("failed", "failed", True),
        ("relayed", "connected", False),  # connected by a path natlab did not see
    ],
)
def test_what_an_expectation_accepts(expected, observed, holds):
    assert outcome_matches(expected, observed) is holds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routers: [branch1]\nrun: x\n", "routers"),
        ("run: x\nnodes: [phone-b, phone-z]\n", "no node named 'phone-z'"),
        ("run: x\nnodes: [phone-c, phone-b]\n", "not on a LAN of router 'branch1'"),
        ("nodes: [phone-b, phone-c]\n", "no program to run"),
        ("run-a: x\n", "no program to run on side b"),
        ("run: x\ntypes: [cone]\n", "unknown NAT type 'cone'"),
        ("run: x\ntimeout: 0\n", "timeout"),
        ("run: x\nfoo: 1\n", "unknown field 'foo'"),
        ("run: 'a \"b'\n", "close its quotes"),
        ("run: x\nexpect: {symmetric x cone: failed}\n", "is not a cell"),
        ("run: x\nexpect: {symmetric x symmetric: works}\n", "'works' is not an outcome"),
        ("- a list\n", "a matrix file is a YAML mapping"),
        ("run: x\ntopology: nowhere\n", "no such topology file"),
    ],
)
def test_mistakes_name_the_file_and_what_to_fix(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(NatlabError, match=message) as caught:
        load_matrix_file(str(path))
    assert str(path) in str(caught.value) or "nowhere" in str(caught.value)
    assert caught.value.fix


def test_an_expect_file_is_the_mapping_or_a_matrix_files_expect(tmp_path):
    plain, nested = tmp_path / "e.yaml", tmp_path / "m.yaml"
    plain.write_text("symmetric x symmetric: relayed\n")
    nested.write_text("run: x\nexpect:\n  full-cone x public: failed\n")
    assert load_expect(str(plain)) == {("symmetric", "symmetric"): "relayed"}
    assert load_expect(str(nested)) == {("full-cone", "public"): "failed"}


def test_a_bad_expect_file_names_its_line(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("symmetric x symmetric: relayed\nsymmetric x nat: failed\n")
    with pytest.raises(NatlabError) as caught:
        load_expect(str(path))
    assert f"{path}:2" in str(caught.value) and "'symmetric x nat' is not a cell" in str(
        caught.value
    )
