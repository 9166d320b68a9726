"""Unsolicited inbound SYNs (RFC 5382 REQ-4): dropped, or answered 6 s later by RST or ICMP.

An answer is never sent before 6 s, is withdrawn by an outbound SYN of the
same connection (a simultaneous open), and is exactly the packet RFC 793
(RST) or RFC 792 (port unreachable quoting the SYN) describes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, IPerror, TCPerror

from natlab.core import syn_hold
from natlab.core.behaviour import TcpUnsolicited
from natlab.core.engine import Action, DropReason
from natlab.core.events import SynAnswered, SynHeld, SynWithdrawn
from natlab.core.packets import Endpoint, parse

from .helpers import WAN, checksums, ep, nat, tcp

HOST = "10.0.0.2:5000"
PEER = "198.51.100.1:40000"
MAPPED = f"{WAN}:5000"


def syn(src: str, dst: str, seq: int = 1000, payload: bytes = b"", flags: str = "S"):
    return parse(
        bytes(
            IP(src=ep(src).address, dst=ep(dst).address)
            / TCP(sport=ep(src).port, dport=ep(dst).port, flags=flags, seq=seq)
            / payload
        )
    )


def test_drop_answers_nothing_ever() -> None:
    engine = nat("port-restricted")
    verdict = engine.inbound(syn(PEER, MAPPED), 0.0)
    assert verdict.reason is DropReason.NO_MAPPING
    assert engine.syn_answers(1000.0) == []
    assert engine.counters["syn_held"] == 0


def test_rst_comes_six_seconds_later_from_the_address_the_syn_was_sent_to() -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    packet = syn(PEER, MAPPED, seq=0xFFFFFFFF, payload=b"early data")
    assert engine.inbound(packet, 10.0).reason is DropReason.NO_MAPPING
    held = [e for e in engine.drain_events() if isinstance(e, SynHeld)]
    assert held == [SynHeld(10.0, ep(PEER), ep(MAPPED), "rst", 16.0)]
    assert engine.syn_answers(15.999) == []
    [answer] = engine.syn_answers(16.0)
    reset = IP(bytes(answer))
    assert (reset.src, reset[TCP].sport, reset.dst, reset[TCP].dport) == (
        WAN,
        5000,
        *PEER.split(":")[:1],
        40000,
    )
    assert reset[TCP].flags == "RA"
    assert reset[TCP].seq == 0  # the SYN had no ACK (RFC 793 3.4)
    assert reset[TCP].ack == (0xFFFFFFFF + 1 + len(b"early data")) % 2**32
    ours, theirs = checksums(answer)
    assert ours == theirs
    assert engine.drain_events() == [SynAnswered(16.0, ep(PEER), ep(MAPPED), "rst")]
    assert engine.syn_answers(100.0) == []  # answered once
    assert (engine.counters["syn_held"], engine.counters["syn_answered"]) == (1, 1)


def test_icmp_is_port_unreachable_quoting_the_syn() -> None:
    engine = nat("port-restricted", tcp_unsolicited="icmp")
    packet = syn(PEER, MAPPED)
    original = bytes(packet.data)
    engine.inbound(packet, 0.0)
    [answer] = engine.syn_answers(6.0)
    error = IP(bytes(answer))
    assert (error.src, error.dst) == (WAN, "198.51.100.1")
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)  # RFC 5382 REQ-4's answer
    assert bytes(error[IPerror]) == original
    assert (error[TCPerror].sport, error[TCPerror].dport) == (40000, 5000)
    ours, theirs = checksums(answer, outermost=2)
    assert ours[:2] == theirs[:2]


def test_a_filtered_syn_is_answered_too() -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    engine.outbound(tcp(HOST, "198.51.100.9:80", "S"), 0.0)  # a mapping, for another remote
    assert engine.inbound(syn(PEER, MAPPED), 1.0).reason is DropReason.FILTERED_ADDRESS
    assert len(engine.syn_answers(7.0)) == 1


def test_an_outbound_syn_of_the_same_connection_withdraws_the_answer() -> None:
    """Simultaneous open: the peer's SYN came first; ours follows within 6 s."""
    engine = nat("port-restricted", tcp_unsolicited="rst")
    engine.inbound(syn(PEER, MAPPED), 0.0)
    engine.drain_events()
    ours = tcp(HOST, PEER, "S")
    assert engine.outbound(ours, 3.0).action is Action.FORWARD_OUT
    assert str(ours.src) == MAPPED
    assert SynWithdrawn(3.0, ep(HOST), ep(MAPPED), ep(PEER)) in engine.drain_events()
    assert engine.syn_answers(100.0) == []
    retransmitted = syn(PEER, MAPPED)
    assert engine.inbound(retransmitted, 4.0).action is Action.FORWARD_IN
    assert str(retransmitted.dst) == HOST
    assert engine.counters["syn_withdrawn"] == 1


def test_only_the_same_connection_withdraws() -> None:
    """Symmetric: our SYN to the peer leaves from another port than the peer's SYN hit."""
    engine = nat("symmetric", tcp_unsolicited="icmp")
    engine.outbound(tcp(HOST, "198.51.100.9:80", "S"), 0.0)  # takes port 5000
    engine.inbound(syn(PEER, MAPPED), 1.0)
    ours = tcp(HOST, PEER, "S")
    engine.outbound(ours, 2.0)
    assert str(ours.src) != MAPPED
    engine.outbound(tcp("10.0.0.3:7000", "198.51.100.1:40001", "S"), 2.0)  # another remote
    assert len(engine.syn_answers(7.0)) == 1


@pytest.mark.parametrize("flags", ["SA", "A", "R", "RA", "F", "SR", "PA"])
def test_only_a_bare_syn_is_unsolicited(flags: str) -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    assert engine.inbound(syn(PEER, MAPPED, flags=flags), 0.0).action is Action.DROP
    assert engine.syn_answers(10.0) == []


def test_a_retransmitted_syn_is_held_and_answered_once() -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    engine.inbound(syn(PEER, MAPPED), 0.0)
    engine.inbound(syn(PEER, MAPPED), 1.0)
    assert len(engine.syn_answers(6.5)) == 1
    assert engine.counters["syn_held"] == 1


def test_the_hold_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(syn_hold, "HELD_MAX", 3)
    engine = nat("port-restricted", tcp_unsolicited="rst")
    for port in range(5):
        engine.inbound(syn(f"198.51.100.1:{40000 + port}", MAPPED), 0.0)
    assert (engine.counters["syn_held"], engine.counters["syn_hold_full"]) == (3, 2)
    assert engine.counters["dropped_no_mapping"] == 5  # every one dropped all the same
    assert len(engine.syn_answers(6.0)) == 3


def test_a_syn_from_a_martian_or_to_another_address_is_never_answered() -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    engine.inbound(syn("10.0.0.9:1000", MAPPED), 0.0)  # from the LAN's own network
    engine.inbound(syn(PEER, "203.0.113.77:5000"), 0.0)  # not this router's address
    assert engine.syn_answers(10.0) == []


def test_reconfiguring_forgets_held_syns() -> None:
    engine = nat("port-restricted", tcp_unsolicited="rst")
    engine.inbound(syn(PEER, MAPPED), 0.0)
    engine.reconfigure(engine.config.behaviour, 1.0)
    assert engine.syn_answers(10.0) == []


# -- a model of REQ-4 against random traffic ---------------------------------------------

PEERS = [Endpoint("198.51.100.1", 40000), Endpoint("198.51.100.1", 40001)]
HOSTS = [Endpoint("10.0.0.2", 5000), Endpoint("10.0.0.3", 6000)]
PORTS = [5000, 6000]

steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=4.0),  # time since the step before
        st.sampled_from(["in", "out", "poll"]),
        st.integers(0, 1),  # which peer
        st.integers(0, 1),  # which host / external port
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(list(TcpUnsolicited)),
    preset=st.sampled_from(["full-cone", "restricted", "port-restricted", "symmetric"]),
    steps=steps,
)
def test_answers_follow_req_4(mode: TcpUnsolicited, preset: str, steps: list) -> None:
    """Every answer: to a bare SYN that was dropped, not withdrawn, at least 6 s after it."""
    engine = nat(preset, tcp_unsolicited=mode.value, tcp_transitory_timeout=5)
    held: dict[tuple[Endpoint, Endpoint], float] = {}  # (external, peer) -> received
    now = 0.0
    for gap, kind, peer_index, host_index in [*steps, (100.0, "poll", 0, 0)]:
        now += gap
        peer = PEERS[peer_index]
        if kind == "in":
            external = Endpoint(WAN, PORTS[host_index])
            packet = parse(
                bytes(
                    IP(src=peer.address, dst=WAN)
                    / TCP(sport=peer.port, dport=external.port, flags="S")
                )
            )
            verdict = engine.inbound(packet, now)
            if verdict.action is Action.DROP and mode is not TcpUnsolicited.DROP:
                held.setdefault((external, peer), now)
        elif kind == "out":
            packet = tcp(str(HOSTS[host_index]), str(peer), "S")
            if engine.outbound(packet, now).action is Action.FORWARD_OUT:
                held.pop((packet.src, peer), None)
        else:
            answers = engine.syn_answers(now)
            due = {key for key, received in held.items() if received + 6.0 <= now}
            got = set()
            for answer in answers:
                reply = IP(bytes(answer))
                if mode is TcpUnsolicited.RST:
                    assert reply[TCP].flags == "RA"
                    got.add(
                        (
                            Endpoint(reply.src, reply[TCP].sport),
                            Endpoint(reply.dst, reply[TCP].dport),
                        )
                    )
                else:
                    assert (reply[ICMP].type, reply[ICMP].code) == (3, 3)
                    got.add(
                        (
                            Endpoint(reply.src, reply[TCPerror].dport),
                            Endpoint(reply.dst, reply[TCPerror].sport),
                        )
                    )
            assert got == due
            assert len(answers) == len(due)
            for key in due:
                del held[key]
    assert not held
