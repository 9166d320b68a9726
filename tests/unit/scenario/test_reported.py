"""run_reported and matrix_reported: what `natlab run` and `natlab matrix` write besides
what they print. The lab is a stand-in (run_traced, run_matrix); where the trace goes and
which files are written, with what, is the real thing. No root.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.scenario import reports
from natlab.scenario.expectations import Check
from natlab.scenario.html import matrix_html, page, run_html
from natlab.scenario.model import load_scenario
from natlab.scenario.reports import ReportFiles, matrix_reported, run_reported
from natlab.scenario.runner import ScenarioResult, StepResult
from natlab.scenario.trace import write_trace

from .test_html import TRACE
from .test_reports import matrix_result


@pytest.fixture
def runs(monkeypatch):
    """run_traced as a lab would answer it: a failed call; the trace written where asked."""
    calls: list[dict] = []

    def run_traced(scenario, lab_name, trace, keep_failed, progress, pcap):
        calls.append({"trace": trace, "keep_failed": keep_failed, "pcap": pcap})
        step = StepResult(0, "call phone-b -> phone-a", 3)
        step.checks = [Check("media", "two-way", "no media", False)]
        result = ScenarioResult(scenario.name, scenario.source, lab_name, [step], seconds=3.0)
        if trace is not None:
            result.trace = str(write_trace(trace, TRACE))
        return result

    monkeypatch.setattr(reports, "run_traced", run_traced)
    return calls


SCENARIO = load_scenario("same-lan")


def test_without_a_trace_a_failed_run_keeps_its_own_in_natlab_traces(runs):
    run_reported(SCENARIO, ReportFiles())
    assert runs == [
        {"trace": None, "keep_failed": Path("natlab-traces/same-lan.jsonl"), "pcap": None}
    ]


def test_a_trace_asked_for_is_where_the_trace_goes_and_nothing_else_is_kept(runs, tmp_path):
    result = run_reported(SCENARIO, ReportFiles(), tmp_path / "t.jsonl", tmp_path / "pcap")
    assert runs == [{"trace": tmp_path / "t.jsonl", "keep_failed": None, "pcap": tmp_path / "pcap"}]
    assert result.trace == str(tmp_path / "t.jsonl")


def test_the_html_report_of_a_run_without_a_trace_reads_a_scratch_one(runs, tmp_path):
    result = run_reported(SCENARIO, ReportFiles(html=str(tmp_path / "r.html")))
    [call] = runs
    assert call["trace"] is not None and not call["trace"].exists()  # the scratch one is gone
    assert call["keep_failed"] == Path("natlab-traces/same-lan.jsonl")  # still kept as it failed
    html = (tmp_path / "r.html").read_text()
    assert html == page("natlab run same-lan", run_html(result, TRACE))


def test_the_json_and_junit_files_of_a_run(runs, tmp_path):
    files = ReportFiles(json=str(tmp_path / "r.json"), junit=str(tmp_path / "r.xml"))
    result = run_reported(SCENARIO, files)
    document = json.loads((tmp_path / "r.json").read_text())
    assert document == {"schema": "natlab/run/1", **json.loads(json.dumps(result.as_json()))}
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert (suite.get("name"), suite.get("failures")) == ("natlab run same-lan", "1")


def test_the_matrix_writes_every_file_asked_for(monkeypatch, tmp_path):
    result = matrix_result()
    asked = []

    def run_matrix(*args):
        asked.append(args)
        return result

    monkeypatch.setattr(reports, "run_matrix", run_matrix)
    files = ReportFiles(*(str(tmp_path / name) for name in ("m.json", "m.xml", "m.html")))
    assert matrix_reported(("symmetric",), True, 3, files, tmp_path / "traces") is result
    assert asked == [(("symmetric",), True, 3, None, tmp_path / "traces", None, None, None)]
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["schema"] == "natlab/matrix/1"
    assert document["pairs"] == json.loads(json.dumps(result.as_json()))["pairs"]
    assert ET.parse(tmp_path / "m.xml").getroot().find("testsuite") is not None
    assert (tmp_path / "m.html").read_text() == page("natlab matrix", matrix_html(result))


def test_report_paths_are_refused_before_the_run_each_named_by_its_option(tmp_path):
    with pytest.raises(NatlabError, match="--junit: cannot write"):
        ReportFiles(json=str(tmp_path / "ok.json"), junit=str(tmp_path / "no" / "r.xml")).check()
    assert not (tmp_path / "ok.json").exists()
