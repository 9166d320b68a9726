"""JSON and JUnit reports, read back as CI would read them; the matrix's pairs as scenarios."""

import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from natlab.core.events import DropReason
from natlab.errors import NatlabError
from natlab.records import CallReport
from natlab.render import demo_failure, matrix_table, scenario_table, step_line
from natlab.scenario.expectations import TYPES, Check
from natlab.scenario.explain import DropGroup
from natlab.scenario.matrix import (
    CALL_SECONDS,
    MatrixResult,
    PairResult,
    check_types,
    pair_scenario,
)
from natlab.scenario.model import Call, WaitRegistered, load_scenario
from natlab.scenario.reports import write_junit
from natlab.scenario.runner import ScenarioResult, StepResult

DROP = DropGroup(
    "branch2",
    DropReason.FILTERED_ADDRESS,
    "inbound",
    "udp",
    "203.0.113.2:40000",
    "203.0.113.3:50001",
    "mapping 10.2.0.2:5000 -> 203.0.113.3:50001 has not sent to 203.0.113.2",
    7,
)


def scenario_result() -> ScenarioResult:
    registered = StepResult(
        0,
        "wait until phone-b, phone-c registered",
        4,
        [Check("phone-b registration", "registered within 10 s", "registered", True)],
        seconds=0.1,
    )
    call = StepResult(
        1,
        "call phone-b -> phone-c, 1 s (ice)",
        5,
        [Check("media", "two-way", "no media", False)],
        explanation=["selected pair: none selected", DROP.describe()],
        call_report=CallReport("c1", "phone-b", "phone-c", "ice", "caller"),
        drops=[DROP],
        seconds=3.2,
    )
    broken = StepResult(2, "call phone-c -> phone-b, 1 s (ice)", 7, error="phone-c: no answer")
    return ScenarioResult(
        "pr-vs-sym", "s.yaml", "pr-vs-sym-abc123", [registered, call, broken], seconds=4.5
    )


def test_scenario_json_has_every_step_check_and_drop(tmp_path):
    result = scenario_result()
    data = json.loads(json.dumps(result.as_json()))
    assert data["passed"] is False
    assert [s["passed"] for s in data["steps"]] == [True, False, False]
    assert data["steps"][1]["checks"] == [
        {"what": "media", "expected": "two-way", "observed": "no media", "ok": False}
    ]
    assert data["steps"][1]["drops"][0]["reason"] == "filtered-address"
    assert data["steps"][1]["drops"][0]["count"] == 7
    assert data["steps"][2]["error"] == "phone-c: no answer"


def test_scenario_junit_fails_the_call_with_the_drops_and_errors_the_broken_step(tmp_path):
    write_junit(tmp_path / "r.xml", scenario_result())
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("name") == "natlab run pr-vs-sym"
    assert float(suite.get("time")) == 4.5  # the whole run, not only the steps' sum
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    ok, failed, broken = suite.findall("testcase")
    assert ok.find("failure") is None and ok.find("error") is None
    failure = failed.find("failure")
    assert failure.get("message") == "media: expected two-way, observed no media"
    assert "branch2 dropped 7 udp packets" in failure.text
    assert broken.find("error").get("message") == "phone-c: no answer"


def test_a_lab_that_did_not_come_up_is_an_error(tmp_path):
    result = ScenarioResult("x", "x.yaml", "x-1", error="the lab did not come up: not root")
    write_junit(tmp_path / "r.xml", result)
    case = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase")
    assert case.find("error").get("message") == "the lab did not come up: not root"


def matrix_result() -> MatrixResult:
    pairs = []
    for a in ("full-cone", "symmetric"):
        for b in ("full-cone", "symmetric"):
            expected = "no media" if a == b == "symmetric" else "two-way"
            observed = "no media" if "symmetric" in (a, b) else "two-way"  # one pair wrong
            steps = [] if observed == expected else scenario_result().steps[:2]
            result = ScenarioResult(f"{a}-x-{b}", "matrix", "mx", steps, seconds=2.0)
            pairs.append(PairResult(a, b, expected, observed, result))
    return MatrixResult(("full-cone", "symmetric"), False, 2, pairs, 9.5)


def test_matrix_reports_name_each_pair_and_explain_the_mismatches(tmp_path):
    result = matrix_result()
    assert [p.passed for p in result.pairs] == [True, False, False, True]
    data = json.loads(json.dumps(result.as_json()))
    assert data["passed"] is False
    wrong = data["pairs"][1]
    assert (wrong["caller"]["type"], wrong["callee"]["type"]) == ("full-cone", "symmetric")
    assert (wrong["expected"], wrong["observed"]) == ("two-way", "no media")
    assert "media: no media" in wrong["explanation"]
    assert DROP.describe() in wrong["explanation"]

    write_junit(tmp_path / "m.xml", result)
    suite = ET.parse(tmp_path / "m.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == [
        "full-cone x full-cone",
        "full-cone x symmetric",
        "symmetric x full-cone",
        "symmetric x symmetric",
    ]
    failure = suite.findall("testcase")[1].find("failure")
    assert failure.get("message") == "expected two-way, observed no media"
    assert DROP.describe() in failure.text


def text_of(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_tables_for_people():
    matrix = text_of(matrix_table(matrix_result()))
    assert "4 pairs, 2 not as expected" in matrix
    assert "(expected two-way)" in matrix
    scenario = text_of(scenario_table(scenario_result()))
    assert "FAILED" in scenario
    assert "phone-c: no answer" in scenario
    line = Console(width=200, record=True)
    line.print(step_line(scenario_result().steps[1]))
    assert "media: expected two-way, observed no media" in line.export_text()


def test_a_failed_demo_ends_naming_the_steps_that_went_otherwise():
    """The last lines of a long lesson are what a log's tail keeps: they say which step."""
    told = demo_failure(load_scenario("cgnat"), scenario_result())
    assert told.splitlines()[-2:] == [
        "  step 2 failed: call phone-b -> phone-c, 1 s (ice)",
        "  step 3 error: call phone-c -> phone-b, 1 s (ice)",
    ]
    assert "demo cgnat: the lab did not do what this lesson expects" in told


def test_each_pair_is_a_scenario_with_the_tables_verdict():
    scenario = pair_scenario("port-restricted", "symmetric")
    routers = scenario.topology.routers
    assert routers["branch1"].behaviour.preset_name() == "port-restricted"
    assert routers["branch2"].behaviour.preset_name() == "symmetric"
    assert scenario.steps == (
        WaitRegistered(("phone-b", "phone-c")),
        Call("phone-b", "phone-c", CALL_SECONDS, "ice", "none"),
    )
    public = pair_scenario("public", "full-cone")
    assert not public.topology.routers["branch1"].behaviour.translate
    relayed = pair_scenario("symmetric", "symmetric", relay=True)
    assert relayed.steps[1] == Call("phone-b", "phone-c", CALL_SECONDS, "relay", "two-way")


def test_matrix_types_are_checked():
    assert check_types(["symmetric", "full-cone", "symmetric"]) == ("symmetric", "full-cone")
    with pytest.raises(NatlabError) as caught:
        check_types(["full-cone", "cone"])
    assert caught.value.problem == "unknown NAT type 'cone'"
    assert caught.value.fix == f"use some of: {', '.join(TYPES)}"
