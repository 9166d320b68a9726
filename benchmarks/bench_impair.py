"""natlab's dataplane with link impairments set, against the same router without (issue 15).

The topology of bench_dataplane.py (one router between a client and a
server), brought up once. Printed, never asserted:

- small-UDP throughput flat out (iperf3) without an impairment and with
  delay 20 ms + loss 1 % on the WAN, alternated over three rounds (the
  machine's load moves under both alike), and the loss at 50 000
  packets/s offered with that impairment set;
- delay accuracy: UDP ping-pong with 20 ms set on the WAN's outbound
  direction only, so that every round trip crosses one impaired traversal:
  the median and p99 of what it adds over the unimpaired median, less 20 ms
  (the client's and the echo's own wake-ups included), and the daemon's own
  lateness as `natlab link show` reports it.

Run as root: python benchmarks/bench_impair.py [--seconds 3] [--lab NAME]
Targets (issue 15): impaired flat-out rate >= 80 % of the unimpaired one, no
loss beyond the configured 1 % at 50 000 pps; the added delay within 0.5 ms
of 20 ms at the median, 2 ms at p99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench_dataplane import ECHO, PINGPONG, SERVER, TOPOLOGY, _percentile, iperf

from natlab.core.impair import parse_settings
from natlab.lab import Lab
from natlab.topology import parse_topology

IMPAIRED = ["delay=20ms", "loss=1%"]
DELAYED_OUT = ["out.delay=20ms"]
PINGPONGS = 1000
ROUNDS = 3


def pingpong(lab: Lab) -> list[float]:
    """Round trips in microseconds (the first 100 are left out: ARP and the mapping)."""
    done = lab.exec(
        "client", [sys.executable, "-c", PINGPONG, SERVER, str(PINGPONGS)], capture_output=True
    )
    return json.loads(done.stdout)


def measure(name: str, seconds: float) -> dict:
    topology = parse_topology(
        TOPOLOGY.replace("bench-dp", name).replace("{sip_alg}", "off"), "bench-impair.yaml"
    )
    with Lab(topology, name) as lab:
        router = lab.router("r")
        servers = [
            lab.popen("server", ["iperf3", "-s"], stdout=subprocess.DEVNULL),
            lab.popen("server", [sys.executable, "-c", ECHO]),
        ]
        try:
            time.sleep(0.5)
            plain_rtts = pingpong(lab)
            plain, impaired = [], []
            for _ in range(ROUNDS):  # alternated: the machine's load moves under both alike
                router.link_set("wan", parse_settings(["none"]))
                plain.append(iperf(lab, None, seconds))
                router.link_set("wan", parse_settings(IMPAIRED))
                impaired.append(iperf(lab, None, seconds))
            at_50k = iperf(lab, 50_000, seconds)
            router.link_set("wan", parse_settings(DELAYED_OUT))
            delayed_rtts = pingpong(lab)
            links = router.links().to_json()
        finally:
            for server in servers:
                server.kill()
                server.wait()
    return {
        "plain": plain,
        "impaired": impaired,
        "at_50k": at_50k,
        "plain_rtts": plain_rtts,
        "delayed_rtts": delayed_rtts,
        "links": links,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per iperf3 run")
    parser.add_argument("--lab", default="bench-impair", help="the lab's name")
    args = parser.parse_args()
    result = measure(args.lab, args.seconds)

    at_50k = result["at_50k"]
    print(f"UDP, 172-byte payloads, one flow, flat out, {ROUNDS} rounds alternated")
    print("(received packets/s (loss %); the rounds' medians are compared)")
    medians = {}
    for name, label in (("plain", "unimpaired"), ("impaired", "delay 20 ms + loss 1 %")):
        runs = result[name]
        medians[name] = statistics.median(run["received_pps"] for run in runs)
        figures = ", ".join(
            f"{run['received_pps']:,.0f} ({run['loss_percent']:.2f})" for run in runs
        )
        print(f"  {label:<24} {figures}")
    print(f"  impaired / unimpaired: {medians['impaired'] / medians['plain']:.2f} (target >= 0.80)")
    print(
        f"  50 000 pps offered, impaired: sent {at_50k['sent_pps']:,.0f} pps, loss "
        f"{at_50k['loss_percent']:.2f} % (configured 1 %; target: no more)"
    )

    base = statistics.median(result["plain_rtts"])
    added = [rtt - base - 20_000 for rtt in result["delayed_rtts"]]
    print(f"\nDelay accuracy, 20 ms on one traversal of each of {PINGPONGS} UDP round trips")
    print(f"  unimpaired round trip: median {base:.1f} us")
    print(
        f"  added beyond 20 ms: median {statistics.median(added) / 1000:.3f} ms, "
        f"p99 {_percentile(added, 0.99) / 1000:.3f} ms  (target: 0.5 ms median, 2 ms p99)"
    )
    late = result["links"]["late"]
    print(
        f"  the daemon's own lateness (natlab link show), last {late['frames']:g} frames held: "
        f"median {late['median_ms']:.3f} ms, p99 {late['p99_ms']:.3f} ms"
    )


if __name__ == "__main__":
    main()
