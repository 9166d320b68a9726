"""What a lab keeps of its topology, and what attach reads back."""

from __future__ import annotations

from pathlib import Path

from natlab.core.behaviour import PRESETS
from natlab.lab.lab import BEHAVIOURS, keep_topology, kept_topology
from natlab.topology import load_topology

MAIN_BRANCH = load_topology("main-branch")


def test_routers_run_what_the_lab_was_given(tmp_path: Path) -> None:
    changed = MAIN_BRANCH.with_behaviours(
        {"branch2": PRESETS["full-cone"], "main": PRESETS["none"]}
    )
    keep_topology(changed, tmp_path)
    assert kept_topology(tmp_path, MAIN_BRANCH.source) == changed


def test_a_lab_kept_without_behaviours_runs_its_file(tmp_path: Path) -> None:
    keep_topology(MAIN_BRANCH.with_behaviours({"branch2": PRESETS["full-cone"]}), tmp_path)
    (tmp_path / BEHAVIOURS).unlink()
    assert kept_topology(tmp_path, MAIN_BRANCH.source) == MAIN_BRANCH
