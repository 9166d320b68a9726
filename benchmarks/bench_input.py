"""Hostile topology files through `natlab validate`: time and peak memory (issue 11).

Each case runs `python -m natlab validate FILE` as a process of its own and
reads that process's own resource usage (os.wait4): wall time, CPU time
(user + system, which load on the machine does not inflate) and peak
resident size. Target for the hostile cases: refused (exit 2) in under 1 s
and 100 MB. The valid main-branch file is the baseline: what starting
Python and importing natlab cost before any file is read.

- alias bomb: nine levels of nine aliases of the level before, 9**9 values
  once expanded, in 353 bytes (before issue 11: 186 s and 6.4 GB, killed);
- 5000 deep: `segments: [[[[...]]]]`, 5000 levels (before: a RecursionError);
- recursive anchor: an anchored mapping that holds an alias to itself.

Printed, never asserted. Run: python benchmarks/bench_input.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN_BRANCH = Path(__file__).resolve().parents[1] / "topologies" / "main-branch.yaml"

ALIAS_BOMB = "name: bomb\n" + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
ALIAS_BOMB += "".join(
    f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
CASES = {
    "main-branch (valid)": MAIN_BRANCH.read_text(),
    "alias bomb": ALIAS_BOMB,
    "5000 deep": "name: deep\nsegments: " + "[" * 5000 + "]" * 5000 + "\n",
    "recursive anchor": "name: t\nsegments: &s\n  lan: *s\n",
}


def measure(path: Path) -> tuple[int, float, float, float]:
    """(exit code, wall s, cpu s, peak RSS in MB) of one `natlab validate path`."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "natlab", "validate", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return process.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the best is printed")
    runs = parser.parse_args().runs
    print(f"{'case':22} {'bytes':>6} {'exit':>4} {'wall s':>7} {'cpu s':>6} {'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="natlab-bench-input-") as folder:
        for name, text in CASES.items():
            path = Path(folder) / "input.yaml"
            path.write_text(text)
            results = [measure(path) for _ in range(runs)]
            code = results[0][0]
            wall, cpu, peak = (min(result[i] for result in results) for i in (1, 2, 3))
            print(f"{name:22} {len(text):>6} {code:>4} {wall:>7.2f} {cpu:>6.2f} {peak:>8.1f}")
    print("target: hostile cases exit 2 in < 1 s and < 100 MB (baseline: the valid file)")


if __name__ == "__main__":
    main()
