"""`reached`: whether a call's invite got to the callee, as the callee's own reports say."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from natlab.records import CallReport, Registration
from natlab.scenario.model import TOPOLOGIES, Call
from natlab.scenario.runner import StepResult, _Runner
from natlab.topology import load_topology

CALLER = CallReport("c1", "phone-a", "phone-b", "ice", "caller", verdict="no media")
REGISTRATION = Registration("udp", "203.0.113.2:5060", since=1.0, expires_in=57.2)


def checked(reached: bool, callee_reports: list[CallReport]) -> StepResult:
    """The reached check of a call step, the phones and the PBX answering as given."""
    phone = SimpleNamespace(reports=lambda: callee_reports)
    pbx = SimpleNamespace(registrations=lambda: {"phone-b": REGISTRATION})
    lab = SimpleNamespace(
        topology=load_topology(TOPOLOGIES / "main-branch.yaml"),
        phone=lambda name: phone,
        pbx=lambda: pbx,
    )
    runner = _Runner(lab)  # type: ignore[arg-type]
    result = StepResult(0, "call", None)
    runner.check_reached(Call("phone-a", "phone-b", reached=reached), CALLER, result)
    return result


@pytest.mark.parametrize("reached", [True, False])
def test_a_callee_without_a_report_of_the_call_was_not_reached(reached: bool) -> None:
    result = checked(reached, [replace(CALLER, call="other", role="callee", verdict="two-way")])
    (check,) = result.checks
    assert (check.observed, check.ok) == ("phone-b never got the invite", not reached)
    assert result.explanation == [
        "phone-b never got the invite; the PBX still holds its registration over udp from "
        "203.0.113.2:5060, for 57 s more, and sent the invite there"
    ]


@pytest.mark.parametrize("reached", [True, False])
def test_a_callee_with_a_report_of_the_call_was_reached(reached: bool) -> None:
    result = checked(reached, [replace(CALLER, role="callee")])
    (check,) = result.checks
    assert (check.observed, check.ok) == ("phone-b got the invite (no media)", reached)
    assert result.explanation == []
