"""pytest plugin: labs for tests, always taken down, and proof that nothing is left.

Tests marked `lab` need root. Without it they skip with a reason, unless
NATLAB_REQUIRE_ROOT=1 (set by .ci/run), which turns that skip into a failure
so that no skip can hide a regression in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from natlab.lab import Lab
from natlab.lab.build import planned_namespaces
from natlab.lab.naming import state_root
from natlab.plumbing import namespaces
from natlab.topology import Topology, load_topology

REQUIRE_ROOT = "NATLAB_REQUIRE_ROOT"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: builds real network namespaces; needs root")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is None or os.geteuid() == 0:
        return
    reason = "lab tests build network namespaces and need root"
    if os.environ.get(REQUIRE_ROOT) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ROOT}=1 forbids skipping them")
    pytest.skip(reason)


def unique_lab_name(topology: Topology) -> str:
    """Short and unique, so test labs never collide with a user's or each other."""
    return f"{topology.name[:20]}-{secrets.token_hex(3)}"


@pytest.fixture
def natlab_lab() -> Iterator[Callable[..., Lab]]:
    """Factory: natlab_lab(path_or_topology, name=None) -> a Lab that is up.

    Every lab made is taken down after the test, pass or fail, and the
    fixture then checks that none of its namespaces or state is left.
    """
    labs: list[Lab] = []

    def make(topology: str | Path | Topology, name: str | None = None) -> Lab:
        if not isinstance(topology, Topology):
            topology = load_topology(topology)
        lab = Lab(topology, name or unique_lab_name(topology))
        labs.append(lab)
        return lab.up()

    yield make
    for lab in labs:
        lab.down()
    for lab in labs:
        left = [n for n in planned_namespaces(lab.topology, lab.name) if namespaces.exists(n)]
        assert not left, f"lab {lab.name} left namespaces behind: {left}"
        assert not (state_root() / lab.name).exists(), f"lab {lab.name} left its state"
