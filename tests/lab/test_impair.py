"""Link impairments measured through a real router daemon, with ping and iperf3 (issue 15).

Each test measures what the link does and compares it with what was set:
added round-trip time, the fraction lost, the rate iperf3 gets, and that a
seed repeats its drop pattern. Tolerances are the issue's; nothing is timed
for speed.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from natlab.core.impair import parse_settings
from natlab.lab import Lab
from natlab.scenario.explain import rtp_line
from natlab.scenario.model import parse_scenario
from natlab.scenario.runner import run_scenario
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

from .conftest import NATLAB

pytestmark = pytest.mark.natlab

SERVER = "203.0.113.10"
ROUND_TRIPS = Path(__file__).parent / "tools" / "round_trips.py"
TOPOLOGY = """
name: impair
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.0.0.0/24}}
routers:
  r:
    wan: {{segment: internet, address: 203.0.113.1{impair}}}
    lan: {{segment: lan}}
hosts:
  inside: {{segment: lan, address: 10.0.0.10}}
  server: {{segment: internet, address: 203.0.113.10}}
"""
_REPLY = re.compile(r"icmp_seq=(\d+) .*time=([\d.]+) ms")


@pytest.fixture
def impair_lab(natlab_lab):
    def make(impair: str = "") -> Lab:
        text = TOPOLOGY.format(impair=f", impair: {impair}" if impair else "")
        return natlab_lab(parse_topology(text, "impair.yaml"))

    return make


def ping(lab: Lab, count: int, interval: float) -> dict[int, float]:
    """icmp_seq -> round-trip ms of every echo that came back (ping from iputils)."""
    done = lab.exec(
        "inside",
        ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2", SERVER],
        capture_output=True,
        text=True,
    )
    return {int(seq): float(ms) for seq, ms in _REPLY.findall(done.stdout)}


def round_trips(lab: Lab, count: int) -> list[float]:
    """ICMP echo round trips inside -> server -> inside in ms, one at a time, timed by the
    kernels (tools/round_trips.py): a busy machine's late wake-ups are not counted."""
    done = lab.exec(
        "inside", [sys.executable, str(ROUND_TRIPS), SERVER, str(count)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_delay_adds_twice_its_value_to_a_round_trip(impair_lab) -> None:
    lab = impair_lab()
    plain = statistics.median(round_trips(lab, 200))
    done = subprocess.run(
        [*NATLAB, "link", "set", "r", "wan", "delay=50ms", "--lab", lab.name],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "internet: delay=50ms seed=0" in done.stdout
    delayed = statistics.median(round_trips(lab, 200))
    router = lab.router("r")
    daemon = router.ping().pid
    assert os.sched_getscheduler(daemon) == os.SCHED_FIFO  # while it holds frames
    router.link_set("wan", parse_settings(["none"]))
    assert os.sched_getscheduler(daemon) == os.SCHED_OTHER
    print(f"median RTT: {plain:.3f} ms unimpaired, {delayed:.3f} ms with delay=50ms on wan")
    assert abs(delayed - plain - 100.0) <= 2.0


def test_ten_percent_loss_over_5000_packets(impair_lab) -> None:
    lab = impair_lab()
    router = lab.router("r")
    ping(lab, 5, 0.01)
    router.link_set("wan", parse_settings(["out.loss=10%", "seed=1"]))
    mark = router.mark()
    replies = ping(lab, 5000, 0.001)
    lost = 5000 - len(replies)
    print(f"lost {lost} of 5000 echo requests ({lost / 50:.2f} %)")
    assert abs(lost / 5000 - 0.10) <= 0.02
    drops = [e for e in router.events(mark).events if e.reason == "impairment-loss"]
    assert len(drops) == lost  # every loss is an event with its reason
    assert drops[0].port == "internet" and drops[0].dst == SERVER
    assert drops[0].detail.startswith("impairment: loss on internet out")
    shown = subprocess.run(
        [*NATLAB, "link", "show", "r", "--json", "--lab", lab.name], capture_output=True, text=True
    )
    document = json.loads(shown.stdout)
    assert document["schema"] == "natlab/link/1"
    assert document["links"][0]["counters"] == {"out_lost": lost}
    assert document["links"][0]["described"] == "out.loss=10% seed=1"
    wrong = subprocess.run(
        [*NATLAB, "link", "set", "r", "dsl", "loss=1%", "--lab", lab.name],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2
    assert "router 'r' has no interface 'dsl'" in wrong.stderr


def test_the_same_seed_drops_the_same_packets(impair_lab) -> None:
    lab = impair_lab("{seed: 7, out: {loss: 30%}}")  # from the topology first
    router = lab.router("r")
    first = set(ping(lab, 400, 0.002))
    router.link_set("wan", parse_settings(["out.loss=30%", "seed=7"]))  # starts the seed again
    again = set(ping(lab, 400, 0.002))
    router.link_set("wan", parse_settings(["out.loss=30%", "seed=8"]))
    other = set(ping(lab, 400, 0.002))
    print(f"answered: {len(first)}, {len(again)} with seed 7; {len(other)} with seed 8")
    assert 0.6 * 400 < len(first) < 0.8 * 400
    assert first == again
    assert first != other


def test_a_rate_limit_caps_iperf3(impair_lab) -> None:
    lab = impair_lab()
    payload = 1400
    frame = payload + 8 + 20 + 14  # what the link carries: UDP, IPv4 and Ethernet headers
    server = lab.popen("server", ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    try:
        ping(lab, 3, 0.01)
        lab.router("r").link_set("wan", parse_settings(["out.rate=1mbit", "out.queue=30"]))
        done = lab.exec(
            "inside",
            ["iperf3", "-c", SERVER, "-u", "-b", "2M", "-l", str(payload), "-t", "5", "-J"],
            capture_output=True,
            text=True,
        )
    finally:
        server.wait(timeout=30)
    summary = json.loads(done.stdout)["end"]["sum"]
    received = summary["packets"] - summary["lost_packets"]
    link_rate = received * frame * 8 / summary["seconds"]
    print(f"iperf3 offered 2 Mbit/s; the link carried {link_rate / 1e6:.3f} Mbit/s")
    assert abs(link_rate - 1_000_000) <= 50_000


CALL_OVER_A_LOSSY_LINK = """
topology: main-branch
nat: {branch1: full-cone, branch2: full-cone}
steps:
  - wait-registered: [phone-b, phone-c]
  - link: {router: branch1, iface: wan, impair: {loss: 5%, delay: 30ms, jitter: 10ms, seed: 5}}
  - call: {from: phone-b, to: phone-c, seconds: 4}
"""


def test_a_call_over_a_lossy_link_reports_what_its_receivers_measured() -> None:
    """The scenario's link step impairs branch1's WAN; both phones measure loss and jitter
    (RFC 3550), and the explanation names the impairment's drops."""
    scenario = parse_scenario(CALL_OVER_A_LOSSY_LINK, "lossy-call.yaml")
    result = run_scenario(scenario, unique_lab_name("impair-call"))
    link, call = result.steps[1], result.steps[2]
    assert link.passed and link.text == (
        "link set branch1 wan loss=5% delay=30ms jitter=10ms seed=5"
    )
    report = call.call_report
    assert report is not None and report.peer_rtp is not None, call.error
    print(rtp_line(report))
    for counts in (report.rtp, report.peer_rtp):  # what phone-b, then phone-c received
        assert counts.received > 100
        assert 0.01 < counts.lost / (counts.received + counts.lost) < 0.12
        assert 2.0 < counts.jitter_ms < 12.0  # +-10 ms uniform: mean |D| 6.7 ms
    assert any(group.reason == "impairment-loss" for group in call.drops)
    assert any("impairment: loss on" in line for line in call.explanation)
