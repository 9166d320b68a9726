"""The router's SIP ALG with real SIP on the wire: a phone behind `home` sends an INVITE to
kamailio (a real SIP server nobody here wrote) on the internet, with the ALG off, rewriting
or broken; and baresip (a real softphone) calls through it.

What kamailio received is what it logs (the whole message, base64, from its own
parser's buffer); its stateless 486 answer comes back through the router to the
phone. The media check then sends UDP from the internet to the address and port
the SDP that arrived names, as the far phone would, and the phone says whether
any reached its RTP socket: the pinhole a working ALG opens, none with a broken one.

Over TCP: natlab's phones register and call through the rewriting ALG on one
connection (natlab's PBX, and kamailio), and thirty messages cross a lossy WAN
whole, however the segments the ALG rewrote are lost and sent again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from natlab.scenario.model import load_scenario
from natlab.scenario.runner import run_scenario
from natlab.sip import message as sip
from natlab.sip import sdp
from natlab.topology import parse_topology
from tests.lab.test_sip_software import ENOUGH, MEDIA_SECONDS, answered_by_baresip

pytestmark = pytest.mark.natlab

WAN = "203.0.113.2"
SERVER = "203.0.113.10"
PHONE = "10.30.0.2"
TOPOLOGY = """\
name: sip-alg
segments:
  internet: {{subnet: 203.0.113.0/24}}
  home-lan: {{subnet: 10.30.0.0/24}}
routers:
  home:
    wan: {{segment: internet, address: 203.0.113.2}}
    lan: {{segment: home-lan}}
    nat: {{preset: port-restricted, ports: random, seed: 3}}
    sip_alg: {mode}
hosts:
  phone: {{segment: home-lan, address: 10.30.0.2}}
  server: {{segment: internet, address: 203.0.113.10}}
"""
# ports: random, so that the broken ALG's private media port is not mapped by chance
KAMAILIO = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:203.0.113.10:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "sl.so"
request_route {
    xlog("L_ALERT", "NATLAB-RECEIVED $(mb{s.encode.base64})\\n");
    sl_send_reply("486", "Busy Here");
    exit;
}
"""
BODY = (
    "v=0\r\no=- 1 1 IN IP4 10.30.0.2\r\ns=-\r\nc=IN IP4 10.30.0.2\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    "INVITE sip:bob@203.0.113.10 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.30.0.2:5060;branch=z9hG4bK-natlab1;rport\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@10.30.0.2>;tag=1\r\nTo: <sip:bob@203.0.113.10>\r\n"
    "Call-ID: alg1@10.30.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.30.0.2:5060>\r\n"
    f"Content-Type: application/sdp\r\nContent-Length: {len(BODY)}\r\n\r\n{BODY}"
).encode()
# The phone: INVITE (retransmitted as SIP over UDP does until an answer), then it listens
# on its RTP port; it prints the answer it got and whether media reached it.
PHONE_SCRIPT = """
import json, socket, sys, time
invite = bytes.fromhex(sys.argv[1])
sig = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sig.bind(("10.30.0.2", 5060))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(("10.30.0.2", 4000))
sig.settimeout(0.5)
answer = None
for _ in range(16):
    sig.sendto(invite, ("203.0.113.10", 5060))
    try:
        answer = sig.recv(65535).decode("utf-8", "replace")
        break
    except socket.timeout:
        pass
rtp.settimeout(float(sys.argv[2]))
try:
    data, peer = rtp.recvfrom(2048)
    media = [data.decode(), f"{peer[0]}:{peer[1]}"]
except socket.timeout:
    media = None
print(json.dumps({"answer": answer, "media": media}))
"""
MEDIA_SCRIPT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("203.0.113.10", 7078))
for _ in range(15):
    try:
        s.sendto(b"rtp from the far phone", (sys.argv[1], int(sys.argv[2])))
    except OSError:
        pass  # the private address of the off case: no route, as on the internet
    time.sleep(0.2)
"""


def _received(log: Path, timeout: float = 10.0) -> bytes:
    """The first message kamailio logged as received."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"NATLAB-RECEIVED (\S+)", log.read_text(errors="replace"))
        if found:
            return base64.b64decode(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f"kamailio logged no message:\n{log.read_text(errors='replace')[-2000:]}")


def _kamailio(lab, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """kamailio in the server node, and the log it writes what it receives to.

    It forks worker children: stop it with _stop, which ends its whole group.
    """
    config = tmp_path / "kamailio.cfg"
    config.write_text(KAMAILIO)
    log = tmp_path / "kamailio.log"
    with log.open("w") as out:
        kamailio = lab.popen(
            "server",
            ["kamailio", "-f", str(config), "-DD", "-E", "-P", str(tmp_path / "k.pid")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return kamailio, log


def _stop(kamailio: subprocess.Popen) -> None:
    """kamailio and every worker it forked: its own process group (start_new_session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(kamailio.pid, signal.SIGKILL)
    kamailio.wait()


def _call(natlab_lab, tmp_path: Path, mode: str, media_seconds: float = 4.0):
    """One INVITE through `home` in `mode`: (what kamailio got, the phone's report, events)."""
    lab = natlab_lab(parse_topology(TOPOLOGY.format(mode=mode), "sip-alg.yaml"))
    kamailio, log = _kamailio(lab, tmp_path)
    phone = None
    try:
        phone = lab.popen(
            "phone",
            [sys.executable, "-c", PHONE_SCRIPT, INVITE.hex(), str(media_seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        arrived = _received(log)
        description = sdp.parse(sip.parse(arrived).body)
        (audio,) = description.media
        target = (sdp.connection_address(description, audio) or "", audio.port)
        lab.exec("server", [sys.executable, "-c", MEDIA_SCRIPT, target[0], str(target[1])])
        report = json.loads(phone.communicate(timeout=30)[0])
    finally:
        _stop(kamailio)
        if phone is not None and phone.poll() is None:
            phone.kill()
            phone.wait()
    events = lab.router("home").events().events
    return arrived, report, events


def test_rewrite_makes_the_invite_public_and_its_pinhole_lets_the_media_in(natlab_lab, tmp_path):
    arrived, report, events = _call(natlab_lab, tmp_path, "rewrite")
    message = sip.parse(arrived)
    assert message.get("Via").startswith(f"SIP/2.0/UDP {WAN}:")  # type: ignore[union-attr]
    assert f"@{WAN}:" in message.get("Contact")  # type: ignore[operator]
    description = sdp.parse(message.body)
    (audio,) = description.media
    assert sdp.connection_address(description, audio) == WAN
    assert audio.port != 4000
    assert int(message.get("Content-Length")) == len(message.body)  # type: ignore[arg-type]
    pinholes = [e for e in events if e.kind == "sip-pinhole"]
    assert f"{WAN}:{audio.port}" in [e.external for e in pinholes]
    assert f"{PHONE}:4001" in [e.internal for e in pinholes], "RTCP's pinhole too"
    headers = {e.header for e in events if e.kind == "sip-rewritten"}
    assert {"Via", "Contact", "SDP c=", "SDP m=audio", "Content-Length"} <= headers
    # kamailio's answer came back in with the phone's own Via restored
    assert report["answer"].startswith("SIP/2.0 486")
    assert f"Via: SIP/2.0/UDP {PHONE}:5060;" in report["answer"]
    assert report["media"] == ["rtp from the far phone", f"{SERVER}:7078"]


def test_broken_rings_but_the_media_finds_no_way_in(natlab_lab, tmp_path):
    arrived, report, events = _call(natlab_lab, tmp_path, "broken")
    description = sdp.parse(sip.parse(arrived).body)
    (audio,) = description.media
    assert (sdp.connection_address(description, audio), audio.port) == (WAN, 4000)
    assert report["answer"].startswith("SIP/2.0 486"), "signalling works: the call rings"
    assert report["media"] is None, "no audio"
    assert not [e for e in events if e.kind == "sip-pinhole"]
    assert [e for e in events if e.is_drop and e.dst == f"{WAN}:4000"], "the router dropped it"


def test_off_passes_the_invite_byte_for_byte(natlab_lab, tmp_path):
    arrived, report, events = _call(natlab_lab, tmp_path, "off", media_seconds=1.0)
    assert arrived == INVITE
    assert report["answer"].startswith("SIP/2.0 486")
    assert f"received={WAN}" in report["answer"], "kamailio saw the NAT by itself (RFC 3581)"
    assert report["media"] is None
    assert not [e for e in events if e.kind.startswith("sip-")]


TCP_SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.10", int(sys.argv[1]))); s.listen(1); s.settimeout(10)
c, _ = s.accept(); c.settimeout(5)
data = b""
while chunk := c.recv(65536):
    data += chunk
print(data.hex())
"""
# To 5060 from 5060, the port the INVITE's Via and Contact name (an ALG maps only the sender's
# own); to 5061 from any port
TCP_SEND = """
import socket, sys
port = int(sys.argv[1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port if port == 5060 else 0)); s.settimeout(5)
s.connect(("203.0.113.10", port))
s.sendall(bytes.fromhex(sys.argv[2])); s.shutdown(socket.SHUT_WR)
s.settimeout(5); assert s.recv(1) == b""; s.close()
"""


def test_tls_port_passes_untouched_and_tcp_on_5060_is_rewritten_whatever_its_length(
    natlab_lab, tmp_path
):
    """The same INVITE over TCP: on 5061 it arrives byte for byte, on 5060 rewritten, longer
    (10.30.0.2 -> 203.0.113.2), with the connection closing cleanly after it."""
    lab = natlab_lab(parse_topology(TOPOLOGY.format(mode="rewrite"), "sip-alg.yaml"))
    got = {}
    for port in (5061, 5060):
        sink = lab.popen(
            "server",
            [sys.executable, "-c", TCP_SINK, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.5)
            sent = lab.exec("phone", [sys.executable, "-c", TCP_SEND, str(port), INVITE.hex()])
            assert sent.returncode == 0, "the FIN exchange after the rewrite went through"
            got[port] = bytes.fromhex(sink.communicate(timeout=15)[0].strip())
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait()
    assert got[5061] == INVITE, "TLS's port is never looked at"
    message = sip.parse(got[5060])
    assert len(got[5060]) > len(INVITE)
    assert message.get("Via").startswith(f"SIP/2.0/UDP {WAN}:")  # type: ignore[union-attr]
    assert f"@{WAN}:" in message.get("Contact")  # type: ignore[operator]
    events = lab.router("home").events().events
    rewritten = [e for e in events if e.kind == "sip-rewritten"]
    assert rewritten and all(e.dst == f"{SERVER}:5060" and e.proto == "tcp" for e in rewritten)
    assert not [e for e in events if e.kind == "sip-untouched"]


LOSSY = TOPOLOGY.replace(
    "wan: {{segment: internet, address: 203.0.113.2}}",
    "wan: {{segment: internet, address: 203.0.113.2, impair: {{loss: 20%, seed: 5}}}}",
)
TCP_MANY = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5060)); s.settimeout(20); s.connect(("203.0.113.10", 5060))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio, kamailio: no Nagle
for message in sys.argv[1:]:
    s.sendall(bytes.fromhex(message)); time.sleep(0.03)
s.shutdown(socket.SHUT_WR)
s.settimeout(60); assert s.recv(1) == b""; s.close()
"""
LOSSY_SINK = TCP_SINK.replace("c.settimeout(5)", "c.settimeout(60)").replace(
    "s.settimeout(10)", "s.settimeout(20)"
)


def test_thirty_messages_on_one_connection_through_a_lossy_wan_arrive_whole(natlab_lab):
    """Real Linux TCP on both ends, 20% of the WAN's frames lost each way: segments the ALG
    rewrote are lost after it and retransmitted (joined with later ones or not), acks for
    shifted bytes are lost before it. The server reads thirty whole SIP messages, each
    rewritten or, where a segment ended inside a message, as sent; never a corrupted
    byte, and the connection closes cleanly both ways."""
    lab = natlab_lab(parse_topology(LOSSY.format(mode="rewrite"), "sip-alg.yaml"))
    messages = [INVITE.replace(b"alg1@", f"alg{n}@".encode()) for n in range(30)]
    sink = lab.popen(
        "server", [sys.executable, "-c", LOSSY_SINK, "5060"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.5)
        sent = lab.exec(
            "phone",
            [sys.executable, "-c", TCP_MANY, *(m.hex() for m in messages)],
            timeout=120,
            capture_output=True,
            text=True,
        )
        assert sent.returncode == 0, sent.stderr
        stream = bytes.fromhex(sink.communicate(timeout=120)[0].strip())
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    arrived = []
    while stream:
        cut = sip.split_stream(stream)
        assert cut is not None, f"a cut message at the end: {stream[:200]!r}"
        message, stream = cut
        arrived.append(sip.parse(message))
    assert [m.get("Call-ID") for m in arrived] == [f"alg{n}@10.30.0.2" for n in range(30)]
    rewritten = [m.get("Via").startswith(f"SIP/2.0/UDP {WAN}:") for m in arrived]  # type: ignore[union-attr]
    assert any(rewritten)
    for n, message in enumerate(arrived):
        assert rewritten[n] or message == sip.parse(messages[n]), f"message {n} corrupted"
    events = events_of(lab)
    assert [e for e in events if e.is_drop and e.reason == "impairment-loss"], "frames were lost"
    untouched = [e.detail for e in events if e.kind == "sip-untouched"]
    assert not [d for d in untouched if "does not fit" in d], untouched
    vias = len([e for e in events if e.kind == "sip-rewritten" and e.header == "Via"])
    assert vias > 30, "some rewritten segments were lost after the router, sent again"


PHONES = """\
name: sip-alg-tcp
segments:
  internet: {{subnet: 203.0.113.0/24}}
  home-lan: {{subnet: 10.30.0.0/24}}
routers:
  home:
    wan: {{segment: internet, address: 203.0.113.2}}
    lan: {{segment: home-lan}}
    nat: {{preset: port-restricted, ports: random, seed: 3}}
    sip_alg: rewrite
hosts:
  pbx: {{segment: internet, address: 203.0.113.10, role: pbx, {pbx}}}
  phone-a: {{segment: home-lan, address: 10.30.0.2, role: phone{phone_a}}}
  phone-c: {{segment: internet, address: 203.0.113.20, role: phone}}
"""


def _registered(phone, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (status := phone.status()).registered:
        assert time.monotonic() < deadline, f"{phone.name} did not register: {status}"
        time.sleep(0.1)
    return status


@pytest.mark.parametrize("pbx", ["relay: nat", "server: kamailio"], ids=["natlab-pbx", "kamailio"])
def test_a_phone_over_tcp_through_the_rewriting_alg_calls_both_ways_on_one_connection(
    natlab_lab, pbx
):
    """phone-a registers over TCP (natlab phones' default) through `home`'s rewriting ALG,
    then calls phone-c, is called by it, and calls again, on the TCP connection it registered
    on: REGISTER and its authenticated retry, INVITEs, ACKs, BYEs, keepalives, each rewrite
    changing the length of its segment.

    Its Contact names the port it listens on: the ALG opens a pinhole there that only the PBX
    gets through and names it (nf_conntrack_sip's expectation), so the Contact shows no NAT.
    natlab's PBX, NAT-aware by the connection, calls phone-a down it; kamailio, which sees
    NAT only in the message (nat_uac_test 19), calls the Contact: a connection of its own
    through the pinhole, as it would through a Linux router's ALG. Each call offers only
    phone-a's own address (mode host): two-way audio needs the SDP rewritten over TCP and
    its media pinholes. The registration never breaks: the sequence shift kept the
    connection alive.
    """
    lab = natlab_lab(parse_topology(PHONES.format(pbx=pbx, phone_a=""), "sip-alg-tcp.yaml"))
    a, c = lab.phone("phone-a"), lab.phone("phone-c")
    registered = _registered(a)
    _registered(c)
    assert registered.transport == "tcp"
    calls = [
        a.call("phone-c", 1.0, "host"),
        c.call("phone-a", 1.0, "host"),
        a.call("phone-c", 1.0, "host"),
    ]
    assert [call.verdict for call in calls] == ["two-way"] * 3, calls
    status = a.status()
    assert status.registered and status.since == registered.since, "never registered again"
    assert status.attempts == registered.attempts
    events = events_of(lab)
    outbound = [e for e in events if e.kind == "sip-rewritten" and e.direction == "outbound"]
    assert {e.proto for e in outbound} == {"tcp"}
    headers = {e.header for e in outbound}
    assert {"Via", "SDP c=", "SDP m=audio", "Content-Length"} <= headers
    (pinhole,) = _registration_pinholes(lab)
    assert f"@{pinhole.external};transport=tcp>" in _rewritten(outbound, "Contact")
    # phone-a's requests, on its connection (responses carry the PBX's Via)...
    (connection,) = {e.src for e in outbound if e.header == "Via"}
    assert connection.startswith(f"{WAN}:") and connection != pinhole.external
    pbx_opened = {e.src for e in outbound} - {connection}
    assert pbx_opened == (set() if pbx.startswith("relay") else {pinhole.external})
    messages = [e for e in outbound if e.header == "Via"]
    assert len(messages) >= 6, "...many of them: REGISTER x2, INVITE, ACK, BYE, ..."
    inbound = [e for e in events if e.kind == "sip-rewritten" and e.direction == "inbound"]
    assert {e.dst.split(":")[0] for e in inbound} == {PHONE}
    assert len([e for e in events if e.kind == "sip-pinhole"]) >= 3 * 2, "RTP and RTCP, 3 calls"
    refused = [
        e for e in events if e.kind == "sip-untouched" and "forwarded as it came" in e.detail
    ]
    assert not refused, refused


def _registration_pinholes(lab) -> list:
    """The mappings `home`'s ALG made for REGISTERs, as `natlab nat show` lists them."""
    _, views = lab.router("home").show()
    return [view for view in views if view.origin == "sip-alg"]


def _rewritten(events: list, header: str) -> str:
    return " ".join(e.new for e in events if e.header == header)


NAIVE = PHONES.replace("sip_alg: rewrite", "sip_alg: {alg}")


def _naive_pbx_behind(alg: str):
    """The topology with natlab's PBX a naive registrar and `home`'s ALG as given."""
    return parse_topology(NAIVE.format(pbx="nat_aware: false", alg=alg, phone_a=""), "naive.yaml")


CONNECT = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as error:
    print(f"refused: {error}")
"""


def test_a_naive_pbx_calls_a_tcp_phone_through_the_pinhole_of_its_register(natlab_lab):
    """natlab's PBX as a naive registrar (nat_aware: false) calls phone-a at its Contact, on
    a connection it opens there: through `home`'s rewriting ALG, the pinhole the REGISTER
    opened, listed by `natlab nat show` as the ALG's, lets the PBX in and no one else."""
    lab = natlab_lab(_naive_pbx_behind("rewrite"))
    a, c = lab.phone("phone-a"), lab.phone("phone-c")
    assert _registered(a).transport == "tcp"
    _registered(c)
    (pinhole,) = _registration_pinholes(lab)
    assert (pinhole.proto, pinhole.internal) == ("tcp", f"{PHONE}:5060")
    assert pinhole.permissions == [SERVER], "the registrar only"
    assert 0 < pinhole.lifetime <= 3600
    call = c.call("phone-a", 1.0, "host")
    assert call.verdict == "two-way", call
    events = events_of(lab)
    inbound = [e for e in events if e.kind == "sip-rewritten" and e.direction == "inbound"]
    assert {e.dst for e in inbound} >= {f"{PHONE}:5060"}, "the PBX came in through the pinhole"
    shown = subprocess.run(
        [sys.executable, "-m", "natlab", "nat", "show", "home", "--lab", lab.name],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},  # the table's rows whole
    )
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if f"{PHONE}:5060" in line]
    assert rows and "sip-alg" in rows[0], shown.stdout
    host, port = pinhole.external.split(":")
    tried = lab.exec("phone-c", [sys.executable, "-c", CONNECT, host, port], capture_output=True)
    assert b"refused" in tried.stdout, "phone-c is not the registrar"
    only = f"lets in only {SERVER}"
    assert [e for e in events_of(lab) if e.is_drop and only in e.detail and "203.0.113.20" in e.src]


def test_without_the_alg_a_naive_pbx_cannot_reach_a_tcp_phone(natlab_lab):
    """The same call with `sip_alg: off`: the Contact stays private, the PBX cannot reach it."""
    lab = natlab_lab(_naive_pbx_behind("off"))
    a, c = lab.phone("phone-a"), lab.phone("phone-c")
    _registered(a)
    _registered(c)
    call = c.call("phone-a", 1.0, "host")
    assert call.verdict != "two-way", call
    assert f"480 Temporarily Unavailable (cannot reach phone-a at {PHONE}:5060" in call.error
    assert not _registration_pinholes(lab)


def test_baresip_over_tcp_registers_and_calls_both_ways_through_the_rewriting_alg(natlab_lab):
    """phone-a is baresip over TCP (`sip: {transport: tcp}`) behind `home`'s rewriting ALG;
    natlab's PBX relays nothing and the lab has no STUN, so baresip's SDP names its private
    address and only the ALG's rewrite over TCP, and the pinholes it opens, let phone-c's
    RTP in. baresip calls phone-c, then phone-c calls baresip: both count the other's RTP."""
    topology = PHONES.format(pbx="relay: none", phone_a=", agent: baresip, sip: {transport: tcp}")
    lab = natlab_lab(parse_topology(topology, "sip-alg-baresip-tcp.yaml"))
    a, c = lab.baresip("phone-a"), lab.phone("phone-c")
    a.wait_registered()
    _registered(c)
    registration = lab.pbx().registrations()["phone-a"].describe()
    assert registration.startswith(f"over tcp from {WAN}:"), registration

    a.dial("phone-c")  # natlab's phone answers by itself
    a.wait_for("ESTABLISHED")
    time.sleep(MEDIA_SECONDS)
    calling = a.rtp()
    a.hang_up()
    a.wait_for(None)
    report, called = answered_by_baresip(c, a, "host")
    assert calling.received >= ENOUGH, f"phone-a heard only {calling} on its call"
    assert called.received >= ENOUGH, f"phone-a heard only {called} when called"
    assert report.rtp.received >= ENOUGH, f"phone-c heard only {report.rtp} ({report.error})"

    events = events_of(lab)
    sdp = [e for e in events if e.kind == "sip-rewritten" and e.header == "SDP c="]
    assert [(e.direction, e.proto) for e in sdp] == [("outbound", "tcp")] * 2, sdp
    (connection,) = {e.src for e in sdp}  # the connection it registered on
    assert registration.endswith(connection), (registration, connection)
    assert len([e for e in events if e.kind == "sip-pinhole"]) >= 2 * 2, "RTP and RTCP, 2 calls"


BARESIP_CONFIG = """\
sip_listen\t\t{listen}:5060
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module_app\t\taccount.so
module_app\t\tmenu.so
audio_player\t\taufile,{directory}/heard.wav
audio_source\t\taufile,{directory}/tone.wav
rtp_ports\t\t{rtp}
"""
HEARD = "incoming rtp for 'audio' established"  # what baresip says when RTP reaches it


def _baresip_dir(directory: Path, listen: str, rtp: str, account: str) -> Path:
    """A baresip config directory: its config, its account, 10 s of a 440 Hz tone to send."""
    directory.mkdir()
    config = BARESIP_CONFIG.format(listen=listen, directory=directory, rtp=rtp)
    (directory / "config").write_text(config)
    (directory / "accounts").write_text(f"{account};regint=0;audio_codecs=PCMU\n")
    with wave.open(str(directory / "tone.wav"), "wb") as tone:
        tone.setnchannels(1)
        tone.setsampwidth(2)
        tone.setframerate(8000)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(80_000))
        tone.writeframes(b"".join(struct.pack("<h", sample) for sample in samples))
    return directory


@pytest.mark.parametrize("mode", ["rewrite", "broken"])
def test_baresip_s_own_invite_is_rewritten(natlab_lab, tmp_path, mode):
    """A real softphone's INVITE (its own headers and SDP) is SIP the ALG reads and rewrites."""
    lab = natlab_lab(parse_topology(TOPOLOGY.format(mode=mode), "sip-alg.yaml"))
    phone_dir = _baresip_dir(tmp_path / "alice", PHONE, "4000-4009", f"<sip:alice@{PHONE}>")
    kamailio, log = _kamailio(lab, tmp_path)
    try:
        time.sleep(1.0)  # kamailio's children up; baresip does not retry a lost first INVITE
        baresip = _dial(lab, phone_dir, 5)
        arrived = sip.parse(_received(log))
    finally:
        _stop(kamailio)
    assert "486 Busy Here" in baresip, "kamailio's answer reached baresip"
    assert (arrived.get("User-Agent") or "").startswith("baresip")
    assert arrived.get("Via").startswith(f"SIP/2.0/UDP {WAN}:")  # type: ignore[union-attr]
    assert f"@{WAN}:" in arrived.get("Contact")  # type: ignore[operator]
    description = sdp.parse(arrived.body)
    (audio,) = description.media
    assert sdp.connection_address(description, audio) == WAN
    ports = [(e.old, e.new) for e in events_of(lab) if e.header == "SDP m=audio"]
    if mode == "rewrite":
        ((private, public),) = ports
        assert 4000 <= int(private) <= 4009, "baresip's own RTP port"
        assert int(public) == audio.port != int(private), "the public port of the pinhole"
    else:
        assert ports == [], "the broken ALG leaves the port"
        assert 4000 <= audio.port <= 4009, "baresip's private port, with the public address"


def _dial(lab, directory: Path, seconds: int) -> str:
    """baresip in the phone node calls bob on the server and quits after `seconds`: its output."""
    done = lab.exec(
        "phone",
        ["baresip", "-f", str(directory), "-e", f"/dial sip:bob@{SERVER}", "-t", str(seconds)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout + done.stderr


def events_of(lab) -> list:
    return lab.router("home").events().events


@pytest.mark.parametrize(
    ("mode", "alice_hears"), [("rewrite", True), ("broken", False)], ids=["rewrite", "broken"]
)
def test_a_baresip_call_through_the_alg(natlab_lab, tmp_path, mode, alice_hears):
    """alice (baresip behind `home`) calls bob (baresip on the internet, answering by itself).

    Through a rewriting ALG both hear each other: bob's RTP comes in through the
    pinhole. Through a broken one the call is answered and bob hears alice, but
    bob's RTP goes to the private port on the public address: alice hears nothing.
    """
    lab = natlab_lab(parse_topology(TOPOLOGY.format(mode=mode), "sip-alg.yaml"))
    alice = _baresip_dir(tmp_path / "alice", PHONE, "4000-4009", f"<sip:alice@{PHONE}>")
    bob = _baresip_dir(tmp_path / "bob", SERVER, "7000-7009", f"<sip:bob@{SERVER}>;answermode=auto")
    callee = lab.popen(
        "server",
        ["baresip", "-f", str(bob), "-t", "12"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)  # bob listening
        alice_said = _dial(lab, alice, 7)
        bob_said = callee.communicate(timeout=30)[0]
    finally:
        if callee.poll() is None:
            callee.kill()
            callee.wait()
    assert "Call established" in alice_said, "the call was answered"
    assert f"{HEARD}, receiving from {WAN}:" in bob_said, "bob hears alice"
    assert (HEARD in alice_said) is alice_hears
    drops = [e for e in events_of(lab) if e.is_drop and (e.dst or "").startswith(f"{WAN}:400")]
    assert bool(drops) is not alice_hears, "the router dropped bob's RTP to the private port"


def test_the_broken_alg_hides_the_nat_from_a_nat_aware_pbx_and_tls_or_no_alg_unhides_it(kernel):
    """The sip-alg-nat-aware-pbx scenario, with baresip behind each router: the PBX
    (relay: nat) relays exactly the calls of phones whose own messages show a NAT.

    A PBX relaying every call would make the broken ALG's calls two-way; one relaying
    none would leave bob's (no ALG) and phone-a's over TLS one-way: the expectations
    fail either way. The PBX's reasons name the private Contact it saw.
    """
    path = Path(__file__).resolve().parents[2] / "natlab/scenarios/sip-alg-nat-aware-pbx.yaml"
    result = run_scenario(load_scenario(path))
    said = {step.index + 1: step.media_relay for step in result.steps if step.call_report}
    assert result.passed, said
    hidden = "the PBX did not relay the media: neither {} nor {} looked behind NAT"
    assert said[2][0].startswith(hidden.format("phone-c", "alice"))
    assert said[3] == [
        "the PBX relayed the media: bob is behind NAT: Contact 192.168.2.2, seen from 203.0.113.3"
    ]
    assert said[5][0].startswith(hidden.format("phone-a", "phone-c"))
    assert said[7] == [
        "the PBX relayed the media: phone-a is behind NAT: Contact 192.168.1.3, "
        "seen from 203.0.113.2"
    ]
    assert not kernel.lab_namespaces(result.lab)
