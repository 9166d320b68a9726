"""PCP MAP request to response through a router's port control (issue 16).

One router with `port_control: [pcp, natpmp]`, one LAN host. The host sends
MAP requests to the router's LAN address on UDP 5351, one at a time, and
times each answer: new mappings (a fresh internal port each time) and
renewals (the same mapping, same nonce). NAT-PMP mapping requests are
timed the same way for comparison. Printed, never asserted.

Run as root: python benchmarks/bench_port_control.py [--requests 2000]
Target (issue 16): PCP MAP request to response median < 5 ms.
"""

from __future__ import annotations

import argparse
import json
import sys

from natlab.lab import Lab
from natlab.topology import parse_topology

TOPOLOGY = """
name: bench-portctl
segments:
  internet: {subnet: 198.51.100.0/24}
  lan: {subnet: 10.9.0.0/24}
routers:
  r:
    wan: {segment: internet, address: 198.51.100.1}
    lan: {segment: lan}
    nat: port-restricted
    port_control: [pcp, natpmp]
hosts:
  client: {segment: lan}
"""
GATEWAY = "10.9.0.1"
TIMER = """
import json, socket, statistics, struct, sys, time
gateway, count = sys.argv[1], int(sys.argv[2])
me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
me.connect((gateway, 5351))
me.settimeout(2)
mapped = bytes(10) + b"\\xff\\xff" + socket.inet_aton(me.getsockname()[0])

def pcp(port, nonce):
    return struct.pack("!BBHI16s", 2, 1, 0, 3600, mapped) + struct.pack(
        "!12sB3xHH16s", nonce, 17, port, 0, bytes(16))

def natpmp(port):
    return struct.pack("!BBHHHI", 0, 1, 0, port, 0, 3600)

def timed(requests, result_at):
    times = []
    for request in requests:
        start = time.perf_counter()
        me.send(request)
        answer = me.recv(1100)
        times.append((time.perf_counter() - start) * 1000)
        assert answer[result_at] == 0, answer
    times.sort()
    return {"median_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}

print(json.dumps({
    "pcp new": timed([pcp(10000 + i, b"%012d" % i) for i in range(count)], 3),
    "pcp renew": timed([pcp(10000, b"%012d" % 0)] * count, 3),
    "natpmp new": timed([natpmp(30000 + i) for i in range(count)], 3),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests of each kind")
    args = parser.parse_args()
    topology = parse_topology(TOPOLOGY, "bench_port_control.py")
    with Lab(topology, "bench-portctl") as lab:
        done = lab.exec(
            "client",
            [sys.executable, "-c", TIMER, GATEWAY, str(args.requests)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode:
            sys.exit(f"the timing client failed: {done.stderr}")
        figures = json.loads(done.stdout)
    print(f"port control request -> response in the lab, {args.requests} requests each")
    for kind, figure in figures.items():
        print(f"  {kind:<11} median {figure['median_ms']:.3f} ms   p99 {figure['p99_ms']:.3f} ms")
    print(f"target: PCP MAP median < 5 ms -> {figures['pcp new']['median_ms']:.3f} ms")


if __name__ == "__main__":
    main()
