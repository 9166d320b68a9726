"""natlab's NAT dataplane against the kernel forwarding the same topology (issue 3).

One router between a client (LAN) and a server (internet), brought up once
with each dataplane. Printed, never asserted:

- small-UDP throughput (iperf3, 172-byte payloads, one flow) at a ladder of
  offered rates, with the loss at each, and flat out;
- round-trip time of UDP ping-pong through the router (median, p99) and
  what natlab adds over the kernel;
- resident memory of a router daemon holding 10 000 live mappings.

Run as root: python benchmarks/bench_dataplane.py [--seconds 3] [--lab NAME]
[--sip-alg rewrite] (the router's SIP ALG on: what it costs traffic that is not SIP)
Targets (issue 3): >= 50 000 packets/s with no loss below that rate, median
added latency < 200 us, p99 < 1 ms, < 50 MB RSS with 10 000 mappings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from natlab.lab import Lab
from natlab.topology import parse_topology

TOPOLOGY = """
name: bench-dp
segments:
  internet: {subnet: 198.51.100.0/24}
  lan: {subnet: 10.9.0.0/24}
routers:
  r:
    wan: {segment: internet, address: 198.51.100.1}
    lan: {segment: lan}
    nat: port-restricted
    sip_alg: {sip_alg}
hosts:
  client: {segment: lan}
  server: {segment: internet, address: 198.51.100.10}
"""
SERVER = "198.51.100.10"
PAYLOAD = 172
RATES = (25_000, 50_000, 75_000, 100_000, 150_000)
IPERF_ATTEMPTS = 5

ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
PINGPONG = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
rtts = []
for i in range(int(sys.argv[2]) + 100):
    start = time.perf_counter_ns()
    s.sendto(b"x" * 64, (sys.argv[1], 7))
    s.recvfrom(2048)
    if i >= 100:  # the first ones pay for ARP and the mapping
        rtts.append((time.perf_counter_ns() - start) / 1000)
print(json.dumps(rtts))
"""
MAPPINGS = """
import socket, sys, time
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 20000 + i))
    s.sendto(b"m", (sys.argv[1], 9))
    s.close()
    if i % 200 == 0:
        time.sleep(0.005)  # paced, so each datagram makes its mapping
"""


def iperf(lab: Lab, rate: int | None, seconds: float) -> dict:
    """One iperf3 run, against a one-off server of its own, again when iperf3 fails.

    iperf3's TCP control connection crosses the router too: over an impaired link its
    segments can be held or lost, and a server still closing the last test answered the
    next one busy, refused or reset. A fresh server per attempt starts each run clean.
    """
    bandwidth = "0" if rate is None else str(rate * PAYLOAD * 8)
    argv = ["iperf3", "-c", SERVER, "-u", "-l", str(PAYLOAD), "-b", bandwidth]
    # 4 MB socket buffers at both ends, for both dataplanes: a daemon that the
    # iperf3 processes kept off the CPU for a moment catches up in a burst,
    # which overflows the receiver's default 208 KB buffer.
    argv += ["-t", str(seconds), "-J", "-w", "4M"]
    for _ in range(IPERF_ATTEMPTS):
        server = lab.popen(
            "server", ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(0.3)  # until it listens
            overflows = _receive_buffer_errors(lab)
            done = lab.exec("client", argv, capture_output=True, text=True)
            overflows = _receive_buffer_errors(lab) - overflows
        finally:
            server.kill()
            server.wait()
        result = json.loads(done.stdout or '{"error": "iperf3 printed nothing"}')
        if "error" not in result:
            break
        print(f"  (iperf3: {result['error']}; once more)", file=sys.stderr)
        time.sleep(1)
    else:
        raise RuntimeError(f"iperf3 failed {IPERF_ATTEMPTS} times: {result['error']}")
    summary = result["end"]["sum"]
    sent = summary["packets"]
    lost = summary["lost_packets"]
    return {
        "offered_pps": rate,
        "sent_pps": sent / summary["seconds"],
        "received_pps": (sent - lost) / summary["seconds"],
        "loss_percent": 100.0 * lost / sent if sent else 0.0,
        "receiver_overflows": overflows,
    }


def _receive_buffer_errors(lab: Lab) -> int:
    """UDP datagrams the server's kernel dropped for a full socket buffer, so far."""
    snmp = lab.exec("server", ["cat", "/proc/net/snmp"], capture_output=True, text=True).stdout
    header, values = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")][:2]
    return int(values[header.index("RcvbufErrors")])


def measure(dataplane: str, seconds: float, lab_name: str, sip_alg: str) -> dict:
    topology = parse_topology(TOPOLOGY.replace("{sip_alg}", sip_alg), "bench-dataplane.yaml")
    with Lab(topology, lab_name, _dataplane(dataplane)) as lab:
        echo = lab.popen("server", [sys.executable, "-c", ECHO])
        try:
            time.sleep(0.5)
            ladder = [iperf(lab, rate, seconds) for rate in RATES]
            flat_out = iperf(lab, None, seconds)
            pingpong = lab.exec(
                "client", [sys.executable, "-c", PINGPONG, SERVER, "5000"], capture_output=True
            )
            rtts = json.loads(pingpong.stdout)
            rss = None
            if dataplane == "natlab":
                live = 0
                for _ in range(3):  # again if a burst overflowed the daemon's socket buffer
                    lab.exec("client", [sys.executable, "-c", MAPPINGS, SERVER, "10000"])
                    live = sum(1 for _ in lab.router("r").show()[1])  # every mapping sent
                    if live >= 10_000:
                        break
                daemon = next(p for p in lab.status()["processes"] if p["node"] == "r")
                # After `nat show` built its answer for every mapping, as a user would see it.
                rss = {"mappings": live, "rss_mb": _rss_mb(daemon["pid"])}
        finally:
            echo.kill()
            echo.wait()
    return {"ladder": ladder, "flat_out": flat_out, "rtts": rtts, "memory": rss}


def _dataplane(name: str):
    from natlab.lab.lab import DATAPLANES

    return DATAPLANES[name]()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise LookupError(pid)


def _cells(run: dict) -> str:
    return (
        f"{run['received_pps']:>15,.0f} {run['loss_percent']:>7.2f} {run['receiver_overflows']:>9,}"
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per iperf3 run")
    parser.add_argument("--lab", default="bench-dp", help="the lab's name")
    parser.add_argument(
        "--sip-alg", default="off", choices=("off", "rewrite", "broken"), help="the router's ALG"
    )
    args = parser.parse_args()
    results = {
        name: measure(name, args.seconds, args.lab, args.sip_alg) for name in ("kernel", "natlab")
    }
    print(f"router r: sip_alg {args.sip_alg}")

    print(f"UDP, {PAYLOAD}-byte payloads, one flow, {args.seconds:g} s per rate")
    print("(overflows: of the loss, datagrams the receiving socket had no room for)")
    print(
        f"{'offered pps':>12} | {'kernel recv pps':>15} {'loss %':>7} {'overflows':>9} | "
        f"{'natlab recv pps':>15} {'loss %':>7} {'overflows':>9}"
    )
    kernel = [*results["kernel"]["ladder"], results["kernel"]["flat_out"]]
    natlab = [*results["natlab"]["ladder"], results["natlab"]["flat_out"]]
    for k, n in zip(kernel, natlab, strict=True):
        offered = "flat out" if k["offered_pps"] is None else f"{k['offered_pps']:,}"
        print(f"{offered:>12} | {_cells(k)} | {_cells(n)}")
    ratio = natlab[-1]["received_pps"] / kernel[-1]["received_pps"]
    clean = [r["offered_pps"] for r in natlab[:-1] if r["loss_percent"] == 0]
    print(f"natlab / kernel, flat out: {ratio:.2f}")
    print(
        f"natlab without loss up to: {max(clean, default=0):,} pps offered "
        "(target: >= 50 000 pps with no loss)"
    )

    print("\nUDP round trip through the router, 5000 ping-pongs (us)")
    medians = {}
    for name in ("kernel", "natlab"):
        rtts = results[name]["rtts"]
        medians[name] = (statistics.median(rtts), _percentile(rtts, 0.99))
        print(f"  {name:>6}: median {medians[name][0]:7.1f}  p99 {medians[name][1]:7.1f}")
    added = [n - k for n, k in zip(medians["natlab"], medians["kernel"], strict=True)]
    print(
        f"  natlab adds per round trip (two traversals): median {added[0]:.1f} us, "
        f"p99 {added[1]:.1f} us  (target per traversal: median < 200 us, p99 < 1000 us)"
    )
    memory = results["natlab"]["memory"]
    print(
        f"\nrouter daemon RSS with {memory['mappings']:,} live mappings: "
        f"{memory['rss_mb']:.1f} MB (target < 50 MB)"
    )


if __name__ == "__main__":
    main()
