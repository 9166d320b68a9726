"""`reached`: whether a call's invite got to the callee, as the callee's own reports say."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from natlab.scenario.model import TOPOLOGIES, Call
from natlab.scenario.runner import StepResult, _Runner
from natlab.topology import load_topology

CALLER = {"call": "c1", "caller": "phone-a", "callee": "phone-b", "verdict": "no media"}
REGISTRATION = {"transport": "udp", "address": "203.0.113.2:5060", "expires_in": 57.2}


def checked(reached: bool, callee_reports: list[dict]) -> StepResult:
    """The reached check of a call step, the phones and the PBX answering as given."""
    answers = {
        "phone-b": {"reports": callee_reports},
        "pbx": {"registrations": {"phone-b": REGISTRATION}},
    }
    lab = SimpleNamespace(topology=load_topology(TOPOLOGIES / "main-branch.yaml"))
    runner = _Runner(lab)  # type: ignore[arg-type]
    runner.ask = lambda host, request, timeout=5.0: answers[host]  # type: ignore[method-assign]
    result = StepResult(0, "call", None)
    runner.check_reached(Call("phone-a", "phone-b", reached=reached), CALLER, result)
    return result


@pytest.mark.parametrize("reached", [True, False])
def test_a_callee_without_a_report_of_the_call_was_not_reached(reached: bool) -> None:
    result = checked(reached, [{"call": "other", "verdict": "two-way"}])
    (check,) = result.checks
    assert (check.observed, check.ok) == ("phone-b never got the invite", not reached)
    assert result.explanation == [
        "phone-b never got the invite; the PBX still holds its registration over udp from "
        "203.0.113.2:5060, for 57 s more, and sent the invite there"
    ]


@pytest.mark.parametrize("reached", [True, False])
def test_a_callee_with_a_report_of_the_call_was_reached(reached: bool) -> None:
    result = checked(reached, [{"call": "c1", "verdict": "no media"}])
    (check,) = result.checks
    assert (check.observed, check.ok) == ("phone-b got the invite (no media)", reached)
    assert result.explanation == []
