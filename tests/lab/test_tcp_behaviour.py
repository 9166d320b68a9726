"""TCP through natlab's routers (RFC 5382) and the hairpin modes, with real kernels both ends.

- An unsolicited SYN from the internet, crafted with scapy in a node there,
  gets nothing, a RST or ICMP port unreachable as `tcp_unsolicited` says,
  and never before 6 s (REQ-4); the sender sees it, and the kernel's own
  connect() there times out or is refused.
- Two LAN hosts behind two endpoint-independent routers open one TCP
  connection by both connecting at once (simultaneous open), with the
  kernels' own TCP; the first SYN, held by the peer's router, is withdrawn.
- A RST from either side, crafted with scapy, moves the mapping to
  transitory, as `natlab nat show` shows.
- hairpin on / unfiltered / off, seen from a LAN host, and what three
  discovery clients report for each (the table in docs/topology.md):
  natlab's probe, Debian's `stun` and coturn's `turnutils_natdiscovery -H`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from natlab.lab import Lab
from natlab.scenario.model import load_scenario
from natlab.scenario.probe import discover, stun_server
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
  stun1: {segment: internet, role: stun-server, addresses: 2}
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


@contextmanager
def running(lab: Lab, node: str, *argv: str, **kwargs: object) -> Iterator[subprocess.Popen]:
    """A Python program in a node, its stdout a pipe; killed on the way out."""
    process = lab.popen(node, [sys.executable, *argv], stdout=subprocess.PIPE, text=True, **kwargs)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


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
    set_nat(one, "r", "port-restricted", f"tcp_unsolicited={mode}")
    seen = tool(one, "s1", "syn", f"{WAN}:4600", "--sport", "33000", "--wait", "9")
    kernel = tool(one, "s1", "attempt", f"{WAN}:4601", "--wait", "9")  # s1's own connect()
    if mode == "drop":
        assert seen["answer"] == "none", seen
        assert kernel["result"] == "timeout", kernel
        return
    assert kernel["result"] == "ECONNREFUSED" and kernel["after"] >= 5.9, kernel
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
    set_nat(one, "r", "port-restricted", "tcp_unsolicited=rst")
    with running(one, "s1", TOOL, "serve", "8000", "--seconds", "25") as server:
        assert json.loads(server.stdout.readline()) == {"listening": 8000}
        assert tool(one, "inside", "connect", f"{S1}:8000", "--sport", "4700")["echo"] == "hello\n"
        filtered = tool(one, "s1", "syn", f"{WAN}:4700", "--sport", "33001", "--wait", "9")
        assert filtered["answer"] == "rst", filtered
        assert any(
            e.reason == "filtered-port" and e.src == f"{S1}:33001" for e in events(one, "r", "drop")
        )
        with running(
            one, "s1", TOOL, "syn", f"{WAN}:4800", "--sport", "33002", "--wait", "9"
        ) as sender:
            time.sleep(2)
            tool(one, "inside", "segment", f"{S1}:33002", "--sport", "4800", "--flags", "S")
            seen = json.loads(sender.communicate(timeout=20)[0].splitlines()[-1])
        assert seen["answer"] == "none", seen
    [withdrawn] = events(one, "r", "syn-withdrawn")
    assert (withdrawn.internal, withdrawn.remote) == ("10.0.0.10:4800", f"{S1}:33002")


@pytest.mark.parametrize("who", ["inside", "s1"])
def test_a_rst_from_either_side_makes_the_mapping_transitory(one: Lab, who: str) -> None:
    set_nat(one, "r", "port-restricted", "tcp_unsolicited=drop")
    port = {"inside": 4900, "s1": 4901}[who]  # a connection of its own for each
    internal = f"10.0.0.10:{port}"
    with running(one, "s1", TOOL, "serve", "8000", "--seconds", "20") as server:
        assert json.loads(server.stdout.readline()) == {"listening": 8000}
        connect = ("connect", f"{S1}:8000", "--sport", str(port), "--hold", "8")
        with running(one, "inside", TOOL, *connect) as client:
            assert json.loads(client.stdout.readline()) == {"connected": True}
            before = mapping_of(one, "r", internal)
            assert before["tcp_state"] == "established" and before["expires_in"] > 7000
            if who == "inside":
                tool(one, "inside", "segment", f"{S1}:8000", "--sport", str(port), "--flags", "R")
            else:
                tool(one, "s1", "segment", f"{WAN}:{port}", "--sport", "8000", "--flags", "R")
            after = mapping_of(one, "r", internal)
    assert after["tcp_state"] == "closing"
    assert after["expires_in"] <= 240  # tcp_transitory_timeout


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


def ask(agent: subprocess.Popen, **request: object) -> dict:
    """One request to a UDP agent (tools/udp_agent.py) and its answer."""
    agent.stdin.write(json.dumps(request) + "\n")
    agent.stdin.flush()
    return json.loads(agent.stdout.readline())


@pytest.mark.parametrize(
    ("mode", "arrives", "drop"),
    [("on", False, "filtered-address"), ("unfiltered", True, None), ("off", False, "hairpin-off")],
)
def test_hairpin_modes_from_a_lan_host(
    one: Lab, mode: str, arrives: bool, drop: str | None
) -> None:
    """inside has a mapping towards s1; inside2 sends to it. Port-restricted filtering: inside
    never sent to inside2's external endpoint."""
    set_nat(one, "r", "port-restricted", f"hairpin={mode}", "tcp_unsolicited=drop")
    with ExitStack() as stack:
        agents = {
            node: stack.enter_context(running(one, node, str(AGENT), stdin=subprocess.PIPE))
            for node in ("inside", "inside2", "s1")
        }
        for node, port in (("inside", 5100), ("inside2", 5200), ("s1", 5000)):
            ask(agents[node], op="bind", port=port)
        ask(agents["inside"], op="send", port=5100, to=[S1, 5000], data="out")
        [(_, mapped_port, _)] = ask(agents["s1"], op="recv", port=5000, wait=2.0)["got"]
        ask(agents["inside2"], op="send", port=5200, to=[WAN, mapped_port], data="hairpin")
        got = ask(agents["inside"], op="recv", port=5100, wait=1.0)["got"]
    if arrives:
        assert got == [[WAN, 5200, "hairpin"]], "from inside2's external endpoint (REQ-9)"
    else:
        assert got == []
        assert any(
            e.reason == drop and e.dst == f"{WAN}:{mapped_port}" for e in events(one, "r", "drop")
        )


# (preset, hairpin) -> what natlab's probe, `stun` and `turnutils_natdiscovery -H` report
DISCOVERY = {
    ("full-cone", "on"): (True, "will hairpin", True),
    ("full-cone", "off"): (False, "no hairpin", False),
    ("full-cone", "unfiltered"): (True, "will hairpin", True),
    ("port-restricted", "on"): (True, "will hairpin", False),
    ("port-restricted", "off"): (False, "no hairpin", False),
    ("port-restricted", "unfiltered"): (True, "will hairpin", True),
    ("symmetric", "on"): (False, "no hairpin", False),
    ("symmetric", "off"): (False, "no hairpin", False),
    ("symmetric", "unfiltered"): (True, "will hairpin", True),
}


@pytest.mark.parametrize(("preset", "mode"), DISCOVERY)
def test_what_discovery_clients_report_for_each_hairpin_mode(one: Lab, preset, mode) -> None:
    set_nat(one, "r", preset, f"hairpin={mode}", "tcp_unsolicited=drop")
    server = stun_server(one.topology, "inside", None)
    address, port = server.split(":")
    probe = discover(one, "inside", server).to_json()["hairpin"]
    classic = one.exec("inside", ["stun", server], capture_output=True, text=True, timeout=60)
    [primary] = re.findall(r"^Primary: (.*)$", classic.stdout, re.MULTILINE)
    coturn = one.exec(
        "inside",
        ["turnutils_natdiscovery", "-H", "-p", port, address],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    seen = (probe, primary.split(", ")[-1].strip(), "maybe a successful hairpinning" in coturn)
    assert seen == DISCOVERY[(preset, mode)], (primary, coturn)
