"""The files a run or a matrix writes besides what it prints: its trace, JSON, JUnit, HTML.

run_reported and matrix_reported run and write every file asked for
(ReportFiles), so that `natlab run` and `natlab matrix` only parse, call one
of them and render. A failed run keeps its trace in natlab-traces/ even when
none was asked for (trace.keep_trace); the HTML report of a run needs the
trace, so one is written to a scratch folder when none was asked for.

The JSON is each result's as_json() under its schema name (json_documents.py),
what --json prints. JUnit XML, for CI, is written with junitparser: it has
one testcase per scenario step (`natlab run`) or per pair of NAT types
(`natlab matrix`); a failed expectation is a <failure> whose text is the
explanation, a step that could not run is an <error>, and a fault (a lab
process died: verdict.py) is an <error> of type "fault" that names it. CI
front ends show exactly that text next to the red test, so it carries the
drops.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from natlab.core.impair import LinkImpairment
from natlab.errors import NatlabError
from natlab.json_documents import json_document
from natlab.scenario.html import matrix_html, run_html, write_html
from natlab.scenario.matrix import MatrixResult, PairResult, run_matrix
from natlab.scenario.matrix import Progress as PairProgress
from natlab.scenario.model import Scenario
from natlab.scenario.runner import Progress, ScenarioResult, StepResult
from natlab.scenario.trace import default_trace, read_trace, run_traced
from natlab.scenario.verdict import FAULT, NOT_NAT
from natlab.topology.lab_name import unique_lab_name


@dataclass(frozen=True)
class ReportFiles:
    """Where a run's or a matrix's results go besides the screen; None: not asked for."""

    json: str | None = None
    junit: str | None = None
    html: str | None = None

    def check(self) -> None:
        """Refuse a path before the run (check_writable), each named by its option."""
        for option, path in (
            ("--json-file", self.json),
            ("--junit", self.junit),
            ("--html", self.html),
        ):
            check_writable(path, option)

    def write(self, kind: str, result: ScenarioResult | MatrixResult) -> None:
        """The JSON and JUnit files (the HTML one is the caller's: its content differs)."""
        if self.json:
            document = json_document(kind, result.as_json())
            Path(self.json).write_text(json.dumps(document, indent=2) + "\n")
        if self.junit:
            write_junit(self.junit, result)


def run_reported(
    scenario: Scenario,
    files: ReportFiles,
    trace: Path | None = None,
    pcap: Path | None = None,
    progress: Progress | None = None,
) -> ScenarioResult:
    """Run the scenario in a lab of its own (trace.run_traced) and write every file asked for.

    Its trace goes to `trace`; without one, a failed run keeps its trace in natlab-traces/.
    """
    kept = None if trace else default_trace(scenario.name)  # made unique when written
    with tempfile.TemporaryDirectory(prefix="natlab-run-") as scratch:
        written = trace
        if files.html and written is None:  # the HTML report needs the trace, even of a pass
            written = Path(scratch) / "trace.jsonl"
        result = run_traced(scenario, unique_lab_name(scenario.name), written, kept, progress, pcap)
        if files.html:
            body = run_html(result, read_trace(written))
            write_html(files.html, f"natlab run {scenario.name}", body)
    files.write("run", result)
    return result


def matrix_reported(
    types: Sequence[str],
    relay: bool,
    jobs: int | None,
    files: ReportFiles,
    trace_dir: Path | None = None,
    pcap_dir: Path | None = None,
    progress: PairProgress | None = None,
    shard: tuple[int, int] | None = None,
    impair: dict[str, LinkImpairment] | None = None,
) -> MatrixResult:
    """Run the matrix (matrix.run_matrix) and write every file asked for."""
    result = run_matrix(types, relay, jobs, progress, trace_dir, pcap_dir, shard, impair)
    files.write("matrix", result)
    if files.html:
        write_html(files.html, "natlab matrix", matrix_html(result))
    return result


def check_writable(path: str | Path | None, option: str) -> None:
    """Refuse a report's path before the run it reports on, not after it: open it to write.

    An existing file is opened without being changed; a new one is removed again.
    """
    if path is None:
        return
    try:
        try:
            descriptor, created = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), True
        except FileExistsError:
            descriptor, created = os.open(path, os.O_WRONLY | os.O_APPEND), False
    except OSError as error:
        raise NatlabError(
            f"cannot write {path}: {error.strerror}",
            field=option,
            fix="give a path in a directory that exists and that you may write to",
        ) from None
    os.close(descriptor)
    if created:
        os.unlink(path)


def write_junit(path: str | Path, result: ScenarioResult | MatrixResult) -> None:
    suite = _matrix_suite(result) if isinstance(result, MatrixResult) else _scenario_suite(result)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()  # counts and sums the suite's cases, then the suites
    suite.time = xml.time = round(result.seconds, 3)  # the whole run, labs up and down included
    xml.write(str(path), pretty=True)


def _scenario_suite(result: ScenarioResult) -> TestSuite:
    suite = TestSuite(f"natlab run {result.name}")
    if result.error is not None:
        case = TestCase("lab up", classname=result.name)
        case.result = [Error(result.error, "lab")]
        suite.add_testcase(case)
    for step in result.steps:
        suite.add_testcase(_step_case(result.name, step))
    return suite


def _step_case(scenario: str, step: StepResult) -> TestCase:
    case = TestCase(
        f"{step.index + 1}: {step.text}", classname=scenario, time=round(step.seconds, 3)
    )
    if step.fault is not None:
        fault = Error(f"{step.fault}: {NOT_NAT}", FAULT)
        fault.text = "\n".join(filter(None, [step.error, *step.explanation]))
        case.result = [fault]
    elif step.error is not None:
        case.result = [Error(step.error, "step")]
    elif not step.passed:
        failed = "; ".join(
            f"{c.what}: expected {c.expected}, observed {c.observed}"
            for c in step.checks
            if not c.ok
        )
        failure = Failure(failed, "expectation")
        failure.text = "\n".join(step.explanation)
        case.result = [failure]
    return case


def _matrix_suite(result: MatrixResult) -> TestSuite:
    suite = TestSuite("natlab matrix" + (" (relay)" if result.relay else ""))
    for pair in result.pairs:
        suite.add_testcase(_pair_case(pair))
    return suite


def _pair_case(pair: PairResult) -> TestCase:
    case = TestCase(
        f"{pair.caller_type} x {pair.callee_type}",
        classname="matrix",
        time=round(pair.result.seconds, 3),
    )
    if not pair.passed:
        message = f"expected {pair.expected}, observed {pair.observed}"
        if pair.fault is not None:
            outcome = Error(f"{pair.fault}: {NOT_NAT}", FAULT)
        elif pair.observed == "error":
            outcome = Error(message, "error")
        else:
            outcome = Failure(message, "verdict")
        outcome.text = "\n".join(pair.explanation)
        case.result = [outcome]
    return case
