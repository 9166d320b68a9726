"""Wall time and peak memory of `natlab matrix` and of one call scenario (issue 5).

Each is run as a user runs it, `natlab ...` in a process of its own. While it
runs, every process of its tree (natlab, the matrix's workers, and inside
the labs the NAT daemons, the PBX, the phones, the STUN server) is sampled
ten times a second; peak memory is the largest sum of their proportional
set sizes (PSS: shared pages split between the processes sharing them, so
forked processes are not counted twice). Printed, never asserted.

Run as root: python benchmarks/bench_matrix.py [--jobs N] [--seconds 2] [--skip-matrix]
Targets (issue 5): the 25-pair matrix in under 60 s on 2 cores; one call under 5 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from natlab.lab import require_root

SAMPLE = 0.1  # seconds between samples of the process tree
ONE_CALL = """\
name: bench-one-call
topology: main-branch.yaml
steps:
  - wait-registered: [phone-a, phone-b]
  - call: {{from: phone-a, to: phone-b, seconds: {seconds}}}
    expect: {{media: two-way}}
"""


def children() -> dict[int, list[int]]:
    """ppid -> pids, for every process now."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_of(root: int) -> list[int]:
    tree, found, todo = children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def measure(argv: list[str]) -> tuple[float, int, int, int]:
    """(wall seconds, peak PSS in KiB, most processes at once, exit status) of argv."""
    peak, most = 0, 0
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, most
        while not done.wait(SAMPLE):
            pids = tree_of(process.pid)
            peak = max(peak, sum(pss_kib(pid) for pid in pids))
            most = max(most, len(pids))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        _, errors = process.communicate()
    finally:
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    if process.returncode not in (0, 1):
        print(errors.decode(), file=sys.stderr)
    return wall, peak, most, process.returncode


def report(what: str, target: str, figures: tuple[float, int, int, int]) -> None:
    wall, peak, most, status = figures
    print(
        f"{what}: {wall:.1f} s wall (target {target}), peak memory {peak / 1024:.0f} MiB PSS "
        f"over {most} processes, exit status {status}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="labs at a time for the matrix (natlab's default)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the one call")
    parser.add_argument("--skip-matrix", action="store_true", help="only the one call")
    args = parser.parse_args()
    require_root("the benchmark")
    natlab = [sys.executable, "-c", "from natlab.cli import main; main()"]
    print(f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        scenario = Path(folder) / "one-call.yaml"
        scenario.write_text(ONE_CALL.format(seconds=args.seconds))
        report(
            f"one call scenario ({args.seconds:g} s of media, lab up and down included)",
            "< 5 s",
            measure([*natlab, "run", str(scenario)]),
        )
    if not args.skip_matrix:
        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        report(
            f"natlab matrix, 25 pairs{f', --jobs {args.jobs}' if args.jobs else ''}",
            "< 60 s on 2 cores",
            measure([*natlab, "matrix", *jobs]),
        )


if __name__ == "__main__":
    main()
