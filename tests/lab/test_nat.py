"""natlab's NAT routers with real namespaces and real sockets (issue 3).

One router `r` between a LAN (inside, inside2) and the internet (s1, s2).
Each test scripts UDP datagrams with an agent per node (tools/udp_agent.py)
and checks what arrives where, the way RFC 4787 describes each behaviour:
a host inside sends to S1; then S1 from the same port, S1 from another port
and S2 from another address each send to the mapping S1 saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.all import ICMP, TCP, rdpcap

from natlab.lab import Lab
from natlab.topology import parse_topology

pytestmark = pytest.mark.natlab

AGENT = Path(__file__).parent / "tools" / "udp_agent.py"
WAN = "203.0.113.1"
S1 = "203.0.113.10"
S2 = "203.0.113.20"
TOPOLOGY = """
name: nat-test
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.0.0.0/24}}
routers:
  r:
    wan: {{segment: internet, address: 203.0.113.1}}
    lan: {{segment: lan}}
    nat: {nat}
hosts:
  inside: {{segment: lan, address: 10.0.0.10}}
  inside2: {{segment: lan, address: 10.0.0.11}}
  s1: {{segment: internet, address: 203.0.113.10}}
  s2: {{segment: internet, address: 203.0.113.20}}
"""


class Agent:
    """A UDP agent inside one node of a lab; see tools/udp_agent.py."""

    def __init__(self, lab: Lab, node: str) -> None:
        self.node = node
        self.process = lab.popen(
            node,
            [sys.executable, str(AGENT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, **request: object) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the agent in {self.node} died"
        return json.loads(line)

    def bind(self, port: int) -> int:
        return self._ask(op="bind", port=port)["port"]

    def send(self, port: int, address: str, to_port: int, data: str) -> None:
        self._ask(op="send", port=port, to=[address, to_port], data=data)

    def recv(self, port: int, wait: float = 0.5) -> list[tuple[str, int, str]]:
        return [tuple(item) for item in self._ask(op="recv", port=port, wait=wait)["got"]]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def nat_lab(natlab_lab):
    """nat_lab(nat) -> (lab, agents by node) for the test topology with `nat:` set to nat."""
    agents: list[Agent] = []

    def make(nat: str) -> tuple[Lab, dict[str, Agent]]:
        lab = natlab_lab(parse_topology(TOPOLOGY.format(nat=nat), "nat-test.yaml"))
        by_node = {node: Agent(lab, node) for node in ("inside", "inside2", "s1", "s2")}
        agents.extend(by_node.values())
        return lab, by_node

    yield make
    for agent in agents:
        agent.close()


def open_mapping(agents: dict[str, Agent], port: int = 4000) -> tuple[str, int]:
    """inside:port sends to s1:5000; returns the mapping (external endpoint) s1 saw."""
    agents["inside"].bind(port)
    agents["s1"].bind(5000)
    agents["inside"].send(port, S1, 5000, "hello")
    got = agents["s1"].recv(5000, wait=2.0)
    assert len(got) == 1, f"s1 did not get inside's datagram through the NAT: {got}"
    address, mapped_port, data = got[0]
    assert (address, data) == (WAN, "hello"), "the datagram must leave with the WAN address"
    return address, mapped_port


SENDERS = {"s1:5000": (S1, 5000), "s1:5001": (S1, 5001), "s2:5000": (S2, 5000)}
# preset -> which of SENDERS get in through the mapping
FILTERING = {
    "full-cone": {"s1:5000", "s1:5001", "s2:5000"},
    "restricted": {"s1:5000", "s1:5001"},
    "port-restricted": {"s1:5000"},
    "symmetric": {"s1:5000"},
}


@pytest.mark.parametrize("preset", FILTERING)
def test_filtering_lets_in_what_the_preset_says(nat_lab, preset):
    lab, agents = nat_lab(preset)
    mapped = open_mapping(agents)
    agents["s1"].bind(5001)
    agents["s2"].bind(5000)
    agents["s1"].send(5000, *mapped, "s1:5000")
    agents["s1"].send(5001, *mapped, "s1:5001")
    agents["s2"].send(5000, *mapped, "s2:5000")
    got = agents["inside"].recv(4000, wait=1.0)
    assert {data for _, _, data in got} == FILTERING[preset]
    for address, port, data in got:
        assert (address, port) == SENDERS[data], "inbound datagrams keep their real source"
    dropped = [e for e in lab.router("r").events().events if e.kind == "drop"]
    assert len(dropped) == 3 - len(FILTERING[preset])
    if preset == "restricted":
        assert {e.reason for e in dropped} == {"filtered-address"}


@pytest.mark.parametrize(
    ("preset", "same"),
    [("full-cone", True), ("restricted", True), ("port-restricted", True), ("symmetric", False)],
)
def test_mapping_seen_by_two_servers(nat_lab, preset, same):
    _, agents = nat_lab(preset)
    agents["inside"].bind(4000)
    agents["s1"].bind(5000)
    agents["s2"].bind(5000)
    agents["inside"].send(4000, S1, 5000, "to s1")
    agents["inside"].send(4000, S2, 5000, "to s2")
    [(_, port1, _)] = agents["s1"].recv(5000, wait=2.0)
    [(_, port2, _)] = agents["s2"].recv(5000, wait=2.0)
    assert (port1 == port2) is same
    if same:
        assert port1 == 4000, "port preservation keeps the internal port when it is free"


def test_hairpin_carries_the_external_source_and_can_be_switched_off(nat_lab):
    lab, agents = nat_lab("full-cone")
    mapped = open_mapping(agents)
    agents["inside2"].bind(4100)
    agents["inside2"].send(4100, *mapped, "hairpin")
    [(address, port, data)] = agents["inside"].recv(4000, wait=2.0)
    assert (address, port, data) == (WAN, 4100, "hairpin"), "from inside2's external endpoint"

    natlab("nat", "set", "r", "hairpin=off", "--lab", lab.name)
    mapped = open_mapping(agents, port=4001)
    agents["inside2"].send(4100, *mapped, "hairpin")
    assert agents["inside"].recv(4001, wait=1.0) == []
    assert any(e.reason == "hairpin-off" for e in lab.router("r").events().events)


def test_mapping_expires_with_the_lab_clock(nat_lab):
    lab, agents = nat_lab("{preset: full-cone, udp_timeout: 30}")
    mapped = open_mapping(agents)
    agents["s1"].send(5000, *mapped, "before")
    assert [d for _, _, d in agents["inside"].recv(4000, wait=1.0)] == ["before"]
    natlab("clock", "advance", lab.name, "31s")
    agents["s1"].send(5000, *mapped, "after")
    assert agents["inside"].recv(4000, wait=1.0) == []
    assert "expired" in natlab("nat", "events", "r", "--lab", lab.name)
    events = lab.router("r").events().events
    assert any(e.kind == "drop" and e.reason == "expired" for e in events)


def test_busy_flows_go_through_the_flow_cache_and_stop_at_a_flush(nat_lab):
    """Past their first packets, flows are replayed from the cache, checksums and all."""
    lab, agents = nat_lab("port-restricted")
    mapped = open_mapping(agents)
    for i in range(50):
        agents["inside"].send(4000, S1, 5000, f"out {i}")
        agents["s1"].send(5000, *mapped, f"in {i}")
    # The receivers' kernels drop datagrams with a bad checksum: all must arrive.
    assert [d for _, _, d in agents["s1"].recv(5000, wait=1.0)] == [f"out {i}" for i in range(50)]
    assert [d for _, _, d in agents["inside"].recv(4000, wait=1.0)] == [
        f"in {i}" for i in range(50)
    ]
    counters = lab.router("r").counters()
    assert (counters["translated_out"], counters["translated_in"]) == (51, 50)
    assert counters["flow_cache_hits"] >= 95  # all but the first packets of each direction

    natlab("nat", "set", "r", "symmetric", "--lab", lab.name)  # flushes every mapping
    agents["s1"].send(5000, *mapped, "after the flush")
    assert agents["inside"].recv(4000, wait=1.0) == []
    assert lab.router("r").counters()["translated_in"] == 50


FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(30000):
    s.sendto(b"x" * 1200, (sys.argv[1], 9))
"""


def test_frames_the_daemon_had_no_room_for_are_counted_and_told(nat_lab):
    """Kept off the CPU (SIGSTOP) while a LAN host floods, the daemon says what it lost."""
    lab, _ = nat_lab("full-cone")
    daemon = next(p["pid"] for p in lab.status()["processes"] if p["node"] == "r")
    os.kill(daemon, signal.SIGSTOP)
    try:
        lab.exec("inside", [sys.executable, "-c", FLOOD, S1], check=True)
    finally:
        os.kill(daemon, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while not lab.router("r").counters().get("dropped_receive_overflow"):
        assert time.monotonic() < deadline, "no overflow counted"
        time.sleep(0.1)
    [event] = [e for e in lab.router("r").events().events if e.reason == "receive-overflow"]
    assert event.port == "lan" and event.count > 1000
    assert "came in faster than the daemon could read them" in natlab(
        "nat", "events", "r", "--lab", lab.name
    )


def test_router_kernel_never_answers_for_translated_traffic(nat_lab, tmp_path):
    """Probes to the WAN address at closed ports: no RST, no ICMP, from anyone."""
    lab, agents = nat_lab("port-restricted")
    open_mapping(agents)
    capture = tmp_path / "s1.pcap"
    tcpdump = lab.popen(
        "s1",
        ["tcpdump", "-n", "-U", "-i", "internet", "-w", str(capture), "icmp or tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_capture(tcpdump, capture)
        agents["s1"].send(5000, WAN, 4000, "to the mapping from s1, allowed")
        agents["s1"].send(5000, WAN, 9, "closed port")
        agents["s2"].bind(5000)
        agents["s2"].send(5000, WAN, 4000, "filtered")
        connect = lab.exec(
            "s1",
            [
                sys.executable,
                "-c",
                "import socket\n"
                "try:\n"
                f"    socket.create_connection(('{WAN}', 80), timeout=1)\n"
                "    print('connected')\n"
                "except ConnectionRefusedError:\n"
                "    print('refused')\n"
                "except TimeoutError:\n"
                "    print('timeout')\n",
            ],
            capture_output=True,
            text=True,
        )
        assert connect.stdout.strip() == "timeout", "a SYN to the WAN must get no RST"
        time.sleep(0.3)
    finally:
        tcpdump.terminate()
        tcpdump.wait()
    packets = rdpcap(str(capture))
    syns = [p for p in packets if TCP in p and p[TCP].flags & 0x02]
    assert syns, "the capture saw the SYNs s1 sent, so it was listening"
    answers = [p for p in packets if ICMP in p or (TCP in p and p[TCP].flags & 0x04)]
    assert answers == [], f"the router's kernel answered: {[p.summary() for p in answers]}"


def wait_for_capture(tcpdump: subprocess.Popen, capture: Path) -> None:
    deadline = time.monotonic() + 5
    while not capture.exists() or capture.stat().st_size == 0:
        assert tcpdump.poll() is None, tcpdump.stderr.read() if tcpdump.stderr else ""
        assert time.monotonic() < deadline, "tcpdump did not start"
        time.sleep(0.05)


def natlab(*args: str) -> str:
    """Run the natlab command as a user would; its output, after checking it succeeded."""
    done = subprocess.run([sys.executable, "-m", "natlab", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"natlab {' '.join(args)}: {done.stderr}"
    return done.stdout
