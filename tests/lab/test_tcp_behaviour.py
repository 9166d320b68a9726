"""TCP through natlab's routers (RFC 5382) and the hairpin modes, with real kernels both ends.

- An unsolicited SYN from the internet, crafted with scapy in a node there,
  gets nothing, a RST or ICMP port unreachable as `tcp_unsolicited` says,
  and never before 6 s (REQ-4); the sender sees it.
- Two LAN hosts behind two endpoint-independent routers open one TCP
  connection by both connecting at once (simultaneous open), with the
  kernels' own TCP; the first SYN, held by the peer's router, is withdrawn.
- A RST from either side, crafted with scapy, moves the mapping to
  transitory, as `natlab nat show` shows.
- hairpin on / unfiltered / off, seen from a LAN host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from natlab.lab import Lab
from natlab.scenario.model import load_scenario
from natlab.scenario.runner import RunHooks, run_scenario
from natlab.topology import parse_topology
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

TOOL = str(Path(__file__).parent / "tools" / "tcp_tool.py")
AGENT = Path(__file__).parent / "tools" / "udp_agent.py"
WAN = "203.0.113.1"
S1 = "203.0.113.10"
ONE_ROUTER = """
name: tcp-hairpin-one
segments:
  internet: {subnet: 203.0.113.0/24}
  lan: {subnet: 10.0.0.0/24}
routers:
  r:
    wan: {segment: internet, address: 203.0.113.1}
    lan: {segment: lan}
    nat: {preset: port-restricted, tcp_transitory_timeout: 240}
hosts:
  inside: {segment: lan, address: 10.0.0.10}
  inside2: {segment: lan, address: 10.0.0.11}
  s1: {segment: internet, address: 203.0.113.10}
"""


@pytest.fixture(scope="module")
def one() -> Lab:
    topology = parse_topology(ONE_ROUTER, "test_tcp_behaviour.py")
    with Lab(topology, unique_lab_name(topology.name)) as lab:
        yield lab


def natlab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "natlab", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"natlab {' '.join(args)}: {done.stderr}"
    return done.stdout


def tool(lab: Lab, node: str, *args: str, timeout: float = 30) -> dict:
    done = lab.exec(
        node, [sys.executable, TOOL, *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def set_nat(lab: Lab, router: str, *settings: str) -> None:
    natlab("nat", "set", router, *settings, "--lab", lab.name)


def mapping_of(lab: Lab, router: str, internal: str) -> dict:
    """The mapping of `internal` in `natlab nat show --json` (JSON lines: the head, then each)."""
    lines = natlab("nat", "show", router, "--lab", lab.name, "--json").splitlines()
    [found] = [m for m in map(json.loads, lines[1:]) if m["internal"] == internal]
    return found


def events(lab: Lab, router: str, kind: str) -> list:
    return [e for e in lab.router(router).events().events if e.kind == kind]


@pytest.mark.parametrize("mode", ["drop", "rst", "icmp"])
def test_unsolicited_syn_is_answered_as_configured(one: Lab, mode: str) -> None:
    set_nat(one, "r", f"tcp_unsolicited={mode}")
    seen = tool(one, "s1", "syn", f"{WAN}:4600", "--sport", "33000", "--wait", "9")
    if mode == "drop":
        assert seen["answer"] == "none", seen
        return
    assert seen["after"] >= 5.9, f"REQ-4: no answer before 6 s, got one after {seen['after']} s"
    if mode == "rst":
        assert seen["answer"] == "rst" and seen["from"] == f"{WAN}:4600"
        assert seen["flags"] == "RA"
        assert (seen["seq"], seen["ack"]) == (0, seen["syn_seq"] + 1)  # RFC 793, SYN without ACK
    else:
        assert seen["answer"] == "icmp" and seen["from"] == WAN
        assert (seen["type"], seen["code"]) == (3, 3)  # port unreachable, RFC 5382 REQ-4
        assert seen["quoted"] == "33000->4600 seq 123456"
    answered = [e for e in events(one, "r", "syn-answered") if e.remote == f"{S1}:33000"]
    assert answered[-1].answer == mode  # the module's lab: the rst test's answer came before


def test_a_filtered_syn_is_answered_and_a_later_outbound_syn_withdraws_one(one: Lab) -> None:
    """From both sides: s1 SYNs into a mapping that never sent to it (filtered), answered;
    then s1 SYNs first and inside's own SYN to s1 follows: a simultaneous open, no answer."""
    set_nat(one, "r", "tcp_unsolicited=rst")
    server = one.popen(
        "s1",
        [sys.executable, TOOL, "serve", "8000", "--seconds", "25"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(server.stdout.readline()) == {"listening": 8000}
        assert tool(one, "inside", "connect", f"{S1}:8000", "--sport", "4700")["echo"] == "hello\n"
        filtered = tool(one, "s1", "syn", f"{WAN}:4700", "--sport", "33001", "--wait", "9")
        assert filtered["answer"] == "rst", filtered
        assert any(
            e.reason == "filtered-port" and e.src == f"{S1}:33001" for e in events(one, "r", "drop")
        )
        sender = one.popen(
            "s1",
            [sys.executable, TOOL, "syn", f"{WAN}:4800", "--sport", "33002", "--wait", "9"],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        tool(one, "inside", "segment", f"{S1}:33002", "--sport", "4800", "--flags", "S")
        assert json.loads(sender.communicate(timeout=20)[0].splitlines()[-1])["answer"] == "none"
    finally:
        server.kill()
        server.wait()
    [withdrawn] = events(one, "r", "syn-withdrawn")
    assert (withdrawn.internal, withdrawn.remote) == ("10.0.0.10:4800", f"{S1}:33002")


@pytest.mark.parametrize("who", ["inside", "s1"])
def test_a_rst_from_either_side_makes_the_mapping_transitory(one: Lab, who: str) -> None:
    set_nat(one, "r", "tcp_unsolicited=drop")
    server = one.popen(
        "s1",
        [sys.executable, TOOL, "serve", "8000", "--seconds", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        server.stdout.readline()
        client = one.popen(
            "inside",
            [sys.executable, TOOL, "connect", f"{S1}:8000", "--sport", "4900", "--hold", "8"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(client.stdout.readline()) == {"connected": True}
        before = mapping_of(one, "r", "10.0.0.10:4900")
        assert before["tcp_state"] == "established" and before["expires_in"] > 7000
        if who == "inside":
            tool(one, "inside", "segment", f"{S1}:8000", "--sport", "4900", "--flags", "R")
        else:
            tool(one, "s1", "segment", f"{WAN}:4900", "--sport", "8000", "--flags", "R")
        after = mapping_of(one, "r", "10.0.0.10:4900")
        assert after["tcp_state"] == "closing"
        assert after["expires_in"] <= 240  # tcp_transitory_timeout
        client.kill()
        client.wait()
    finally:
        server.kill()
        server.wait()


class RouterState(RunHooks):
    """What the scenario's routers hold once its last step has ended, before the lab goes."""

    def __init__(self, last: int) -> None:
        self.last, self.lab, self.steps = last, None, 0
        self.events: dict[str, list] = {}
        self.mappings: dict[str, dict] = {}

    def lab_up(self, lab: Lab) -> None:
        self.lab = lab

    def step_ended(self, result) -> None:
        self.steps += 1
        if self.steps == self.last:
            for router, internal in (("home-a", "10.0.1.10:40001"), ("home-b", "10.0.2.10:40002")):
                self.events[router] = self.lab.router(router).events().events
                self.mappings[router] = mapping_of(self.lab, router, internal)


def test_simultaneous_open_through_two_eim_routers() -> None:
    """The built-in scenario tcp-hole-punching: both LAN hosts connect() to the other's
    public endpoint at once (SO_REUSEADDR, the kernels' TCP): one connection."""
    scenario = load_scenario("tcp-hole-punching")
    state = RouterState(last=len(scenario.steps))
    result = run_scenario(scenario, unique_lab_name("tcp-hairpin-punch"), hooks=state)
    assert result.passed, json.dumps(result.as_json(), indent=1)
    withdrawn = [e for events in state.events.values() for e in events if e.kind == "syn-withdrawn"]
    answered = [e for events in state.events.values() for e in events if e.kind == "syn-answered"]
    assert withdrawn, "alice's first SYN reached home-b before bob's SYN left: held, withdrawn"
    assert not answered, "no RST for a SYN of a simultaneous open (RFC 5382 REQ-4)"
    for router in ("home-a", "home-b"):
        assert state.mappings[router]["tcp_state"] in ("established", "closing")
        assert state.mappings[router]["external"].endswith((":40001", ":40002"))


class Agent:
    """A UDP agent in a node (tools/udp_agent.py), as in test_nat.py."""

    def __init__(self, lab: Lab, node: str) -> None:
        self.process = lab.popen(
            node,
            [sys.executable, str(AGENT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **request: object) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.mark.parametrize(
    ("mode", "arrives", "drop"),
    [("on", False, "filtered-address"), ("unfiltered", True, None), ("off", False, "hairpin-off")],
)
def test_hairpin_modes_from_a_lan_host(
    one: Lab, mode: str, arrives: bool, drop: str | None
) -> None:
    """inside has a mapping towards s1; inside2 sends to it. Port-restricted filtering: inside
    never sent to inside2's external endpoint."""
    set_nat(one, "r", f"hairpin={mode}", "tcp_unsolicited=drop")
    agents = {node: Agent(one, node) for node in ("inside", "inside2", "s1")}
    try:
        for node, port in (("inside", 5100), ("inside2", 5200), ("s1", 5000)):
            agents[node].ask(op="bind", port=port)
        agents["inside"].ask(op="send", port=5100, to=[S1, 5000], data="out")
        [(_, mapped_port, _)] = agents["s1"].ask(op="recv", port=5000, wait=2.0)["got"]
        agents["inside2"].ask(op="send", port=5200, to=[WAN, mapped_port], data="hairpin")
        got = agents["inside"].ask(op="recv", port=5100, wait=1.0)["got"]
        if arrives:
            assert got == [[WAN, 5200, "hairpin"]], "from inside2's external endpoint (REQ-9)"
        else:
            assert got == []
            assert any(
                e.reason == drop and e.dst == f"{WAN}:{mapped_port}"
                for e in events(one, "r", "drop")
            )
    finally:
        for agent in agents.values():
            agent.close()
