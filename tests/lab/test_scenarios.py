"""Scenarios in real labs: every file in scenarios/ holds, and a wrong expectation says why.

A scenario makes its own lab (a unique name, always taken down); each test
also checks that nothing of that lab is left behind.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from natlab.lab.naming import lab_dir
from natlab.render import scenario_table
from natlab.scenario.model import load_scenario
from natlab.scenario.runner import ScenarioResult, run_scenario

pytestmark = pytest.mark.natlab

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

# port-restricted (branch1) against symmetric (branch2): docs/design.md says no media.
WRONG = """\
name: wrong-expectation
topology: main-branch.yaml
nat: {branch1: port-restricted, branch2: symmetric}
steps:
  - wait-registered: [phone-b, phone-c]
  - call: {from: phone-b, to: phone-c, seconds: 1}
    expect: {media: two-way}
"""


def assert_gone(kernel, lab: str) -> None:
    assert not kernel.lab_namespaces(lab), f"lab {lab} left namespaces"
    assert not lab_dir(lab).exists(), f"lab {lab} left its state"


def why(result: ScenarioResult) -> str:
    console = Console(width=160, record=True)
    console.print(scenario_table(result))
    for step in result.steps:
        console.print(f"step {step.index + 1}:", *step.explanation, sep="\n  ")
    return console.export_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_holds(path, kernel):
    result = run_scenario(load_scenario(path))
    assert result.passed, why(result)
    assert len(result.steps) == len(load_scenario(path).steps)
    assert_gone(kernel, result.lab)


def test_a_wrong_expectation_exits_1_naming_the_dropped_packets(natlab, kernel, tmp_path):
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(WRONG)
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    run = natlab.run("run", str(scenario), "--json-file", str(report), "--junit", str(junit))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "media: expected two-way, observed no media" in run.stdout

    data = json.loads(report.read_text())
    assert data["schema"] == "natlab/run/1"
    assert_gone(kernel, data["lab"])
    call = data["steps"][1]
    assert call["report"]["verdict"] == "no media"
    failed = [c for c in call["report"]["checks"] if c["state"] != "succeeded"]
    assert failed, "ICE must have tried pairs"
    # The packets named are the ICE checks that failed: each check toward phone-c's
    # server-reflexive address was dropped by branch2, whose symmetric filter only lets in
    # what phone-c itself sent to.
    to_srflx = {c["remote"] for c in failed if c["remote_type"] == "srflx"}
    dropped = [d for d in call["drops"] if d["router"] == "branch2" and d["dst"] in to_srflx]
    assert dropped, call["drops"]
    assert all(d["reason"].startswith("filtered-") for d in dropped)
    for drop in dropped:
        line = f"branch2 dropped {drop['count']} udp packet"
        assert any(
            text.startswith(line) and f"{drop['src']} -> {drop['dst']}" in text
            for text in call["explanation"]
        )
        # ...and the command printed it, with the mapping that was missing the permission.
        printed = rf"branch2 dropped \d+ udp packets? {re.escape(drop['src'])} -> "
        printed += rf"{re.escape(drop['dst'])} \(inbound, {drop['reason']}\): mapping "
        assert re.search(printed, run.stdout), run.stdout

    case = ET.parse(junit).getroot().findall("testsuite/testcase")[1]
    assert "branch2 dropped" in case.find("failure").text
