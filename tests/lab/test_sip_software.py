"""Real SIP software in a lab: kamailio as the registrar, baresip phones behind NAT routers.

Nothing here talks to natlab's own phones or PBX: two baresip softphones
register with kamailio (digest auth, NAT handling by nathelper) and call each
other through it. Media is counted twice, by parties that do not trust each
other: baresip's own RTP counters (its audio stream's RTCP session, over its
control interface) and the NAT daemons' counters (packets translated into
each phone's LAN, or dropped by its filter). The SIP 200 alone proves nothing.

Which calls get media follows from the routers' behaviour, not from a table
of answers: a phone behind a NAT learns its public address by STUN and puts
it in its SDP, and nothing else (no ICE, no relay) helps, so `receives`
below says when a packet from the peer can pass the phone's router.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from natlab.core.behaviour import Behaviour
from natlab.lab import Lab
from natlab.lab.ledger import Ledger
from natlab.lab.naming import node_namespace
from natlab.lab.processes import PROGRAM, start_time
from natlab.scenario.verdict import fault_text
from natlab.topology.behaviour_input import nat_behaviour
from natlab.topology.lab_name import unique_lab_name

pytestmark = pytest.mark.natlab

TOPOLOGY = """\
name: {name}
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan-a: {{subnet: 10.61.1.0/24}}
  lan-b: {{subnet: 10.61.2.0/24}}
routers:
  ra: {{wan: {{segment: internet}}, lan: {{segment: lan-a}}, nat: {nat_a}}}
  rb: {{wan: {{segment: internet}}, lan: {{segment: lan-b}}, nat: {nat_b}}}
hosts:
  stun1: {{segment: internet, role: stun-server, addresses: 2}}
{hosts}"""
SOFTPHONES = """\
  pbx: {segment: internet, role: pbx, server: kamailio}
  alice: {segment: lan-a, role: phone, agent: baresip}
  bob: {segment: lan-b, role: phone, agent: baresip}
"""
SOFTPHONES_OVER_TCP = SOFTPHONES.replace(
    "agent: baresip}", "agent: baresip, sip: {transport: tcp}}"
)
BARESIP_AND_NATLAB_PHONE = """\
  pbx: {segment: internet, role: pbx}
  alice: {segment: lan-a, role: phone, agent: baresip}
  carol: {segment: lan-b, role: phone}
"""
MIXED_KAMAILIO = """\
  pbx: {segment: internet, role: pbx, server: kamailio}
  alice: {segment: lan-a, role: phone, agent: baresip}
  carol: {segment: lan-b, role: phone}
"""
NATLAB_PHONES_AND_KAMAILIO = """\
  pbx: {segment: internet, role: pbx, server: kamailio}
  carol: {segment: lan-a, role: phone}
  dave: {segment: lan-b, role: phone}
"""
MEDIA_SECONDS = 2.0  # baresip sends 50 RTP packets a second (20 ms ptime)
ENOUGH = 50  # packets: half of what two seconds carry


def receives(own: Behaviour, peer: Behaviour) -> bool:
    """Can RTP from the peer reach a phone behind `own`, each side sending to the other's
    STUN-learned address?

    The phone's STUN mapping is the one it uses towards the peer only if its
    mapping is endpoint-independent. Then its filter must let the peer's
    packets in: an endpoint-independent filter lets anyone in; an
    address-dependent one lets the peer's address in (the phone has sent
    there); an address-and-port-dependent one only the peer's port it sent to,
    which is the peer's real source port only if the peer's mapping is
    endpoint-independent too.
    """
    if own.mapping != "endpoint-independent":
        return False
    if own.filtering in ("endpoint-independent", "address-dependent"):
        return True
    return peer.mapping == "endpoint-independent"


def write_topology(
    folder: Path, name: str, nat_a: str, nat_b: str, hosts: str = SOFTPHONES
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TOPOLOGY.format(name=name, nat_a=nat_a, nat_b=nat_b, hosts=hosts))
    return path


def new_lab(natlab) -> str:
    name = unique_lab_name("sip-software")
    natlab.labs.append(name)
    return name


def up(
    natlab,
    folder: Path,
    nat_a: str = "full-cone",
    nat_b: str = "full-cone",
    hosts: str = SOFTPHONES,
) -> str:
    """A lab of the topology above, up (the test's cleanup takes it down); its name."""
    name = new_lab(natlab)
    path = write_topology(folder, name, nat_a, nat_b, hosts)
    done = natlab.run("up", str(path), "--name", name)
    assert done.returncode == 0, done.stderr
    return name


@pytest.fixture
def run_dir(private_natlab, monkeypatch):
    """The test's private state root, for the Lab API in this process too."""
    monkeypatch.setenv("NATLAB_RUN_DIR", str(private_natlab.run_dir))
    return private_natlab.run_dir


def translated_in(lab: Lab, router: str) -> int:
    return lab.router(router).counters()["translated_in"]


def filtered(lab: Lab, router: str) -> int:
    counters = lab.router(router).counters()
    return counters["dropped_filtered_address"] + counters["dropped_filtered_port"]


@pytest.mark.parametrize(
    ("nat_a", "nat_b", "transport"),
    [
        ("full-cone", "port-restricted", "udp"),
        ("restricted", "restricted", "udp"),
        ("port-restricted", "port-restricted", "udp"),
        ("symmetric", "full-cone", "udp"),
        ("symmetric", "port-restricted", "udp"),
        ("port-restricted", "port-restricted", "tcp"),
        ("symmetric", "port-restricted", "tcp"),
    ],
)
def test_baresip_phones_call_each_other_through_kamailio(
    private_natlab, run_dir, tmp_path, kernel, nat_a, nat_b, transport
):
    """Over UDP (baresip's default) or TCP (`sip: {transport: tcp}`): the SIP goes on the
    transport asked for, each phone's one connection to kamailio over TCP, none over UDP;
    the media, RTP over UDP either way, follows from the NATs alone."""
    hosts = SOFTPHONES_OVER_TCP if transport == "tcp" else SOFTPHONES
    name = up(private_natlab, tmp_path, nat_a, nat_b, hosts)
    lab = Lab.attach(name)
    alice, bob = lab.baresip("alice"), lab.baresip("bob")
    alice.wait_registered()
    bob.wait_registered()  # with kamailio, through their NATs, with digest auth
    kamailio = f"{lab.topology.hosts['pbx'].interfaces[0].address}:5060"

    def to_kamailio() -> dict[str, list[tuple[str, str]]]:
        """Each phone's TCP connections to kamailio."""
        return {
            phone: [
                c for c in kernel.tcp_connections(node_namespace(name, phone)) if c[1] == kamailio
            ]
            for phone in ("alice", "bob")
        }

    registered_on = to_kamailio()
    assert [len(c) for c in registered_on.values()] == [transport == "tcp"] * 2, registered_on

    before = {r: (translated_in(lab, r), filtered(lab, r)) for r in ("ra", "rb")}
    alice.dial("bob")  # a user of her registrar's domain: sip:bob@<kamailio>
    bob.wait_for("INCOMING")  # kamailio found bob's registration behind his NAT
    bob.answer()
    alice.wait_for("ESTABLISHED")
    bob.wait_for("ESTABLISHED")
    time.sleep(MEDIA_SECONDS)
    heard = {"alice": alice.rtp(), "bob": bob.rtp()}
    after = {r: (translated_in(lab, r), filtered(lab, r)) for r in ("ra", "rb")}
    bob.hang_up()  # the BYE goes back through kamailio and alice's NAT
    alice.wait_for(None)
    bob.wait_for(None)
    assert to_kamailio() == registered_on, "the call's SIP went on the registration's connection"

    behaviour = {"ra": nat_behaviour(nat_a), "rb": nat_behaviour(nat_b)}
    sides = {"alice": ("ra", "rb"), "bob": ("rb", "ra")}
    for phone, (own, peer) in sides.items():
        counts = heard[phone]
        assert counts.sent >= ENOUGH, f"{phone} sent only {counts}"
        into = after[own][0] - before[own][0]
        dropped = after[own][1] - before[own][1]
        log = (run_dir / lab.name / "nodes" / f"{phone}.log").read_text()[-2000:]
        if receives(behaviour[own], behaviour[peer]):
            assert counts.received >= ENOUGH, f"{phone} heard only {counts}; its log:\n{log}"
            assert into >= counts.received, f"{own} let {into} packets in, {phone} heard more"
        else:  # one-way (or no) audio: the phone's NAT filters the peer's media away
            assert counts.received == 0, f"{phone} heard {counts} through {own} ({nat_a})"
            assert dropped >= ENOUGH, f"{own} filtered only {dropped} packets"


def test_down_ends_kamailio_and_baresip_and_keeps_their_logs_until_then(
    private_natlab, run_dir, tmp_path
):
    natlab = private_natlab
    name = up(natlab, tmp_path)
    ledger = Ledger.load(name)
    assert ledger is not None
    programs = {p.node: p for p in ledger.processes if p.what == PROGRAM}
    assert set(programs) == {"pbx", "alice", "bob"}
    assert all(start_time(p.pid) == p.start for p in programs.values())
    state = run_dir / name
    assert "kamailio" in (state / "nodes" / "pbx.log").read_text()
    assert "baresip is ready" in (state / "nodes" / "alice.log").read_text()
    assert (state / "sip" / "pbx" / "kamailio.cfg").is_file()
    assert (state / "sip" / "bob" / "accounts").is_file()
    status = natlab.run("status", name)
    assert status.returncode == 0 and "running" in status.stdout

    down = natlab.run("down", name)
    assert down.returncode == 0, down.stderr
    assert [n for n, p in programs.items() if start_time(p.pid) == p.start] == []
    assert not state.exists()


def test_missing_sip_software_is_refused_before_anything_is_built(
    private_natlab, host_state, tmp_path, monkeypatch
):
    natlab = private_natlab
    name = new_lab(natlab)
    before = host_state.now()
    path = write_topology(tmp_path, name, "full-cone", "full-cone")
    monkeypatch.setitem(natlab.env, "PATH", "/nonexistent")
    up = natlab.run("up", str(path), "--name", name)
    assert up.returncode == 2
    assert "hosts.pbx.server" in up.stderr and "kamailio is not installed" in up.stderr
    assert "Traceback" not in up.stderr
    before.assert_same(host_state.now(), natlab.labs)


def test_a_sip_server_that_does_not_start_fails_up_with_its_log(
    private_natlab, host_state, tmp_path, monkeypatch
):
    """A kamailio that exits at once (here a stand-in on PATH): up says so, quotes its log,
    exits 2 and leaves nothing behind."""
    natlab = private_natlab
    name = new_lab(natlab)
    fake = tmp_path / "bin" / "kamailio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'ERROR: bind(203.0.113.5:5060) failed' >&2\nexit 255\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    before = host_state.now()
    path = write_topology(tmp_path, name, "full-cone", "full-cone")
    monkeypatch.setitem(natlab.env, "PATH", f"{fake.parent}:{os.environ['PATH']}")
    up = natlab.run("up", str(path), "--name", name)
    assert up.returncode == 2, up.stderr
    assert "kamailio of host 'pbx' did not start (exited 255)" in up.stderr
    assert "bind(203.0.113.5:5060) failed" in up.stderr
    before.assert_same(host_state.now(), natlab.labs)


SCENARIO = """\
name: {name}
about: two baresip phones call each other through kamailio
topology: {topology}
nat: {{ra: {nat_a}, rb: {nat_b}}}
steps:
  - wait-registered: [alice, bob]
  - call: {{from: alice, to: bob, seconds: 2}}
    expect: {{media: {media}}}
  - call: {{from: bob, to: alice, seconds: 2}}
    expect: {{media: {back}}}
"""


@pytest.mark.parametrize(
    ("nat_a", "nat_b", "media", "back"),
    [
        ("full-cone", "port-restricted", "two-way", "two-way"),
        (
            "symmetric",
            "full-cone",
            "one-way (caller hears nothing)",
            "one-way (callee hears nothing)",
        ),
        ("symmetric", "port-restricted", "none", "none"),
    ],
)
def test_scenario_call_steps_drive_baresip_phones(natlab, tmp_path, nat_a, nat_b, media, back):
    """`natlab run` with baresip parties: the verdict comes from both baresips' RTP counters.

    Behind a symmetric NAT alice's SDP carries a mapping that bob's packets
    cannot use (see `receives`): she hears nothing, whoever calls; if bob's
    NAT filters by port as well, he hears nothing either.
    """
    name = "sip-software"  # the scenario's lab: sip-software-<random>, taken down by `run`
    topology = write_topology(tmp_path, "sip-software-topology", "full-cone", "full-cone")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        SCENARIO.format(
            name=name,
            topology=topology.name,
            nat_a=nat_a,
            nat_b=nat_b,
            media=f'"{media}"',
            back=f'"{back}"',
        )
    )
    done = natlab.run("run", str(scenario), "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    calls = [s for s in result["steps"] if s["step"].startswith("call")]
    assert len(calls) == 2
    for step in calls:
        assert step["passed"], step
        report = step["report"]
        assert report["mode"] == "baresip"
        assert report["rtp"]["sent"] >= ENOUGH and report["peer_rtp"]["sent"] >= ENOUGH


def test_a_sip_server_that_dies_while_the_lab_is_up_is_a_fault_with_its_log(
    private_natlab, run_dir, tmp_path
):
    lab = Lab.attach(up(private_natlab, tmp_path))
    assert lab.deaths() == []
    state = lab.program_state("pbx")
    assert state is not None
    os.kill(state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not (found := lab.deaths()):
        assert time.monotonic() < deadline, "kamailio's death was never seen"
        time.sleep(0.1)
    (death,) = found
    assert (death.node, death.what, death.signal) == ("pbx", "kamailio", "SIGKILL")
    assert death.log and "natlab: the program was killed by SIGKILL" in death.log
    assert "its log ends:" in fault_text(found)


# -- with natlab's own SIP phones and PBX ------------------------------------------------


def wait_registered(phone, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not (status := phone.status()).registered:
        assert time.monotonic() < deadline, f"{phone.name} did not register: {status}"
        time.sleep(0.1)


def answered_by_baresip(caller, baresip, mode: str):
    """A natlab phone's 3 s call to baresip, which answers when told to: the caller's report,
    and the RTP baresip counted."""
    calling: dict = {}
    thread = threading.Thread(
        target=lambda: calling.setdefault("report", caller.call(baresip.name, 3.0, mode))
    )
    thread.start()
    try:
        baresip.wait_for("INCOMING")
        baresip.answer()
        baresip.wait_for("ESTABLISHED")
        time.sleep(MEDIA_SECONDS)
        heard = baresip.rtp()
    finally:
        thread.join(60)
    return calling["report"], heard


def test_baresip_registers_with_natlabs_pbx_and_calls_a_natlab_phone_both_ways(
    private_natlab, run_dir, tmp_path
):
    """baresip behind a full cone, natlab's phone behind a port-restricted NAT, natlab's PBX
    on the internet relaying their media (as an SBC does: natlab's phone answers a generic
    UA with its host address, which no one outside its LAN can reach).

    Each direction is counted by both: natlab's phone's own report (and the PBX
    relay in between), and baresip's counters.
    """
    lab = Lab.attach(
        up(private_natlab, tmp_path, "full-cone", "port-restricted", hosts=BARESIP_AND_NATLAB_PHONE)
    )
    alice, carol = lab.baresip("alice"), lab.phone("carol")
    alice.wait_registered()
    wait_registered(carol)
    registration = lab.pbx().registrations()["alice"]
    assert "udp" in registration.describe(), registration  # baresip's own REGISTER, with digest
    assert lab.pbx().relay("all") == "all"

    alice.dial("carol")  # baresip calls natlab's phone, which answers by itself
    alice.wait_for("ESTABLISHED")
    time.sleep(MEDIA_SECONDS)
    alice_heard = alice.rtp()
    alice.hang_up()
    alice.wait_for(None)
    deadline = time.monotonic() + 10
    while not (reports := [r for r in carol.reports() if r.role == "callee"]):
        assert time.monotonic() < deadline, "carol kept no report of alice's call"
        time.sleep(0.1)
    (callee,) = reports
    assert callee.caller == "alice"
    assert alice_heard.received >= ENOUGH, f"alice heard only {alice_heard}"
    assert callee.rtp.received >= ENOUGH, f"carol heard only {callee.rtp} ({callee.error})"

    report, alice_heard = answered_by_baresip(carol, alice, "host")
    assert report.callee == "alice"
    assert alice_heard.received >= ENOUGH, f"alice heard only {alice_heard}"
    assert report.rtp.received >= ENOUGH, f"carol heard only {report.rtp} ({report.error})"


def ladder(report) -> list[tuple[str, str]]:
    """The caller's SIP of a call: (sent or received, method or status code)."""
    return [(seen.direction, seen.summary.split()[0]) for seen in report.signalling]


def test_natlab_phones_register_with_kamailio_and_call_each_other_through_it(
    private_natlab, run_dir, tmp_path
):
    """natlab's phones behind two NATs, kamailio as their registrar and proxy: the call
    (ICE between the phones, kamailio passing the SDP through) carries media both ways,
    as both phones count it, and the routers let it in."""
    lab = Lab.attach(
        up(
            private_natlab,
            tmp_path,
            "full-cone",
            "port-restricted",
            hosts=NATLAB_PHONES_AND_KAMAILIO,
        )
    )
    carol, dave = lab.phone("carol"), lab.phone("dave")
    wait_registered(carol)
    wait_registered(dave)
    before = {r: translated_in(lab, r) for r in ("ra", "rb")}
    report = carol.call("dave", MEDIA_SECONDS, "ice")
    assert report.verdict == "two-way", report
    # kamailio challenged the INVITE (407) and carol answered it with her credentials
    summaries = ladder(report)
    assert ("received", "407") in summaries, summaries
    assert summaries.count(("sent", "INVITE")) == 2, summaries
    assert report.peer_rtp is not None  # dave's counts came back in kamailio-relayed BYE/200
    assert report.rtp.received >= ENOUGH and report.peer_rtp.received >= ENOUGH
    for router in ("ra", "rb"):
        assert translated_in(lab, router) - before[router] >= ENOUGH
    back = dave.call("carol", MEDIA_SECONDS, "srflx")
    assert back.verdict == "two-way", back


def test_a_natlab_phone_cancels_its_call_to_baresip_through_kamailio(
    private_natlab, run_dir, tmp_path
):
    """carol (natlab) calls alice (baresip, which rings until told to answer) through
    kamailio, which challenges the INVITE (407); carol hangs up after a second: kamailio
    forwards her CANCEL, baresip ends the INVITE with 487 and drops the call."""
    name = up(private_natlab, tmp_path, "full-cone", "port-restricted", hosts=MIXED_KAMAILIO)
    lab = Lab.attach(name)
    alice, carol = lab.baresip("alice"), lab.phone("carol")
    alice.wait_registered()
    wait_registered(carol)
    calling: dict = {}
    thread = threading.Thread(
        target=lambda: calling.setdefault("report", carol.call("alice", 1.0, "host", 1.5))
    )
    thread.start()
    try:
        alice.wait_for("INCOMING")  # ringing: nobody answers it
    finally:
        thread.join(60)
    report = calling["report"]
    assert report.cancelled, report
    assert report.error == "cancelled after 1.5 s, before the answer: 487 Request Terminated"
    summaries = ladder(report)
    assert ("received", "407") in summaries and ("sent", "CANCEL") in summaries, summaries
    assert summaries[-2:] == [("received", "487"), ("sent", "ACK")], summaries
    alice.wait_for(None)  # baresip dropped the call it was ringing for


MIXED_SCENARIO = """\
name: sip-software
topology: {topology}
steps:
  - wait-registered: [alice, carol]
  - call: {{from: alice, to: carol, seconds: 2}}
    expect: {{media: two-way}}
  - call: {{from: carol, to: alice, seconds: 2, mode: host}}
    expect: {{media: two-way}}
"""
PUBLIC_NATLAB_PHONE = """\
  pbx: {segment: internet, role: pbx}
  alice: {segment: lan-a, role: phone, agent: baresip}
  carol: {segment: internet, role: phone}
"""


def test_scenario_calls_between_baresip_and_a_natlab_phone(natlab, tmp_path):
    """baresip behind a NAT, natlab's phone on the internet, natlab's PBX: each calls the
    other, judged from baresip's counters on one side and natlab's phone's own on the other."""
    topology = write_topology(
        tmp_path, "sip-software-mixed", "port-restricted", "full-cone", PUBLIC_NATLAB_PHONE
    )
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(MIXED_SCENARIO.format(topology=topology.name))
    done = natlab.run("run", str(scenario), "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = json.loads(done.stdout)["steps"]
    first, second = (s["report"] for s in steps[1:])
    assert first["mode"] == "baresip" and second["mode"] == "host"
    for report in (first, second):
        assert report["peer_rtp"] is not None and report["error"] is None, report
        assert report["rtp"]["received"] >= ENOUGH and report["peer_rtp"]["received"] >= ENOUGH


def test_an_ice_caller_answered_by_baresip_without_ice_talks_both_ways(
    private_natlab, run_dir, tmp_path
):
    """carol (natlab, on the internet) calls in mode ice; baresip (no ICE, behind a full
    cone) answers with its STUN address and sends to carol's c=/m=: carol sends from that
    address (RFC 8839 3.2.3), so each hears the other, by both sides' counters."""
    name = up(private_natlab, tmp_path, "full-cone", "full-cone", hosts=PUBLIC_NATLAB_PHONE)
    lab = Lab.attach(name)
    alice, carol = lab.baresip("alice"), lab.phone("carol")
    alice.wait_registered()
    wait_registered(carol)
    report, alice_heard = answered_by_baresip(carol, alice, "ice")
    assert report.ice is None and report.cancelled is False, report  # no ICE checks: plain RTP
    assert alice_heard.received >= ENOUGH, f"alice heard only {alice_heard}"
    assert report.rtp.received >= ENOUGH, f"carol heard only {report.rtp}"
    carol_address = str(lab.topology.hosts["carol"].interfaces[0].address)
    assert report.selected_pair.local.address.startswith(f"{carol_address}:"), report


PUBLIC_NATLAB_PHONES_AND_KAMAILIO = """\
  pbx: {segment: internet, role: pbx, server: kamailio}
  carol: {segment: internet, role: phone}
  dave: {segment: lan-b, role: phone}
"""


def test_kamailio_opens_a_new_connection_to_a_natlab_phones_contact_to_deliver_its_call(
    private_natlab, run_dir, tmp_path, kernel
):
    """carol, on the internet, registers with kamailio over TCP from a port of its own; her
    Contact names the port she listens on (5060), so kamailio, seeing no NAT, opens a new
    connection there to deliver dave's INVITE (RFC 3261 18.1.1), and carol answers on it."""
    name = up(private_natlab, tmp_path, hosts=PUBLIC_NATLAB_PHONES_AND_KAMAILIO)
    lab = Lab.attach(name)
    carol, dave = lab.phone("carol"), lab.phone("dave")
    wait_registered(carol)
    wait_registered(dave)
    kamailio = str(lab.topology.hosts["pbx"].interfaces[0].address)
    namespace = node_namespace(name, "carol")
    assert kernel.tcp_peers(namespace, 5060) == []  # only her own, from another port
    report = dave.call("carol", MEDIA_SECONDS, "ice")
    assert report.verdict == "two-way", report
    peers = kernel.tcp_peers(namespace, 5060)
    assert len(peers) == 1 and peers[0].startswith(f"{kamailio}:"), peers
    deadline = time.monotonic() + 10
    while not (reports := [r for r in carol.reports() if r.role == "callee"]):
        assert time.monotonic() < deadline, "carol kept no report of dave's call"
        time.sleep(0.1)
    assert [(r.caller, r.verdict) for r in reports] == [("dave", "two-way")]
