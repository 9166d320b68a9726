"""The pure NAT engine alone: packets per second and memory, no I/O (issue 3).

Printed, never asserted; rates are CPU time of this process (other load
on the machine does not count), the best of three runs:

- parse: natlab.core.packets.parse on a small UDP packet;
- engine: NatEngine.outbound + NatEngine.inbound on packets parsed
  beforehand (the translation and its checksum updates, nothing else), for
  one flow and for many flows, per preset;
- parse + engine: what the router daemon pays per packet before any I/O;
- memory: tracemalloc's count of what the engine holds, and the process's
  resident size, with 10 000 live mappings (symmetric: one per host).

The dataplane target is 50 000 packets/s end to end, I/O included
(benchmarks/bench_dataplane.py measures that); the engine should use a
small part of that budget.

Run: python benchmarks/bench_engine.py [--packets 100000]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable

from natlab.core.behaviour import PRESETS
from natlab.core.craft import udp_packet
from natlab.core.engine import Action, NatConfig, NatEngine
from natlab.core.packets import Endpoint, parse

WAN = "203.0.113.1"
SERVER = Endpoint("198.51.100.1", 3478)
PAYLOAD = b"x" * 172  # the small UDP packets
MAPPINGS = 10_000
CHUNK = 2_000  # packets parsed ahead of a timed engine loop


def engine(preset: str) -> NatEngine:
    return NatEngine(NatConfig(PRESETS[preset], (WAN,), ("10.0.0.0/16",)))


def host(index: int) -> Endpoint:
    """Internal endpoints 10.0.x.y:5000, one per index."""
    return Endpoint(f"10.0.{index // 250}.{index % 250 + 2}", 5000)


def flows(nat: NatEngine, count: int) -> list[tuple[bytes, bytes]]:
    """(outbound, inbound) packet bytes for `count` flows, their mappings made at time 0."""
    pairs = []
    for index in range(count):
        out = udp_packet(host(index), SERVER, PAYLOAD)
        packet = parse(out)
        assert nat.outbound(packet, 0.0).action is Action.FORWARD_OUT
        pairs.append((bytes(out), bytes(udp_packet(SERVER, packet.src, PAYLOAD))))
    return pairs


def best_rate(run: Callable[[], tuple[int, float]], repeats: int = 3) -> float:
    """The best of a few runs, in packets per second; `run` times its own loop (CPU time)."""
    best = 0.0
    for _ in range(repeats):
        gc.collect()
        packets, seconds = run()
        best = max(best, packets / seconds)
    return best


def bench_parse(total: int) -> float:
    raw = bytes(udp_packet(host(0), SERVER, PAYLOAD))

    def run() -> tuple[int, float]:
        start = time.process_time()
        for _ in range(total):
            parse(raw)
        return total, time.process_time() - start

    return best_rate(run)


def bench_engine(preset: str, flow_count: int, total: int, with_parse: bool) -> float:
    """outbound + inbound through live mappings, parsing in the loop or beforehand."""
    nat = engine(preset)
    base = flows(nat, flow_count)
    pairs = [base[i % flow_count] for i in range(total // 2)]

    def run() -> tuple[int, float]:
        now = 1.0
        if with_parse:
            start = time.process_time()
            for out, back in pairs:
                nat.outbound(parse(out), now)
                nat.inbound(parse(back), now)
            return 2 * len(pairs), time.process_time() - start
        elapsed = 0.0
        for chunk in range(0, len(pairs), CHUNK):  # parse a chunk untimed, then translate it
            parsed = [(parse(out), parse(back)) for out, back in pairs[chunk : chunk + CHUNK]]
            start = time.process_time()
            for out, back in parsed:
                nat.outbound(out, now)
                nat.inbound(back, now)
            elapsed += time.process_time() - start
        return 2 * len(pairs), elapsed

    return best_rate(run)


def resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def live_mappings(count: int) -> NatEngine:
    nat = engine("symmetric")
    for index in range(count):
        nat.outbound(parse(udp_packet(host(index), SERVER, PAYLOAD)), 0.0)
    nat.drain_events()
    assert len(nat.mappings(1.0)) == count
    return nat


def bench_memory() -> tuple[float, float, int]:
    """RSS growth and RSS with MAPPINGS live mappings, then what tracemalloc counts (MiB)."""
    gc.collect()
    rss_before = resident_kib()
    nat = live_mappings(MAPPINGS)
    gc.collect()
    rss = resident_kib()
    del nat
    gc.collect()
    tracemalloc.start()
    nat = live_mappings(MAPPINGS)
    assert nat.counters["mappings_created"] == MAPPINGS
    gc.collect()
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (rss - rss_before) / 1024, held / 2**20, rss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    total = parser.parse_args().packets

    grown, held, rss = bench_memory()  # first, before the rate runs leave freed memory behind
    print(f"natlab NAT engine, pure Python, {len(PAYLOAD)}-byte UDP payloads, CPU time, best of 3")
    print(f"  parse only                                {bench_parse(total):>10,.0f} packets/s")
    for preset in ("port-restricted", "symmetric"):
        for flow_count in (1, 1000):
            label = f"{preset}, {flow_count} flow{'s' if flow_count > 1 else ''}"
            alone = bench_engine(preset, flow_count, total, with_parse=False)
            both = bench_engine(preset, flow_count, total, with_parse=True)
            print(f"  engine       {label:<29}{alone:>10,.0f} packets/s")
            print(f"  parse+engine {label:<29}{both:>10,.0f} packets/s")
    print(
        f"  {MAPPINGS:,} live mappings: RSS grew {grown:.1f} MiB to {rss} MiB; "
        f"the engine holds {held:.1f} MiB (tracemalloc)"
    )
    print("  target (issue 3, whole dataplane with I/O): >= 50,000 packets/s, < 50 MB RSS")


if __name__ == "__main__":
    main()
