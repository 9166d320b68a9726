"""Results for machines: JUnit XML for CI (written with junitparser).

(Their JSON is each result's as_json(), which the CLI prints with --json and
writes with --json-file, under its schema name.)

JUnit has one testcase per scenario step (`natlab run`) or per pair of NAT
types (`natlab matrix`); a failed expectation is a <failure> whose text is
the explanation, a step that could not run is an <error>. CI front ends
show exactly that text next to the red test, so it carries the drops.
"""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from natlab.scenario.matrix import MatrixResult, PairResult
from natlab.scenario.runner import ScenarioResult, StepResult


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
    if step.error is not None:
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
        outcome = (
            Error(message, "error") if pair.observed == "error" else Failure(message, "verdict")
        )
        outcome.text = "\n".join(pair.explanation)
        case.result = [outcome]
    return case
