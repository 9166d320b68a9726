"""Wall time of Lab.up() and Lab.down() (issues 2, 15): main-branch, and 50 routers x 2 hosts.

Each lab is brought up and taken down `--runs` times under a fresh name; the
median, min and max are printed beside the issue's targets. Printed, never
asserted: speed is reported here, behaviour is tested in tests/lab.

main-branch names its PBX and STUN server (`dns:`, dnsmasq in four nodes);
it is measured as it is and without its names (no `dns:`, no dns-server
host), to show what DNS costs.

Run as root: python benchmarks/bench_lab.py [--runs 5] [--dataplane natlab|kernel]
                                            [--prefix bench] [--skip-large]
Targets (issues 2, 15): main-branch up < 1 s (with DNS too) and down < 0.5 s;
50 x 2 up < 15 s.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from dataclasses import replace
from pathlib import Path

from natlab.lab import Lab, require_root
from natlab.lab.lab import DATAPLANES
from natlab.topology import Topology, load_topology, parse_topology
from natlab.topology.model import Role

MAIN_BRANCH = Path(__file__).resolve().parent.parent / "topologies" / "main-branch.yaml"


def generated(routers: int, hosts: int) -> Topology:
    """`routers` NAT routers on one internet (198.51.100.0/24), each with `hosts` on 10.N.0.0/24."""
    lines = ["name: generated", "segments:", "  internet: {subnet: 198.51.100.0/24}"]
    lines += [f"  lan{n}: {{subnet: 10.{n}.0.0/24}}" for n in range(1, routers + 1)]
    lines.append("routers:")
    lines += [
        f"  r{n}: {{wan: {{segment: internet}}, lan: {{segment: lan{n}}}}}"
        for n in range(1, routers + 1)
    ]
    lines.append("hosts:")
    lines += [
        f"  h{n}-{h}: {{segment: lan{n}}}"
        for n in range(1, routers + 1)
        for h in range(1, hosts + 1)
    ]
    return parse_topology("\n".join(lines) + "\n", f"<generated {routers} x {hosts}>")


def unnamed(topology: Topology) -> Topology:
    """The topology without its names: no `dns:` section, no dns-server host."""
    hosts = {n: h for n, h in topology.hosts.items() if h.role is not Role.DNS_SERVER}
    return replace(topology, dns=None, hosts=hosts)


def up_and_down(
    topologies: list[Topology], dataplane: str, runs: int, prefix: str
) -> list[tuple[list[float], list[float]]]:
    """Seconds each Lab.up() and Lab.down() took, per topology, one lab at a time.

    The topologies take turns, run after run, so a machine whose load
    changes meanwhile weighs on each of them alike.
    """
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in topologies]
    for _ in range(runs):
        for topology, (ups, downs) in zip(topologies, times, strict=True):
            lab = Lab(topology, f"{prefix}-{secrets.token_hex(3)}", DATAPLANES[dataplane]())
            start = time.perf_counter()
            try:
                lab.up()
                ups.append(time.perf_counter() - start)
            finally:
                start = time.perf_counter()
                lab.down()
                downs.append(time.perf_counter() - start)
    return times


def line(what: str, seconds: list[float], target: float | None) -> str:
    median = statistics.median(seconds)
    spread = f"(min {min(seconds):.3f}, max {max(seconds):.3f})"
    verdict = (
        "" if target is None else f"target < {target:g} s: {'met' if median < target else 'MISSED'}"
    )
    return f"  {what:<5} median {median:7.3f} s {spread:<26} {verdict}".rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="up/down cycles per topology")
    parser.add_argument("--dataplane", choices=sorted(DATAPLANES), default="natlab")
    parser.add_argument("--prefix", default="bench", help="lab names start with this")
    parser.add_argument("--skip-large", action="store_true", help="skip 50 routers x 2 hosts")
    args = parser.parse_args()
    require_root("the lab benchmark")

    main_branch = load_topology(MAIN_BRANCH)
    groups = [
        [  # taking turns: what DNS costs shows as the difference
            ("main-branch, with DNS", main_branch, 1.0, 0.5),
            ("main-branch, without DNS", unnamed(main_branch), 1.0, 0.5),
        ]
    ]
    if not args.skip_large:
        groups.append([("50 routers x 2 hosts", generated(50, 2), 15.0, None)])
    print(f"Lab.up() / Lab.down(), {args.runs} runs each, dataplane {args.dataplane}")
    for cases in groups:
        times = up_and_down([c[1] for c in cases], args.dataplane, args.runs, args.prefix)
        for (title, topology, up_target, down_target), (ups, downs) in zip(
            cases, times, strict=True
        ):
            print(f"{title}: {1 + len(topology.nodes)} namespaces, {len(topology.routers)} routers")
            print(line("up", ups, up_target))
            print(line("down", downs, down_target))


if __name__ == "__main__":
    main()
