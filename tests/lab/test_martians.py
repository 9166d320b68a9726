"""One forged datagram must not start a loop between the main router and the PBX (issue 11).

main-branch's router `main` has the WAN address 203.0.113.1 and forwards
UDP 5060 to the PBX. A datagram sent from the internet segment as
203.0.113.1:5060 -> 203.0.113.1:5060 used to go through that forward; the
PBX answered its error to 203.0.113.1:5060, which the router
hairpinned back to the PBX through the same forward, and the PBX answered
that answer, about 12 000 packets a second until `down`.

Here stun1 (a host on the internet segment) sends that one frame with
scapy out of its own interface, so it stays on the lab's internet bridge.
The router must drop it as a martian source, once, and nothing may move
after: neither the router's hairpin and inbound counters nor the PBX's
UDP datagram count. And a legitimate peer's SIP response (an answer to
nothing) gets no answer from the PBX, while the same peer's next request,
an INVITE from a phone it does not know, gets its 403.

Behind a carrier (double NAT) a router's WAN sits on a private LAN: the
sources there are honest, and only the router's own LAN is martian on it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from natlab.endpoints.control import ask
from natlab.lab import Lab
from natlab.lab.endpoints import control_path
from natlab.lab.naming import lab_dir
from natlab.topology import parse_topology

pytestmark = pytest.mark.natlab

MAIN_BRANCH = Path(__file__).resolve().parents[2] / "topologies" / "main-branch.yaml"
WAN = "203.0.113.1"
FORGE = """
import sys
from scapy.all import IP, UDP, Ether, conf, getmacbyip, sendp
wan = sys.argv[1]
iface = conf.route.route(wan)[0]
mac = getmacbyip(wan)
assert mac, f"no ARP answer from {wan}"
frame = Ether(dst=mac) / IP(src=wan, dst=wan) / UDP(sport=5060, dport=5060)
invite = (
    b"INVITE sip:phone-b@203.0.113.1 SIP/2.0\\r\\n"
    b"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKf\\r\\n"
    b"From: <sip:x@203.0.113.1>;tag=1\\r\\nTo: <sip:phone-b@203.0.113.1>\\r\\nCall-ID: forged\\r\\n"
    b"CSeq: 1 INVITE\\r\\nContent-Length: 0\\r\\n\\r\\n"
)
sendp(frame / invite, iface=iface, count=1, verbose=False)
"""
FORGED_PING = """
import sys
from scapy.all import ICMP, IP, send
send(IP(src=sys.argv[1], dst=sys.argv[2]) / ICMP(id=7), count=1, verbose=False)
"""
# Double NAT: home's WAN sits on the carrier's private LAN, next to a neighbour.
CARRIER = """
name: carrier
segments:
  internet: {subnet: 203.0.113.0/24}
  carrier-lan: {subnet: 10.64.0.0/24}
  home-lan: {subnet: 192.168.1.0/24}
routers:
  carrier:
    wan: {segment: internet}
    lan: {segment: carrier-lan}
    nat: symmetric
  home:
    wan: {segment: carrier-lan}
    lan: {segment: home-lan}
    nat: full-cone
hosts:
  neighbour: {segment: carrier-lan}
  laptop: {segment: home-lan}
  server: {segment: internet}
"""
PEER = """
import json, socket, sys
wan = sys.argv[1]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(5)
def message(start, call, method):
    return (
        f"{start}\\r\\nVia: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK{call};rport\\r\\n"
        f"From: <sip:peer@{wan}>;tag=p\\r\\nTo: <sip:phone-b@{wan}>;tag=q\\r\\n"
        f"Call-ID: {call}\\r\\nCSeq: 1 {method}\\r\\nContent-Length: 0\\r\\n\\r\\n"
    ).encode()
sock.sendto(message("SIP/2.0 403 Forbidden", "answer", "INVITE"), (wan, 5060))
sock.sendto(message(f"BYE sip:phone-b@{wan} SIP/2.0", "probe", "BYE"), (wan, 5060))
data, source = sock.recvfrom(65535)
head = data.decode().split("\\r\\n")
call = next(line.split(":", 1)[1].strip() for line in head if line.startswith("Call-ID"))
print(json.dumps({"from": list(source), "status": head[0], "call": call}))
"""
# what a loop between the router and the PBX through the forward would move
LOOP_COUNTERS = ("hairpinned", "local", "dropped_martian_source")


def pbx_counters(lab: Lab) -> dict[str, int]:
    return ask(control_path(lab_dir(lab.name), "pbx"), {"op": "counters"})["counters"]


def loop_counters(lab: Lab) -> dict[str, int]:
    counters = lab.router("main").counters()
    return {
        **{name: counters[name] for name in LOOP_COUNTERS},
        "pbx_datagrams": pbx_counters(lab)["datagrams"],
    }


def martian_drops(lab: Lab, router: str = "main") -> list[dict]:
    return [e for e in lab.router(router).events().events if e.reason == "martian-source"]


def test_a_forged_packet_from_the_router_s_own_address_starts_no_loop(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    before = loop_counters(lab)
    assert before["dropped_martian_source"] == 0

    forged = lab.exec("stun1", [sys.executable, "-c", FORGE, WAN], capture_output=True, text=True)
    assert forged.returncode == 0, forged.stderr
    deadline = time.monotonic() + 5
    while not martian_drops(lab) and time.monotonic() < deadline:
        time.sleep(0.05)
    [drop] = martian_drops(lab)
    assert (drop.src, drop.dst, drop.direction) == (f"{WAN}:5060", f"{WAN}:5060", "inbound")
    assert "the router's own address" in drop.detail

    after = loop_counters(lab)
    time.sleep(1.0)  # a loop runs thousands of rounds in this second; nothing may move
    later = loop_counters(lab)
    assert after == {**before, "dropped_martian_source": 1}
    assert later == after


def test_the_pbx_does_not_answer_a_response_from_a_legitimate_peer(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    before = pbx_counters(lab)
    peer = lab.exec("stun1", [sys.executable, "-c", PEER, WAN], capture_output=True, text=True)
    assert peer.returncode == 0, peer.stderr
    got = json.loads(peer.stdout)
    # the first answer is the BYE's: the response sent before it got none
    assert got["from"] == [WAN, 5060]
    assert (got["status"], got["call"]) == ("SIP/2.0 481 Call/Transaction Does Not Exist", "probe")
    after = pbx_counters(lab)
    assert after["datagrams"] - before["datagrams"] == 2
    assert after["unanswered_errors"] - before["unanswered_errors"] == 1
    assert after["errors_sent"] - before["errors_sent"] == 1


def test_behind_a_carrier_private_sources_pass_and_only_the_home_lan_is_martian(natlab_lab):
    """A router's WAN on another router's private LAN: private sources there are honest."""
    lab = natlab_lab(parse_topology(CARRIER, "carrier.yaml"))
    home_wan = str(lab.topology.routers["home"].wan.address)
    server = str(lab.topology.hosts["server"].interfaces[0].address)

    def ping(node: str, target: str) -> int:
        return lab.exec(node, ["ping", "-c1", "-W2", target], capture_output=True).returncode

    assert ping("laptop", server) == 0  # out through both NATs, and the reply back in
    assert ping("neighbour", home_wan) == 0  # a private source on home's WAN segment
    forged = lab.exec(
        "neighbour",
        [sys.executable, "-c", FORGED_PING, "192.168.1.50", home_wan],
        capture_output=True,
        text=True,
    )
    assert forged.returncode == 0, forged.stderr
    deadline = time.monotonic() + 5
    while not (drops := martian_drops(lab, "home")) and time.monotonic() < deadline:
        time.sleep(0.05)
    # home's own LAN arriving on its WAN is the one martian; the neighbour's pings were not
    assert [(e.src, e.dst) for e in drops] == [("192.168.1.50:7", f"{home_wan}:0")]
    assert ping("neighbour", home_wan) == 0
    assert len(martian_drops(lab, "home")) == 1
    assert not martian_drops(lab, "carrier")
