"""pytest plugin: labs for tests, always taken down, and proof that nothing is left.

Tests marked `natlab` need root. Without it they skip with a reason, unless
NATLAB_REQUIRE_ROOT=1 (set by .ci/run), which turns that skip into a failure
so that no skip can hide a regression in CI. No other marker is natlab's: a
project's own `lab` tests are left alone.

pytest loads this plugin in every project where natlab is installed, so it
imports nothing heavy at start-up: natlab.lab (pyroute2, aioice,
cryptography) comes in only when a test asks for the `natlab_lab` fixture.

`--natlab-keep` leaves a failed test's labs up for inspection and says, at
the end of the run, what they are called and how to take them down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from natlab.lab import Lab
    from natlab.topology import Topology

MARKER = "natlab"
REQUIRE_ROOT = "NATLAB_REQUIRE_ROOT"
KEEP_OPTION = "--natlab-keep"
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()
_KEPT = pytest.StashKey[list[tuple[str, str]]]()  # (test, lab) left up by --natlab-keep


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("natlab").addoption(
        KEEP_OPTION,
        action="store_true",
        help="natlab: leave the labs of a failed test up for inspection (natlab down NAME later)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: builds real network namespaces; needs root")
    config.stash[_KEPT] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is None or os.geteuid() == 0:
        return
    reason = "natlab tests build network namespaces and need root"
    if os.environ.get(REQUIRE_ROOT) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ROOT}=1 forbids skipping them")
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)  # old style: the plugin loads under any pytest >= 7
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember how the test itself went, so the fixture's teardown knows whether to keep."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_CALL_REPORT] = report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kept = terminalreporter.config.stash.get(_KEPT, [])
    if not kept:
        return
    terminalreporter.section("natlab: labs kept up for inspection")
    for test, lab in kept:
        terminalreporter.line(f"{lab} (kept by {test}): inspect with natlab status {lab}")
        terminalreporter.line(f"    take it down: natlab down {lab}")


@pytest.fixture
def natlab_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """Factory: natlab_lab(topology, name=None) -> a Lab that is up.

    `topology` is a path, a built-in topology's name ("main-branch") or a
    Topology. Every lab made is taken down after the test, pass or fail
    (with --natlab-keep, a failed test's labs stay up), and the fixture then
    checks that none of its namespaces or state is left.
    """
    from natlab.lab import Lab
    from natlab.lab.build import planned_namespaces
    from natlab.lab.naming import state_root
    from natlab.plumbing import namespaces
    from natlab.topology import Topology, load_topology
    from natlab.topology.lab_name import unique_lab_name

    labs: list[Lab] = []

    def make(topology: str | Path | Topology, name: str | None = None) -> Lab:
        if not isinstance(topology, Topology):
            topology = load_topology(topology)
        lab = Lab(topology, name or unique_lab_name(topology.name))
        labs.append(lab)
        return lab.up()

    yield make
    report = request.node.stash.get(_CALL_REPORT, None)
    if request.config.getoption(KEEP_OPTION) and report is not None and report.failed:
        request.config.stash[_KEPT].extend((request.node.nodeid, lab.name) for lab in labs)
        return
    for lab in labs:
        lab.down()
    for lab in labs:
        planned = planned_namespaces(lab.topology, lab.name)
        left = [n for n in planned if namespaces.exists(n)]
        assert not left, f"lab {lab.name} left namespaces behind: {left}"
        etc = [n for n in planned if os.path.isdir(namespaces.etc_dir(n))]
        assert not etc, f"lab {lab.name} left its nodes' resolv.conf in /etc/netns: {etc}"
        assert not (state_root() / lab.name).exists(), f"lab {lab.name} left its state"
