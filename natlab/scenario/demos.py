"""Demos: the lessons trainers show, each a scenario shipped inside the package.

`natlab demo NAME` runs one in a lab of its own (traced, then always taken
down) and tells its trace as `natlab explain` would. The scenario files sit
in demos/ next to this module, so a demo runs from any directory.
"""

from __future__ import annotations

from pathlib import Path

from natlab.errors import NatlabError
from natlab.scenario.model import Scenario, load_scenario
from natlab.scenario.runner import Progress, ScenarioResult
from natlab.scenario.story import Scene, tell
from natlab.scenario.trace import read_trace, run_traced
from natlab.topology.lab_name import unique_lab_name

DEMOS_DIR = Path(__file__).resolve().parent / "demos"
# The order they are listed and best shown in.
DEMOS = ("symmetric-fails", "full-cone-fixes", "relay", "keepalive", "hairpin", "cgnat", "sip-alg")


def demo_scenario(name: str) -> Scenario:
    """The demo's scenario, loaded and validated; an unknown name is a NatlabError listing them."""
    if name not in DEMOS:
        raise NatlabError(
            f"no demo named '{name}'",
            fix="choose one of:\n" + "\n".join(f"    {line}" for line in demo_lines()),
        )
    return load_scenario(DEMOS_DIR / f"{name}.yaml")


def demo_lines() -> list[str]:
    """One line per demo: its name and what it shows (the scenario's `about`)."""
    width = max(map(len, DEMOS))
    return [f"{name:<{width}}  {load_scenario(DEMOS_DIR / f'{name}.yaml').about}" for name in DEMOS]


def run_demo(
    scenario: Scenario, trace: Path, progress: Progress | None = None
) -> tuple[ScenarioResult, list[Scene]]:
    """Run the demo's lab with its trace written to `trace`, and the story that trace tells."""
    result = run_traced(scenario, unique_lab_name(scenario.name), trace, progress=progress)
    return result, tell(read_trace(trace))
