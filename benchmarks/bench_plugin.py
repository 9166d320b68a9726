"""What natlab's pytest plugin adds to every pytest start where natlab is installed.

A throw-away project with one trivial test; `pytest --collect-only` is run
alternately with the plugin and with it disabled (`-p no:natlab`), and the
median wall time of each is printed. Target (issue 11): within 0.1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.1  # seconds


def collect_time(project: Path, *extra: str) -> float:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    subprocess.run([*command, *extra], cwd=project, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="natlab-bench-plugin-") as folder:
        project = Path(folder)
        (project / "test_trivial.py").write_text("def test_nothing():\n    pass\n")
        collect_time(project)  # warm the page cache and bytecode caches
        collect_time(project, "-p", "no:natlab")
        with_plugin, without = [], []
        for _ in range(args.runs):  # alternate, so machine load hits both alike
            with_plugin.append(collect_time(project))
            without.append(collect_time(project, "-p", "no:natlab"))
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"pytest --collect-only, one trivial test, median of {args.runs} runs:")
    print(f"  with natlab's plugin    {a:.3f} s")
    print(f"  with -p no:natlab       {b:.3f} s")
    print(f"  added by the plugin     {a - b:+.3f} s (target: within {TARGET:.1f} s)")


if __name__ == "__main__":
    main()
