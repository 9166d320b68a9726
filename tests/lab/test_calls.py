"""Phones calling each other through natlab's NATs: registration, ICE, RTP, relays, TLS (issue 5).

main-branch as shipped: the PBX behind `main` (full cone), which forwards
TCP 5060/5061 and UDP 40000-40099 to it; phone-a beside it, phone-b behind
branch1 (port-restricted), phone-c behind branch2 (symmetric). Each test
brings its lab up, switches NAT presets in place with `nat set` when it
needs others, and judges calls by the RTP counts the phones report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from natlab.core.behaviour import PRESETS
from natlab.endpoints.control import ask
from natlab.lab import Lab
from natlab.lab.endpoints import control_path
from natlab.lab.naming import lab_dir, node_namespace
from natlab.topology import parse_topology

pytestmark = pytest.mark.natlab

MAIN_BRANCH = Path(__file__).resolve().parents[2] / "topologies" / "main-branch.yaml"
NAIVE_PBX = MAIN_BRANCH.parents[1] / "scenarios" / "topologies" / "main-branch-naive-pbx.yaml"
PHONES = ("phone-a", "phone-b", "phone-c")
REGISTER_TIMEOUT = 10.0


def with_hosts(**hosts: dict) -> object:
    """main-branch with more hosts, under another topology name."""
    spec = yaml.safe_load(MAIN_BRANCH.read_text())
    spec["name"] = "calls"
    spec["hosts"].update(hosts)
    return parse_topology(yaml.safe_dump(spec), "calls.yaml")


def ask_host(lab: Lab, host: str, request: dict, timeout: float = 5.0) -> dict:
    return ask(control_path(lab_dir(lab.name), host), request, timeout)


def call(lab: Lab, caller: str, callee: str, mode: str = "ice", seconds: float = 1.0) -> dict:
    request = {"op": "call", "to": callee, "mode": mode, "seconds": seconds}
    return ask_host(lab, caller, request, timeout=seconds + 20)


def registered(lab: Lab, *phones: str) -> dict[str, dict]:
    """Each phone's status, once all say they are registered (registration runs after `up`)."""
    deadline = time.monotonic() + REGISTER_TIMEOUT
    while True:
        states = {phone: ask_host(lab, phone, {"op": "status"}) for phone in phones}
        if all(state["registered"] for state in states.values()):
            return states
        assert time.monotonic() < deadline, f"not all registered: {states}"
        time.sleep(0.05)


def set_nat(lab: Lab, router: str, preset: str, *phones: str) -> None:
    """Switch a router's preset; its mappings go, so its phones register again at once."""
    lab.router(router).set(PRESETS[preset])
    for phone in phones:
        assert ask_host(lab, phone, {"op": "register"})["registered"]


def wan(lab: Lab, router: str) -> str:
    return str(lab.topology.routers[router].wan.address)


def callee_report(lab: Lab, callee: str, call_id: str) -> dict:
    reports = ask_host(lab, callee, {"op": "reports"})["reports"]
    return next(report for report in reports if report["call"] == call_id)


def test_every_phone_registers_through_the_static_maps(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    states = registered(lab, *PHONES)
    # main-branch's phones dial the PBX by name: the PBX's own address in its LAN, the
    # main router's (which forwards 5060 to it) elsewhere; where each one registered from
    # (below) shows which way it went.
    assert {states[phone]["pbx"] for phone in PHONES} == {"pbx.example.test:5060"}
    registrations = ask_host(lab, "pbx", {"op": "registrations"})["registrations"]
    assert set(registrations) == set(PHONES)
    # The PBX sees each remote phone as its router's mapping, and phone-a as itself.
    phone_a = lab.topology.hosts["phone-a"].interfaces[0].address
    assert registrations["phone-a"]["address"].startswith(f"{phone_a}:")
    assert registrations["phone-b"]["address"].startswith(f"{wan(lab, 'branch1')}:")
    assert registrations["phone-c"]["address"].startswith(f"{wan(lab, 'branch2')}:")
    assert {r["transport"] for r in registrations.values()} == {"tcp"}
    nodes = {node["name"]: node for node in lab.status()["nodes"]}
    assert all(nodes[phone]["registration"]["registered"] for phone in PHONES)


def test_full_cone_and_port_restricted_talk_both_ways_over_ice(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    report = call(lab, "phone-a", "phone-b", seconds=1.0)
    assert report["error"] is None
    assert report["ice"] == "completed"
    assert report["verdict"] == "two-way"
    assert report["rtp"]["sent"] >= 45 and report["peer_rtp"]["received"] >= 45
    assert report["peer_rtp"]["sent"] >= 45 and report["rtp"]["received"] >= 45
    # Different LANs behind different NATs: the pair is public on both sides.
    pair = report["selected_pair"]
    assert pair["local"]["type"] == "srflx"
    assert pair["local"]["address"].startswith("203.0.113.1:")
    assert pair["remote"]["type"] in ("srflx", "prflx")
    assert pair["remote"]["address"].startswith(f"{wan(lab, 'branch1')}:")
    theirs = callee_report(lab, "phone-b", report["call"])
    assert (theirs["role"], theirs["verdict"]) == ("callee", "two-way")
    assert theirs["rtp"]["received"] == report["peer_rtp"]["received"]


def test_port_restricted_against_symmetric_has_no_media_and_says_which_checks_failed(
    natlab_lab,
) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    started = time.monotonic()
    report = call(lab, "phone-b", "phone-c")
    assert time.monotonic() - started < 8, "a failing ICE must give up in seconds"
    assert (report["verdict"], report["ice"], report["error"]) == ("no media", "failed", None)
    assert report["selected_pair"] is None
    assert report["rtp"]["received"] == report["peer_rtp"]["received"] == 0
    checks = report["checks"]
    assert {check["remote_type"] for check in checks} >= {"host", "srflx"}
    assert all(check["state"] == "failed" for check in checks)
    srflx = next(check for check in checks if check["remote_type"] == "srflx")
    assert srflx["remote"].startswith(f"{wan(lab, 'branch2')}:")
    # Make branch2 a full cone in the running lab: the same two phones now connect.
    set_nat(lab, "branch2", "full-cone", "phone-c")
    again = call(lab, "phone-b", "phone-c")
    assert (again["verdict"], again["ice"]) == ("two-way", "completed")


def test_a_call_to_a_phone_that_is_not_registered_is_refused(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    report = call(lab, "phone-a", "nobody")
    assert report["verdict"] == "no media"
    assert "not registered" in report["error"]


def test_a_caller_that_hangs_up_while_it_rings_cancels_the_call_through_two_nats(
    natlab_lab,
) -> None:
    """phone-b (port-restricted) calls phone-c (symmetric), which rings 3 s; phone-b hangs up
    after 1 s: its CANCEL goes through the PBX, phone-c ends the INVITE with 487."""
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    request = {"op": "call", "to": "phone-c", "mode": "host", "seconds": 1.0}
    report = ask_host(lab, "phone-b", {**request, "cancel_after": 1.0, "ring": 3.0}, 30)
    assert report["cancelled"], report
    assert report["error"] == "cancelled after 1 s, before the answer: 487 Request Terminated"
    summaries = [seen["summary"] for seen in report["signalling"]]
    assert summaries[-4:] == ["CANCEL", "200 OK", "487 Request Terminated", "ACK"], summaries
    calls = lab.pbx().calls()
    assert calls[report["call"]]["ended"] and not calls[report["call"]]["answered"]
    callee = ask_host(lab, "phone-c", {"op": "reports"})["reports"]
    assert [(r["call"], r["error"]) for r in callee] == [
        (report["call"], "cancelled by the caller")
    ]


def test_phones_in_one_lan_talk_over_their_host_addresses(natlab_lab) -> None:
    lab = natlab_lab(with_hosts(**{"phone-d": {"segment": "branch2-lan", "role": "phone"}}))
    registered(lab, "phone-c", "phone-d")
    report = call(lab, "phone-c", "phone-d")
    assert report["verdict"] == "two-way"
    pair = report["selected_pair"]
    assert (pair["local"]["type"], pair["remote"]["type"]) == ("host", "host")
    phone_d = lab.topology.hosts["phone-d"].interfaces[0].address
    assert pair["remote"]["address"].startswith(f"{phone_d}:")
    # Without ICE too: host addresses are all two phones of one LAN need.
    assert call(lab, "phone-d", "phone-c", mode="host")["verdict"] == "two-way"


def test_an_ice_caller_answered_without_ice_sends_from_the_address_it_offered(natlab_lab) -> None:
    """RFC 8839 3.2.3: the callee answers without ICE (its SDP has no a=ice-ufrag) and sends
    its RTP to the caller's c=/m=; the caller sends from there too, so both hear each other:
    phone-d beside phone-c answering with its host address, phone-a behind the full cone
    with its STUN address to phone-e on the internet, and phone-e to a relay-only caller
    (mode turn), whose c=/m= is its TURN allocation."""
    extra = {
        "phone-d": {"segment": "branch2-lan", "role": "phone"},
        "phone-e": {"segment": "internet", "role": "phone"},
        "turn1": {"segment": "internet", "role": "turn-server"},
    }
    lab = natlab_lab(with_hosts(**extra))
    registered(lab, "phone-a", "phone-b", "phone-c", "phone-d", "phone-e")
    hosts = lab.topology.hosts
    calls = (
        ("phone-c", "phone-d", "ice", "host", hosts["phone-c"]),
        ("phone-e", "phone-a", "ice", "srflx", hosts["phone-e"]),
        ("phone-b", "phone-e", "turn", "host", hosts["turn1"]),
    )
    for caller, callee, mode, answer, source in calls:
        request = {"op": "call", "to": callee, "mode": mode, "seconds": 1.0, "answer": answer}
        report = ask_host(lab, caller, request, timeout=25)
        assert report["verdict"] == "two-way", json.dumps(report)
        assert (report["ice"], report["checks"]) == (None, [])
        theirs = callee_report(lab, callee, report["call"])
        assert theirs["mode"] == answer and theirs["verdict"] == "two-way", theirs
        # the callee sent to what the caller offered, and the caller sent from that address
        offered = theirs["selected_pair"]["remote"]["address"]
        assert report["selected_pair"]["local"]["address"] == offered, (report, theirs)
        assert offered.startswith(f"{source.interfaces[0].address}:")


def test_without_ice_the_classic_failures_of_one_way_and_no_audio(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    # Private host addresses mean nothing across the internet: nobody hears anybody.
    host = call(lab, "phone-a", "phone-b", mode="host")
    assert (host["verdict"], host["ice"], host["checks"]) == ("no media", None, [])
    assert host["selected_pair"]["remote"]["address"].startswith("10.1.0.")
    # STUN addresses: the symmetric NAT's mapping was for the STUN server only, so phone-a's
    # RTP to it is filtered, while phone-c's reaches phone-a through the full cone.
    srflx = call(lab, "phone-a", "phone-c", mode="srflx")
    assert srflx["verdict"] == "one-way (callee hears nothing)"
    assert srflx["rtp"]["received"] >= 45 and srflx["peer_rtp"]["received"] == 0
    assert srflx["selected_pair"]["local"]["address"].startswith("203.0.113.1:")
    theirs = callee_report(lab, "phone-c", srflx["call"])
    assert theirs["verdict"] == "one-way (callee hears nothing)"


def test_the_pbx_relay_latches_onto_two_symmetric_nats(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    set_nat(lab, "branch1", "symmetric", "phone-b")
    assert call(lab, "phone-b", "phone-c", mode="srflx")["verdict"] == "no media"
    report = call(lab, "phone-b", "phone-c", mode="relay")
    assert report["verdict"] == "two-way"
    remote = report["selected_pair"]["remote"]
    assert remote["type"] == "relay"
    host, port = remote["address"].split(":")
    assert host == "203.0.113.1" and 40000 <= int(port) <= 40099  # main's forwarded relay ports
    legs = ask_host(lab, "pbx", {"op": "calls"})["calls"][report["call"]]["relay"]
    assert legs["caller"]["latched"].startswith(f"{wan(lab, 'branch1')}:")
    assert legs["callee"]["latched"].startswith(f"{wan(lab, 'branch2')}:")
    assert legs["caller"]["forwarded"] >= 45 and legs["callee"]["forwarded"] >= 45
    # A relay policy for remote phones relays an ICE call the same way.
    ask_host(lab, "pbx", {"op": "relay", "phones": "remote"})
    relayed = call(lab, "phone-c", "phone-b", mode="ice")
    assert relayed["verdict"] == "two-way"
    assert relayed["selected_pair"]["remote"]["type"] == "relay"


@pytest.mark.parametrize(("transport", "port"), [("tcp", 5060), ("tls", 5061)])
def test_a_naive_pbx_opens_a_connection_to_the_phones_contact_port(
    natlab_lab, kernel, transport: str, port: int
) -> None:
    """phone-a, beside the naive PBX, registers from a port of its own; its Contact names the
    port it listens on, so the PBX opens a new connection there to deliver phone-b's call
    (over TLS the phone's certificate names its address, the PBX's is the one it takes)."""
    lab = natlab_lab(NAIVE_PBX)
    registered(lab, "phone-a", "phone-b")
    assert ask_host(lab, "phone-a", {"op": "register", "transport": transport})["registered"]
    namespace = node_namespace(lab.name, "phone-a")
    assert kernel.tcp_peers(namespace, port) == []
    assert call(lab, "phone-b", "phone-a", mode="srflx")["verdict"] == "two-way"
    pbx = str(lab.topology.hosts["pbx"].interfaces[0].address)
    peers = kernel.tcp_peers(namespace, port)
    assert len(peers) == 1 and peers[0].startswith(f"{pbx}:"), peers


def test_tls_registration_checks_the_certificate_name(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    for phone in ("phone-a", "phone-b"):
        status = ask_host(lab, phone, {"op": "register", "transport": "tls"})
        assert status["registered"] and status["transport"] == "tls", status
    assert ask_host(lab, "phone-b", {"op": "status"})["pbx"] == "pbx.example.test:5061"
    # phone-c holding phone-b's certificate is refused, as certificate registration must.
    refused = ask_host(
        lab, "phone-c", {"op": "register", "transport": "tls", "certificate": "phone-b"}
    )
    assert not refused["registered"]
    assert "certificate CN 'phone-b' does not match the name 'phone-c'" in refused["error"]
    registrations = ask_host(lab, "pbx", {"op": "registrations"})["registrations"]
    assert {n: r["transport"] for n, r in registrations.items()} == {
        "phone-a": "tls",
        "phone-b": "tls",
    }
    assert call(lab, "phone-a", "phone-b")["verdict"] == "two-way"  # signalling over TLS


def test_turn_relays_between_two_symmetric_nats_and_never_to_private_peers(natlab_lab) -> None:
    lab = natlab_lab(with_hosts(turn1={"segment": "internet", "role": "turn-server"}))
    registered(lab, *PHONES)
    set_nat(lab, "branch1", "symmetric", "phone-b")
    turn = str(lab.topology.hosts["turn1"].interfaces[0].address)
    for mode in ("ice", "turn"):
        report = call(lab, "phone-b", "phone-c", mode=mode)
        assert (report["verdict"], report["ice"]) == ("two-way", "completed"), report
        pair = report["selected_pair"]
        assert "relay" in (pair["local"]["type"], pair["remote"]["type"])
        assert pair["remote"]["address"].startswith(f"{turn}:") or pair["local"][
            "address"
        ].startswith(f"{turn}:")
    only_relay = call(lab, "phone-b", "phone-c", mode="turn")
    assert {check["local_type"] for check in only_relay["checks"]} == {"relay"}
    # The phones offered their private host addresses; coturn refused to relay to them.
    log = (lab_dir(lab.name) / "hosts" / "turn1.log").read_text()
    assert "peer IP 10.1.0." in log or "peer IP 10.2.0." in log
    assert "denied" in log


def test_a_phone_whose_nat_forgot_its_registration_registers_again_by_itself(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    before = registered(lab, *PHONES)["phone-b"]
    # No "register" request this time: the TCP mapping is gone, and the next invite to
    # phone-b goes down a dead connection until phone-b notices and registers anew.
    lab.router("branch1").set(PRESETS["full-cone"])
    report = call(lab, "phone-a", "phone-b")
    assert report["verdict"] == "two-way", report
    after = ask_host(lab, "phone-b", {"op": "status"})
    assert after["registered"] and after["since"] > before["since"]


def test_a_udp_registration_without_keepalives_dies_with_its_nat_mapping_a_tcp_one_lives(
    natlab_lab,
) -> None:
    """The PBX keeps both registrations; only the NAT decides which phone it can still reach."""
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    udp = ask_host(lab, "phone-b", {"op": "register", "transport": "udp", "keepalive": 0})
    assert (udp["registered"], udp["transport"], udp["keepalive"]) == (True, "udp", 0)
    assert udp["pbx"] == "pbx.example.test:5060"  # 203.0.113.1: main's udp 5060 forward
    tcp = ask_host(lab, "phone-c", {"op": "register", "transport": "tcp", "keepalive": 0})
    assert (tcp["registered"], tcp["transport"], tcp["keepalive"]) == (True, "tcp", 0)
    seen = ask_host(lab, "pbx", {"op": "registrations"})["registrations"]
    address = seen["phone-b"]["address"]  # branch1's mapping of phone-b's signalling socket
    assert seen["phone-b"]["transport"] == "udp" and address.startswith(f"{wan(lab, 'branch1')}:")
    assert call(lab, "phone-a", "phone-b")["verdict"] == "two-way"  # while the mapping lives

    lab.advance_clock(130)  # past the routers' udp_timeout (120 s), far from TCP's 7440 s
    mark = lab.router("branch1").mark()
    lost = call(lab, "phone-a", "phone-b")
    assert lost["verdict"] == "no media"
    assert "phone-b did not answer 3 invites sent over udp to " + address in lost["error"]
    reports = ask_host(lab, "phone-b", {"op": "reports"})["reports"]
    assert lost["call"] not in {report["call"] for report in reports}  # it never rang
    # branch1 dropped each copy of the invite: the mapping the PBX sends to has expired...
    drops = [
        e
        for e in lab.router("branch1").events(mark).events
        if e.kind == "drop" and e.dst == address and e.src == "203.0.113.1:5060"
    ]
    assert len(drops) == 3 and {e.reason for e in drops} == {"expired"}, drops
    # ...while the PBX still holds the registration: the NAT lost it, not the PBX.
    still = ask_host(lab, "pbx", {"op": "registrations"})["registrations"]["phone-b"]
    assert still["address"] == address and still["expires_in"] > 0
    assert ask_host(lab, "phone-b", {"op": "status"})["registered"]  # nor does the phone know

    # phone-c, silent over TCP as long, is reached: its mapping has the established timeout.
    assert call(lab, "phone-a", "phone-c")["verdict"] == "two-way"
    # A new REGISTER opens a new mapping, and phone-b is reachable again.
    assert ask_host(lab, "phone-b", {"op": "register"})["transport"] == "udp"
    assert call(lab, "phone-a", "phone-b")["verdict"] == "two-way"


def test_udp_keepalives_keep_the_mapping_and_so_the_registration(natlab_lab) -> None:
    lab = natlab_lab(MAIN_BRANCH)
    registered(lab, *PHONES)
    status = ask_host(lab, "phone-b", {"op": "register", "transport": "udp", "keepalive": 0.2})
    assert (status["registered"], status["transport"]) == (True, "udp")
    # 200 s in two steps, each under udp_timeout, with keepalives refreshing the mapping between.
    lab.advance_clock(100)
    time.sleep(0.6)
    lab.advance_clock(100)
    report = call(lab, "phone-a", "phone-b")
    assert report["verdict"] == "two-way", report
    assert ask_host(lab, "phone-b", {"op": "status"})["since"] == status["since"]
