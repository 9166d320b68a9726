"""Port control on a router (issue 16): real clients open mappings the internet then reaches.

topologies/port-control.yaml: router `main` serves PCP, NAT-PMP and UPnP on
its LAN (192.168.1.1), router `closed` serves none. NAT-PMP is driven by
`natpmpc` (libnatpmp) and UPnP by `upnpc` (miniupnpc), both from Debian,
inside the LAN host `app`. No Debian package has a PCP client, so PCP is
driven by requests built with struct in a Python script on `app`.

miniupnpc 2.2 calls an IGD whose external address is in a reserved range
"not connected": the lab's internet is on documentation ranges
(203.0.113.0/24), so upnpc runs with -i ("use it anyway").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.natlab

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "port-control.yaml"
WAN = "203.0.113.1"
GATEWAY = "192.168.1.1"
APP = "192.168.1.2"

RECEIVE = """
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, source = s.recvfrom(2048)
        print(data.decode(), source[0], flush=True)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    print("ready", flush=True)
    while True:
        c, source = s.accept()
        print(c.recv(2048).decode(), source[0], flush=True)
        c.close()
"""
SEND = """
import socket, sys
proto, address, port, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(text.encode(), (address, port))
else:
    socket.create_connection((address, port), timeout=2).sendall(text.encode())
"""
PCP_MAP = """
import socket, struct, sys
lifetime, internal, suggested = (int(arg) for arg in sys.argv[1:4])
nonce = sys.argv[4]
mapped = bytes(10) + b"\\xff\\xff" + socket.inet_aton(sys.argv[5])
request = struct.pack("!BBHI16s", 2, 1, 0, lifetime, mapped)
request += struct.pack("!12sB3xHH16s", nonce.encode().ljust(12), 17, internal, suggested, bytes(16))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(request, (sys.argv[6], 5351))
answer, source = s.recvfrom(1100)
version, opcode, _, result, granted, epoch = struct.unpack_from("!BBBBII", answer)
port = int.from_bytes(answer[24 + 18 : 24 + 20], "big")
address = socket.inet_ntoa(answer[24 + 32 : 24 + 36])
print(source[0], source[1], version, opcode, result, granted, address, port)
"""


class Receiver:
    """A UDP or TCP listener in a node; what it received, line by line."""

    def __init__(self, lab, node: str, proto: str, port: int) -> None:
        self.process = lab.popen(
            node,
            [sys.executable, "-c", RECEIVE, proto, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"

    def got(self, text: str, timeout: float = 2.0) -> str | None:
        """The source address of the first `text` received within `timeout`, else None."""
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = self.process.stdout.readline().split()
            if line and line[0] == text:
                return line[1]
        return None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def send(lab, node: str, proto: str, address: str, port: int, text: str) -> None:
    lab.exec(node, [sys.executable, "-c", SEND, proto, address, str(port), text], timeout=10)


def run(lab, node: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return lab.exec(node, list(argv), capture_output=True, text=True, timeout=timeout)


def pcp_map(lab, node: str, lifetime: int, port: int, nonce: str, client: str, gateway: str,
            suggested: int = 0) -> subprocess.CompletedProcess:  # fmt: skip
    """A PCP MAP request for UDP `port` from `node` (header's client address `client`)."""
    argv = [str(lifetime), str(port), str(suggested), nonce, client, gateway]
    return run(lab, node, sys.executable, "-c", PCP_MAP, *argv)


def mappings(lab, router: str = "main") -> list:
    _, views = lab.router(router).show()
    return [view for view in views if view.origin != "traffic"]


def test_natpmpc_maps_a_udp_port_the_internet_reaches_then_deletes_it(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    receiver = Receiver(lab, "app", "udp", 5000)
    try:
        before = "hello-before"
        send(lab, "peer", "udp", WAN, 6000, before)
        assert receiver.got(before, 1.0) is None, "nothing is mapped yet"
        done = run(lab, "app", "natpmpc", "-g", GATEWAY, "-a", "6000", "5000", "udp", "60")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Mapped public port 6000 protocol UDP to local port 5000" in done.stdout
        assert f"Public IP address : {WAN}" in done.stdout
        [view] = mappings(lab)
        assert (view.origin, view.lifetime) == ("natpmp", 60.0)
        assert (view.internal, view.external) == (f"{APP}:5000", f"{WAN}:6000")
        send(lab, "peer", "udp", WAN, 6000, "hello-mapped")
        assert receiver.got("hello-mapped") == "203.0.113.50", "the peer reached the LAN host"
        deleted = run(lab, "app", "natpmpc", "-g", GATEWAY, "-a", "6000", "5000", "udp", "0")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert mappings(lab) == []
        send(lab, "peer", "udp", WAN, 6000, "hello-deleted")
        assert receiver.got("hello-deleted", 1.0) is None
    finally:
        receiver.stop()


def test_a_natpmp_mapping_expires_with_its_lifetime_on_clock_advance(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    receiver = Receiver(lab, "app", "udp", 5001)
    try:
        done = run(lab, "app", "natpmpc", "-g", GATEWAY, "-a", "6001", "5001", "udp", "120")
        assert done.returncode == 0, done.stdout + done.stderr
        lab.advance_clock(119)
        assert len(mappings(lab)) == 1
        lab.advance_clock(2)
        assert mappings(lab) == []
        send(lab, "peer", "udp", WAN, 6001, "too-late")
        assert receiver.got("too-late", 1.0) is None
        expired = [e for e in lab.router("main").events().events if e.kind == "mapping-expired"]
        assert any(e.external == f"{WAN}:6001" for e in expired)
    finally:
        receiver.stop()


def test_upnpc_maps_a_tcp_port_lists_and_deletes_it(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    receiver = Receiver(lab, "app", "tcp", 7000)
    try:
        added = run(lab, "app", "upnpc", "-i", "-a", APP, "7000", "7001", "tcp", "300")
        assert added.returncode == 0, added.stdout + added.stderr
        assert f"desc: http://{GATEWAY}:2869/rootDesc.xml" in added.stdout, "found by SSDP"
        assert f"ExternalIPAddress = {WAN}" in added.stdout
        assert f"external {WAN}:7001 TCP is redirected to internal {APP}:7000" in added.stdout
        [view] = mappings(lab)
        assert (view.origin, view.lifetime, view.proto) == ("upnp", 300.0, "tcp")
        send(lab, "peer", "tcp", WAN, 7001, "hello-tcp")
        assert receiver.got("hello-tcp") == "203.0.113.50", "the peer's TCP reached the LAN host"
        listed = run(lab, "app", "upnpc", "-i", "-l")
        assert f"TCP  7001->{APP}:7000" in listed.stdout, listed.stdout
        theirs = run(lab, "other", "upnpc", "-i", "-a", APP, "7002", "7003", "tcp", "300")
        assert "606" in theirs.stdout + theirs.stderr, "a host maps only its own ports"
        deleted = run(lab, "app", "upnpc", "-i", "-d", "7001", "tcp")
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert mappings(lab) == []
        refused = lab.exec(
            "peer", [sys.executable, "-c", SEND, "tcp", WAN, "7001", "x"], capture_output=True
        )
        assert refused.returncode != 0, "the port is closed again"
        description = f"http://{GATEWAY}:2869/rootDesc.xml"
        fetch = f"import urllib.request; urllib.request.urlopen('{description}', timeout=2)"
        assert run(lab, "app", sys.executable, "-c", fetch).returncode == 0
        run(lab, "peer", "ip", "route", "add", "192.168.1.0/24", "via", WAN)
        from_wan = run(lab, "peer", sys.executable, "-c", fetch)
        assert from_wan.returncode != 0, "the IGD answers its LAN only, never the WAN"
    finally:
        receiver.stop()


def test_pcp_map_from_struct_built_requests(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    receiver = Receiver(lab, "app", "udp", 5002)
    try:
        asked = pcp_map(lab, "app", 600, 5002, "n1", APP, GATEWAY, suggested=6002)
        assert asked.returncode == 0, asked.stderr
        source, sport, version, opcode, result, granted, address, port = asked.stdout.split()
        assert (source, sport, version, opcode, result) == (GATEWAY, "5351", "2", "129", "0")
        assert (granted, address, port) == ("600", WAN, "6002")
        send(lab, "peer", "udp", WAN, 6002, "hello-pcp")
        assert receiver.got("hello-pcp") == "203.0.113.50"
        [view] = mappings(lab)
        assert view.origin == "pcp"
        stolen = pcp_map(lab, "app", 0, 5002, "other-nonce", APP, GATEWAY)
        assert stolen.stdout.split()[4] == "2", "NOT_AUTHORIZED: another nonce"
        refusals = [
            e for e in lab.router("main").events().events if e.kind == "port-control-refused"
        ]
        assert any("NOT_AUTHORIZED" in e.detail for e in refusals), "nat events says why"
        mismatch = pcp_map(lab, "app", 600, 5003, "n2", "192.168.1.3", GATEWAY)
        assert mismatch.stdout.split()[4] == "12", "ADDRESS_MISMATCH: the header is not the source"
        deleted = pcp_map(lab, "app", 0, 5002, "n1", APP, GATEWAY)
        assert deleted.stdout.split()[4:6] == ["0", "0"]
        assert mappings(lab) == []
    finally:
        receiver.stop()


def test_a_router_without_port_control_maps_nothing(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    gateway = "192.168.2.1"
    natpmp = run(lab, "shut-in", "timeout", "3", "natpmpc", "-g", gateway, "-a", "6000", "5000",
                 "udp", "60")  # fmt: skip
    assert "Mapped public port" not in natpmp.stdout
    assert natpmp.returncode != 0
    upnp = run(lab, "shut-in", "upnpc", "-i", "-a", "192.168.2.2", "7000", "7001", "tcp", "60")
    assert "No IGD UPnP Device found" in upnp.stdout + upnp.stderr
    pcp = pcp_map(lab, "shut-in", 600, 5000, "n", "192.168.2.2", gateway)
    assert pcp.returncode != 0 and "timed out" in pcp.stderr
    assert mappings(lab, "closed") == []
