"""Wall time of matrices of programs and of natlab's own, and sharded runs merged (issue 13).

Each matrix runs as a user runs it (`natlab matrix ...` in a process of
its own, --jobs 2 by default) with its JSON report; printed, never asserted:

- the 25-cell matrix with examples/ice-agent: wall time (target < 60 s on 2
  cores) and natlab's own overhead per cell over the programs' run time (lab
  up, captures, observation, lab down: a cell's `seconds` less its
  `program_seconds`; target < 1.5 s);
- the default matrix (natlab's phones, 25 pairs): wall time (target < 25 s);
- --shard 1/2 and 2/2 run one after the other and merged: whether the merged
  report equals the unsharded one (each cell's expectation, observation and
  verdict; the verdict and exit status of the whole), for both matrices.

Run as root from the repository's root:
python benchmarks/bench_program_matrix.py [--jobs 2] [--skip-phones] [--skip-shards]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from natlab.lab import require_root

REPO = Path(__file__).resolve().parents[1]
AGENT = f"{sys.executable} {REPO / 'examples' / 'ice-agent' / 'agent.py'}"
NATLAB = [sys.executable, "-c", "from natlab.cli import main; main()"]


def matrix(args: list[str], report: Path) -> tuple[float, int, dict]:
    """(wall seconds, exit status, JSON report) of `natlab matrix ARGS`."""
    start = time.perf_counter()
    done = subprocess.run(
        [*NATLAB, "matrix", *args, "--json-file", str(report)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        print(done.stderr, file=sys.stderr)
    return wall, done.returncode, json.loads(report.read_text()) if report.exists() else {}


def outcome(report: dict) -> tuple:
    cells = tuple(
        (p["caller"]["type"], p["callee"]["type"], p["expected"], p["observed"], p["verdict"])
        for p in report.get("pairs", [])
    )
    return cells, report.get("verdict"), report.get("exit_code")


def sharded(args: list[str], folder: Path, whole: dict) -> str:
    """Run --shard 1/2 then 2/2, merge them, and say whether the merge equals `whole`."""
    folder.mkdir(exist_ok=True)
    walls = []
    for index in (1, 2):
        wall, _, _ = matrix([*args, "--shard", f"{index}/2"], folder / f"shard{index}.json")
        walls.append(wall)
    merged_file = folder / "merged.json"
    shards = [str(folder / "shard1.json"), str(folder / "shard2.json")]
    merge = subprocess.run(
        [*NATLAB, "matrix", "merge", *shards, "--json-file", str(merged_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if not merged_file.exists():
        return f"merge failed (exit {merge.returncode}): {merge.stderr.strip()}"
    merged = json.loads(merged_file.read_text())
    same = outcome(merged) == outcome(whole)
    return f"shards {walls[0]:.1f} s + {walls[1]:.1f} s, merged exit {merge.returncode}: " + (
        "equals the unsharded report" if same else "DIFFERS from the unsharded report"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="labs at a time (default 2)")
    parser.add_argument("--skip-phones", action="store_true", help="not natlab's own matrix")
    parser.add_argument("--skip-shards", action="store_true", help="no sharded runs")
    args = parser.parse_args()
    require_root("the benchmark")
    jobs = ["--jobs", str(args.jobs)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        agent = ["--run", AGENT, "--timeout", "20", *jobs]
        wall, status, report = matrix(agent, folder / "agent.json")
        cells = report.get("pairs", [])
        overhead = [c["seconds"] - c["program_seconds"] for c in cells]
        programs = [c["program_seconds"] for c in cells]
        print(
            f"ICE agent matrix, {len(cells)} cells, --jobs {args.jobs}: {wall:.1f} s wall "
            f"(target < 60 s), exit status {status}"
        )
        if cells:
            print(
                f"  natlab's overhead per cell (lab up, captures, observation, lab down): mean "
                f"{statistics.mean(overhead):.2f} s, max {max(overhead):.2f} s (target < 1.5 s); "
                f"programs' run time mean {statistics.mean(programs):.2f} s"
            )
        if not args.skip_shards:
            print(f"  {sharded(agent, folder / 'agent-shards', report)}")
        if not args.skip_phones:
            wall, status, report = matrix(jobs, folder / "phones.json")
            print(
                f"natlab matrix (phones), {len(report.get('pairs', []))} pairs, --jobs "
                f"{args.jobs}: {wall:.1f} s wall (target < 25 s), exit status {status}"
            )
            if not args.skip_shards:
                print(f"  {sharded(jobs, folder / 'phones-shards', report)}")


if __name__ == "__main__":
    main()
