"""--natlab-keep: a failed test's lab stays up, named, with the command that takes it down.

Another project's failing test asks natlab_lab for a built-in topology by
name; pytest runs it with --natlab-keep in a subprocess; this test then
finds the lab in the kernel and takes it down itself, whatever happens.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.natlab

FAILING = """
def test_fails_with_a_lab(natlab_lab):
    lab = natlab_lab("main-branch")
    assert lab.exec("phone-b", ["true"]).returncode == 0
    assert False, "look at the lab"
"""


def test_a_failed_tests_lab_is_kept_and_named(tmp_path, kernel):
    (tmp_path / "test_keep.py").write_text(FAILING)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--natlab-keep"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    kept = re.findall(r"take it down: natlab down (\S+)", result.stdout)
    try:
        assert result.returncode == 1, result.stdout
        assert "labs kept up for inspection" in result.stdout
        assert len(kept) == 1, result.stdout
        assert kernel.lab_namespaces(kept[0]), "the kept lab is not up"
    finally:
        for lab in kept:
            down = [sys.executable, "-m", "natlab", "down", lab]
            subprocess.run(down, check=True, capture_output=True, timeout=60)
    assert not kernel.lab_namespaces(kept[0])
