"""A carrier-grade NAT with 1000 subscribers x 50 flows each: memory and new-flow rate (issue 16).

Printed, never asserted. Measured on the pure engine in this process, not
on a running daemon (a daemon with 50 000 live flows would need 1000 home
routers' worth of traffic through veths; the engine is what holds the
state): the process first imports everything the router daemon imports,
so its resident size is what a daemon holding these mappings would have,
less its sockets and buffers.

- setup rate: NatEngine.outbound on first packets parsed beforehand, each
  making a new mapping (UDP, one subscriber's 50 flows after another), CPU
  time, best of three fresh engines; the same without `cgnat:` beside it;
- memory: the process's RSS with the 50 000 mappings live, and what
  tracemalloc counts the engine holding.

Targets: RSS < 150 MB, >= 20 000 new mappings/s.

Run: python benchmarks/bench_cgnat.py [--subscribers 1000] [--flows 50]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import natlab.router.daemon  # noqa: F401  (what a daemon imports is in the RSS)
from natlab.core.behaviour import behaviour_from
from natlab.core.cgnat import CgnatSettings
from natlab.core.craft import udp_packet
from natlab.core.engine import Action, NatConfig, NatEngine
from natlab.core.packets import Endpoint, Packet, parse

POOL = tuple(f"203.0.113.{i}" for i in range(10, 26))  # 16 public addresses
SERVER = Endpoint("198.51.100.1", 3478)
PAYLOAD = b"x" * 20


def engine(cgnat: bool) -> NatEngine:
    return NatEngine(
        NatConfig(
            behaviour_from("restricted", udp_timeout=30),
            POOL,
            ("100.64.0.0/10",),
            cgnat=CgnatSettings(port_block=512, blocks_per_subscriber=4) if cgnat else None,
        )
    )


def first_packets(subscribers: int, flows: int) -> list[Packet]:
    """One new flow's first packet each: subscriber 100.64.x.y, ports 20000 + flow."""
    return [
        parse(udp_packet(Endpoint(f"100.64.{s // 250}.{s % 250 + 2}", 20000 + f), SERVER, PAYLOAD))
        for s in range(subscribers)
        for f in range(flows)
    ]


def setup_rate(subscribers: int, flows: int, cgnat: bool) -> float:
    best = 0.0
    for _ in range(3):
        packets = first_packets(subscribers, flows)
        nat = engine(cgnat)
        gc.collect()
        start = time.process_time()
        for packet in packets:
            nat.outbound(packet, 1.0)
        elapsed = time.process_time() - start
        assert nat.counters["mappings_created"] == len(packets), nat.counters
        best = max(best, len(packets) / elapsed)
    return best


def resident_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(subscribers: int, flows: int) -> tuple[float, float, float]:
    """RSS before, RSS with every mapping live, and what tracemalloc counts the engine holding."""
    gc.collect()
    before = resident_mib()
    nat = engine(cgnat=True)
    for index in range(subscribers * flows):
        s, f = divmod(index, flows)
        packet = parse(
            udp_packet(Endpoint(f"100.64.{s // 250}.{s % 250 + 2}", 20000 + f), SERVER, PAYLOAD)
        )
        assert nat.outbound(packet, 1.0).action is Action.FORWARD_OUT
    nat.drain_events()
    gc.collect()
    rss = resident_mib()
    del nat
    gc.collect()
    tracemalloc.start()
    nat = engine(cgnat=True)
    for packet in first_packets(subscribers, flows):
        nat.outbound(packet, 1.0)
    nat.drain_events()
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return before, rss, held / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--flows", type=int, default=50)
    args = parser.parse_args()
    subscribers, flows = args.subscribers, args.flows
    before, rss, held = memory(subscribers, flows)  # first, before the rate runs free memory
    total = subscribers * flows
    print(
        f"carrier-grade NAT, pure engine in one process (the daemon's imports loaded): "
        f"{subscribers} subscribers x {flows} UDP flows = {total:,} mappings, "
        f"pool of {len(POOL)} addresses, blocks of 512"
    )
    print(
        f"  memory: RSS {before:.0f} MiB before, {rss:.0f} MiB with every mapping live; "
        f"the engine holds {held:.1f} MiB (tracemalloc)   target: RSS < 150 MB"
    )
    with_blocks = setup_rate(subscribers, flows, cgnat=True)
    without = setup_rate(subscribers, flows, cgnat=False)
    print(f"  new mappings/s with port blocks     {with_blocks:>10,.0f}   target: >= 20,000")
    print(f"  new mappings/s without (same pool)  {without:>10,.0f}")


if __name__ == "__main__":
    main()
