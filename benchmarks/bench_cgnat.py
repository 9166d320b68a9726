"""A carrier-grade NAT with 1000 subscribers x 50 flows each: memory and new-flow rate (issue 16).

Printed, never asserted.

- daemon: a lab with a real router daemon as the carrier (its inside
  100.64.0.0/16); one host on the inside sends each subscriber's 50 first
  packets from a raw socket, with 1000 subscribers' source addresses, to a
  server on the internet; then the daemon's RSS (VmRSS) with every mapping
  live, after `nat show` answered for all of them (needs root);
- engine: the same 1000 x 50 mappings in this process (which imports what
  the daemon imports first): its RSS, and what tracemalloc counts the
  engine holding;
- setup rate: NatEngine.outbound on first packets parsed beforehand, each
  making a new mapping (UDP, one subscriber's 50 flows after another), CPU
  time, best of three fresh engines; the same without `cgnat:` beside it.

Targets: RSS < 150 MB, >= 20 000 new mappings/s.

Run: python benchmarks/bench_cgnat.py [--subscribers 1000] [--flows 50] [--no-daemon]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

import natlab.router.daemon  # noqa: F401  (what a daemon imports is in the RSS)
from natlab.core.behaviour import behaviour_from
from natlab.core.cgnat import CgnatSettings
from natlab.core.craft import udp_packet
from natlab.core.engine import Action, NatConfig, NatEngine
from natlab.core.packets import Endpoint, Packet, parse
from natlab.lab import Lab
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

POOL = tuple(f"203.0.113.{i}" for i in range(10, 26))  # 16 public addresses
SERVER = Endpoint("198.51.100.1", 3478)
PAYLOAD = b"x" * 20


TOPOLOGY = """
name: bench-cgnat
segments:
  internet: {subnet: 203.0.113.0/24}
  carrier: {subnet: 100.64.0.0/16}
routers:
  carrier:
    wan: {segment: internet}
    lan: {segment: carrier}
    nat: {preset: restricted, udp_timeout: 3600}
    cgnat: {pool: 16, port_block: 512, blocks_per_subscriber: 4}
hosts:
  subscribers: {segment: carrier}
  server: {segment: internet, address: 203.0.113.100}
"""
# Runs in the inside host: UDP first packets from many subscribers' addresses (raw, IP_HDRINCL).
SENDER = """
import socket, struct, sys, time
subscribers, flows = int(sys.argv[1]), int(sys.argv[2])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
server = socket.inet_aton("203.0.113.100")
for s in range(subscribers):
    source = socket.inet_aton(f"100.64.{1 + s // 250}.{s % 250 + 1}")
    for f in range(flows):
        udp = struct.pack("!HHHH", 20000 + f, 9, 9, 0) + b"m"
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, 0, 0, 64, 17, 0, source, server)
        raw.sendto(ip + udp, ("203.0.113.100", 0))
    time.sleep(0.01)  # paced (5000 packets/s), so that a loaded machine's daemon keeps up
"""


def daemon_rss(subscribers: int, flows: int) -> tuple[int, float, dict[str, int]]:
    """Live mappings, the carrier daemon's RSS (MiB) after they were all made and shown,
    and its drop counters (a busy machine makes it miss some first packets)."""
    topology = parse_topology(TOPOLOGY, "bench-cgnat.yaml")
    with Lab(topology, unique_lab_name("bench-cgnat")) as lab:
        live = 0
        for _ in range(5):  # again if a burst overflowed the daemon's socket buffer
            lab.exec("subscribers", [sys.executable, "-c", SENDER, str(subscribers), str(flows)])
            head, mappings = lab.router("carrier").show()
            live = sum(1 for _ in mappings)
            lost = {k: v for k, v in head.counters.items() if k.startswith("dropped") and v}
            if live >= subscribers * flows:
                break
        pid = lab.router("carrier").ping().pid
        with open(f"/proc/{pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return live, rss / 1024, lost


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
    parser.add_argument("--no-daemon", action="store_true", help="Only the pure engine.")
    args = parser.parse_args()
    subscribers, flows = args.subscribers, args.flows
    if not args.no_daemon:
        live, rss_daemon, lost = daemon_rss(subscribers, flows)
        print(
            f"carrier-grade NAT router daemon, {subscribers} subscribers x {flows} UDP flows: "
            f"{live:,} live mappings, daemon RSS {rss_daemon:.0f} MiB   target: < 150 MB"
        )
        if lost:
            # the server's ICMP port unreachables go back to subscribers that are only
            # source addresses, so nobody answers the daemon's ARP for them
            print(f"  its drops: {lost}")
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
