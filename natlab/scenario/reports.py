"""Results for machines: JUnit XML for CI (written with junitparser).

(Their JSON is each result's as_json(), which the CLI prints with --json and
writes with --json-file, under its schema name.)

JUnit has one testcase per scenario step (`natlab run`) or per pair of NAT
types (`natlab matrix`); a failed expectation is a <failure> whose text is
the explanation, a step that could not run is an <error>, and a fault (a
lab process died: verdict.py) is an <error> of type "fault" that names it.
CI front ends show exactly that text next to the red test, so it carries
the drops.
"""

from __future__ import annotations

import os
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from natlab.errors import NatlabError
from natlab.scenario.matrix import MatrixResult, PairResult
from natlab.scenario.runner import ScenarioResult, StepResult
from natlab.scenario.verdict import FAULT, NOT_NAT


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
