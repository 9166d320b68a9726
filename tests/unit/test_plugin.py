"""The pytest plugin, as every project with natlab installed gets it.

It must not touch other projects' tests (a `lab` marker is theirs) and must
not slow pytest's start-up: the heavy dependencies come with the fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("pyroute2", "aioice", "cryptography", "natlab.lab", "natlab.topology", "pydantic")

# Another project's tests with its own `lab` marker, run by a user who is not root (os.geteuid
# faked in its conftest).
CONFTEST = """
    import os

    os.geteuid = lambda: 1000


    def pytest_configure(config):
        config.addinivalue_line("markers", "lab: this project's own lab tests")
"""
TESTS = """
    import pytest


    @pytest.mark.lab
    def test_their_own_lab_marker():
        pass


    @pytest.mark.natlab
    def test_natlab_marked():
        pass
"""


def test_loading_the_plugin_imports_nothing_heavy():
    code = f"import sys, natlab.pytest_plugin\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _pytest(project: Path, *args: str, require_root: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NATLAB_REQUIRE_ROOT"}
    if require_root:
        env["NATLAB_REQUIRE_ROOT"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _project(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_theirs.py").write_text(textwrap.dedent(TESTS))
    return tmp_path


def test_a_foreign_lab_marker_is_left_alone_and_only_natlab_tests_skip(tmp_path):
    result = _pytest(_project(tmp_path), "--strict-markers")
    assert "PASSED test_theirs.py::test_their_own_lab_marker" in result.stdout, result.stdout
    assert "natlab tests build network namespaces and need root" in result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert result.returncode == 0


def test_natlab_require_root_fails_only_natlab_tests(tmp_path):
    result = _pytest(_project(tmp_path), require_root=True)
    assert "PASSED test_theirs.py::test_their_own_lab_marker" in result.stdout, result.stdout
    assert "ERROR test_theirs.py::test_natlab_marked" in result.stdout  # failed in its set-up
    assert result.returncode == 1


def test_the_keep_option_is_offered(tmp_path):
    result = _pytest(tmp_path, "--help")
    assert "--natlab-keep" in result.stdout
