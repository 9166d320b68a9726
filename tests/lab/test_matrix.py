"""`natlab matrix` in real labs run side by side: the full matrix, and subsets of it.

Each pair runs in a lab of its own; the JSON report names every lab, and
each test checks that none of them is left behind.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from natlab.lab.naming import lab_dir
from natlab.scenario import matrix

pytestmark = pytest.mark.natlab


def assert_gone(kernel, labs: list[str]) -> None:
    for lab in labs:
        assert not kernel.lab_namespaces(lab), f"lab {lab} left namespaces"
        assert not lab_dir(lab).exists(), f"lab {lab} left its state"


def test_full_cone_and_symmetric_pairs_are_as_design_md_says(natlab, kernel, tmp_path):
    report, junit = tmp_path / "m.json", tmp_path / "m.xml"
    run = natlab.run(
        "matrix",
        "--types",
        "full-cone,symmetric",
        "--json-file",
        str(report),
        "--junit",
        str(junit),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(report.read_text())
    assert data["schema"] == "natlab/matrix/1"
    assert_gone(kernel, [pair["scenario"]["lab"] for pair in data["pairs"]])
    seen = {(p["caller"]["type"], p["callee"]["type"]): p["observed"] for p in data["pairs"]}
    assert seen == {
        ("full-cone", "full-cone"): "two-way",
        ("full-cone", "symmetric"): "two-way",
        ("symmetric", "full-cone"): "two-way",
        ("symmetric", "symmetric"): "no media",
    }
    # A verdict is counted from RTP really received, both ways.
    for pair in data["pairs"]:
        call = pair["scenario"]["steps"][1]["report"]
        received = (call["rtp"]["received"], call["peer_rtp"]["received"])
        assert all(n >= 25 for n in received) == (pair["observed"] == "two-way"), call
    # Symmetric against symmetric: the explanation says where the checks were dropped.
    (failing,) = [p for p in data["pairs"] if p["observed"] == "no media"]
    assert any(line.startswith("branch") and " dropped " in line for line in failing["explanation"])
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")


# docs/design.md, "The reference expectation: the NAT matrix", written out pair by pair: only
# symmetric against port-restricted or symmetric fails; the rest (public included) is two-way.
FAILS = {
    ("symmetric", "port-restricted"),
    ("port-restricted", "symmetric"),
    ("symmetric", "symmetric"),
}
TYPES = ("full-cone", "restricted", "port-restricted", "symmetric", "public")


def test_the_full_matrix_is_design_mds_table_pair_by_pair(natlab, kernel, tmp_path):
    """What CI runs: `natlab matrix` with every type, all 25 pairs, each observed as expected."""
    report, junit = tmp_path / "m.json", tmp_path / "m.xml"
    run = natlab.run("matrix", "--json-file", str(report), "--junit", str(junit))
    data = json.loads(report.read_text())
    assert_gone(kernel, [pair["scenario"]["lab"] for pair in data["pairs"]])
    pairs = {(p["caller"]["type"], p["callee"]["type"]): p for p in data["pairs"]}
    assert set(pairs) == {(a, b) for a in TYPES for b in TYPES}
    table = {pair: "no media" if pair in FAILS else "two-way" for pair in pairs}
    assert {pair: p["expected"] for pair, p in pairs.items()} == table
    wrong = {
        pair: (p["observed"], p["explanation"])
        for pair, p in pairs.items()
        if p["observed"] != table[pair]
    }
    assert not wrong, wrong
    assert run.returncode == 0, run.stdout + run.stderr
    assert data["passed"] and not data["relay"]
    for pair in data["pairs"]:  # each verdict counted from RTP really received, both ways
        call = pair["scenario"]["steps"][1]["report"]
        received = (call["rtp"]["received"], call["peer_rtp"]["received"])
        assert all(n >= 25 for n in received) == (pair["observed"] == "two-way"), call
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("25", "0", "0")


def test_the_relay_makes_symmetric_against_symmetric_work(natlab, kernel):
    """With --json, stdout holds the results alone; the table goes to stderr."""
    run = natlab.run("matrix", "--types", "symmetric", "--relay", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(run.stdout)
    assert data["schema"] == "natlab/matrix/1"
    assert "NAT matrix" in run.stderr
    (pair,) = data["pairs"]
    assert_gone(kernel, [pair["scenario"]["lab"]])
    assert (pair["expected"], pair["observed"]) == ("two-way", "two-way")
    assert pair["scenario"]["steps"][1]["report"]["mode"] == "relay"


def test_a_pair_not_as_expected_fails_the_matrix_with_its_explanation(kernel, monkeypatch):
    """If docs/design.md promised symmetric x symmetric works, the matrix must fail, saying why."""
    monkeypatch.setattr(matrix, "expected_media", lambda a, b, relay=False: "two-way")
    result = matrix.run_matrix(["symmetric"], jobs=1)
    (pair,) = result.pairs
    assert_gone(kernel, [pair.result.lab])
    assert not result.passed
    assert (pair.expected, pair.observed) == ("two-way", "no media")
    assert "media: no media" in pair.explanation
    assert any(" dropped " in line and "filtered-" in line for line in pair.explanation)
