"""A run tells its watchers of its lab and of each step's start and end, as they happen.

The trace used to find where a step started by comparing the progress text
with the step's description, and attached a Lab of its own to the run's lab.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from natlab.errors import NatlabError
from natlab.records import StepEnded, StepStarted
from natlab.scenario import runner
from natlab.scenario.matrix import pair_scenario
from natlab.scenario.model import AdvanceClock, Scenario
from natlab.scenario.runner import RunHooks, run_scenario
from natlab.scenario.trace import Recorder


@dataclass
class FakeLab:
    """A lab whose routers run no NAT daemon (as with the kernel dataplane)."""

    topology: object
    name: str = "hooks-abc"
    advanced: list[float] = field(default_factory=list)

    def up(self) -> None:
        pass

    def down(self) -> None:
        pass

    def deaths(self) -> list:
        return []

    def advance_clock(self, seconds: float) -> dict:
        self.advanced.append(seconds)
        return {}

    def router(self, name: str):
        raise NatlabError("no NAT daemon")


class Heard(RunHooks):
    def __init__(self, lab: FakeLab) -> None:
        self.lab, self.heard = lab, []

    def lab_up(self, lab) -> None:
        self.heard.append(("up", lab is self.lab))

    def step_started(self, index, step) -> None:
        self.heard.append(("start", index, len(self.lab.advanced)))

    def step_ended(self, result) -> None:
        self.heard.append(("end", result.index, len(self.lab.advanced)))


def test_hooks_hear_the_lab_then_each_steps_start_before_it_runs_and_end_after(monkeypatch):
    scenario = pair_scenario("full-cone", "symmetric")
    lab = FakeLab(scenario.topology)
    monkeypatch.setattr(runner, "Lab", lambda topology, name: lab)
    steps = (AdvanceClock(10), AdvanceClock(10))  # the same text twice
    hooks = Heard(lab)
    quiet: list[str] = []
    same = Scenario("hooks", "hooks.yaml", scenario.topology, steps)
    run_scenario(same, "hooks-abc", lambda text, step: quiet.append(text), hooks=hooks)
    assert hooks.heard == [
        ("up", True),
        ("start", 0, 0),
        ("end", 0, 1),
        ("start", 1, 1),
        ("end", 1, 2),
    ]


def test_the_trace_records_steps_from_the_hooks_whatever_the_progress_says(monkeypatch):
    scenario = pair_scenario("full-cone", "symmetric")
    lab = FakeLab(scenario.topology)
    monkeypatch.setattr(runner, "Lab", lambda topology, name: lab)
    recorder = Recorder(scenario, "hooks-abc")
    steps = (AdvanceClock(5), AdvanceClock(5))
    same = Scenario("hooks", "hooks.yaml", scenario.topology, steps)
    run_scenario(same, "hooks-abc", lambda text, step: None, hooks=recorder)
    assert recorder.lab is lab  # the run's own Lab, not a second one attached to it
    marks = [(type(r), r.index) for r in recorder.records if isinstance(r, StepStarted | StepEnded)]
    assert marks == [(StepStarted, 0), (StepEnded, 0), (StepStarted, 1), (StepEnded, 1)]
