"""Static maps (port forwards) both ways, and TCP: mappings on SYN, state for timeouts."""

from __future__ import annotations

import pytest

from natlab.core.engine import Action, DropReason, NatConfig, NatEngine, StaticMap
from natlab.core.events import StaticMapHit
from natlab.core.mapping import TcpState
from natlab.core.packets import Proto

from .helpers import LAN, WAN, WAN2, ep, nat, tcp, udp

S1 = "198.51.100.1:40000"
REPORTING = StaticMap(Proto.TCP, (8000, 8000), "10.0.0.3", (80, 80))
PBX = StaticMap("tcp", (80, 80), "10.0.0.4", (80, 80))
RTP = StaticMap("udp", (10000, 10009), "10.0.0.4", (20000, 20009))


def forwards(preset: str = "symmetric", **overrides):
    return nat(preset, external=(WAN, WAN2), static_maps=(REPORTING, PBX, RTP), **overrides)


@pytest.mark.parametrize(
    ("external_port", "internal"),
    [(8000, "10.0.0.3:80"), (80, "10.0.0.4:80")],
)
def test_static_map_forwards_inbound_without_filtering(external_port, internal) -> None:
    engine = forwards()
    segment = tcp(S1, f"{WAN}:{external_port}", "S")
    assert engine.inbound(segment, 0.0).action is Action.FORWARD_IN
    assert str(segment.dst) == internal
    assert segment.src == ep(S1)
    assert engine.mappings(0.0) == []  # no dynamic mapping for it


def test_static_port_ranges_map_port_by_port() -> None:
    engine = forwards()
    packet = udp(S1, f"{WAN}:10007")
    assert engine.inbound(packet, 0.0).action is Action.FORWARD_IN
    assert str(packet.dst) == "10.0.0.4:20007"
    reply = udp("10.0.0.4:20007", S1)
    assert engine.outbound(reply, 0.1).action is Action.FORWARD_OUT
    assert str(reply.src) == f"{WAN}:10007"


def test_the_mapped_hosts_answer_leaves_from_the_mapped_port() -> None:
    engine = forwards()  # symmetric: a dynamic mapping would get another port
    segment = tcp("10.0.0.3:80", S1, "SA")
    assert engine.outbound(segment, 0.0).action is Action.FORWARD_OUT
    assert str(segment.src) == f"{WAN}:8000"
    assert engine.mappings(0.0) == []


def test_static_maps_live_on_the_first_external_address_only() -> None:
    engine = forwards()
    assert engine.inbound(tcp(S1, f"{WAN2}:8000"), 0.0).reason is DropReason.NO_MAPPING


def test_static_ports_are_never_given_to_dynamic_mappings() -> None:
    engine = forwards("full-cone")
    segment = tcp("10.0.0.2:8000", S1, "S")
    engine.outbound(segment, 0.0)
    assert segment.src == (WAN, 8001)
    packet = udp("10.0.0.2:10000", S1)
    engine.outbound(packet, 0.0)
    assert packet.src == (WAN, 10010)


def test_other_ports_of_the_mapped_host_are_translated_as_usual() -> None:
    engine = forwards("full-cone")
    segment = tcp("10.0.0.3:81", S1, "S")
    engine.outbound(segment, 0.0)
    assert segment.src == (WAN, 1024)
    assert [m.internal for m in engine.mappings(0.0)] == [ep("10.0.0.3:81")]


def test_static_map_hits_are_events_at_most_once_per_second_and_direction() -> None:
    engine = forwards()
    engine.inbound(tcp(S1, f"{WAN}:8000", "A"), 0.0)
    engine.inbound(tcp(S1, f"{WAN}:8000", "A"), 0.3)
    engine.outbound(tcp("10.0.0.3:80", S1, "A"), 0.4)
    engine.inbound(tcp(S1, f"{WAN}:8000", "A"), 1.5)
    hits = engine.drain_events()
    assert hits == [
        StaticMapHit(0.0, Proto.TCP, "inbound", ep("10.0.0.3:80"), ep(f"{WAN}:8000"), ep(S1)),
        StaticMapHit(0.4, Proto.TCP, "outbound", ep("10.0.0.3:80"), ep(f"{WAN}:8000"), ep(S1)),
        StaticMapHit(1.5, Proto.TCP, "inbound", ep("10.0.0.3:80"), ep(f"{WAN}:8000"), ep(S1)),
    ]
    assert engine.counters["translated_in"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        dict(
            proto="icmp", external_ports=(1, 1), internal_address="10.0.0.3", internal_ports=(1, 1)
        ),
        dict(
            proto="tcp", external_ports=(1, 2), internal_address="10.0.0.3", internal_ports=(1, 1)
        ),
        dict(
            proto="tcp", external_ports=(2, 1), internal_address="10.0.0.3", internal_ports=(2, 1)
        ),
        dict(proto="udp", external_ports=(1, 1), internal_address="pbx", internal_ports=(1, 1)),
    ],
)
def test_bad_static_maps_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        StaticMap(**bad)


def test_overlapping_static_maps_and_local_ports_are_refused() -> None:
    def config(*maps: StaticMap) -> NatConfig:
        return NatConfig(nat().config.behaviour, (WAN,), (LAN,), maps, (3478,))

    with pytest.raises(ValueError, match="overlap"):
        NatEngine(config(REPORTING, StaticMap("tcp", (7990, 8000), "10.0.0.5", (1, 11))))
    with pytest.raises(ValueError, match="3478"):
        NatEngine(config(StaticMap("udp", (3478, 3478), "10.0.0.5", (1, 1))))


# -- TCP -----------------------------------------------------------------------------------

HOST = "10.0.0.2:5000"
MAPPED = f"{WAN}:5000"


def test_only_a_syn_makes_a_tcp_mapping() -> None:
    engine = nat("port-restricted")
    for flags in ("A", "PA", "F", "R", "FA"):
        assert engine.outbound(tcp(HOST, S1, flags), 0.0).reason is DropReason.NOT_SYN
    assert engine.mappings(0.0) == []
    assert engine.outbound(tcp(HOST, S1, "S"), 0.0).action is Action.FORWARD_OUT
    assert engine.outbound(tcp(HOST, S1, "A"), 0.1).action is Action.FORWARD_OUT
    assert engine.counters["dropped_not_syn"] == 5


def test_inbound_syn_to_a_mapping_goes_through_filtering() -> None:
    engine = nat("port-restricted")
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    assert engine.inbound(tcp(S1, MAPPED, "SA"), 0.1).action is Action.FORWARD_IN
    assert engine.inbound(tcp("198.51.100.1:40001", MAPPED, "S"), 0.2).reason is (
        DropReason.FILTERED_PORT
    )
    assert engine.inbound(tcp("198.51.100.9:40000", MAPPED, "S"), 0.2).reason is (
        DropReason.FILTERED_ADDRESS
    )


def test_inbound_syn_without_a_mapping_is_dropped() -> None:
    engine = nat("full-cone")
    assert engine.inbound(tcp(S1, MAPPED, "S"), 0.0).reason is DropReason.NO_MAPPING


def test_full_cone_lets_an_inbound_syn_in_through_an_open_mapping() -> None:
    engine = nat("full-cone")
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    segment = tcp("198.51.100.7:1234", MAPPED, "S")
    assert engine.inbound(segment, 0.1).action is Action.FORWARD_IN
    assert str(segment.dst) == HOST


def tcp_view(engine, now: float):
    [view] = engine.mappings(now)
    return view.tcp_state, view.expires_at


def test_tcp_state_picks_the_timeout() -> None:
    engine = nat("port-restricted", tcp_transitory_timeout=240, tcp_established_timeout=7440)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    assert tcp_view(engine, 0.0) == (TcpState.OPENING, 240.0)
    engine.inbound(tcp(S1, MAPPED, "SA"), 1.0)  # both directions seen
    assert tcp_view(engine, 1.0) == (TcpState.ESTABLISHED, 7440.0)  # inbound does not refresh
    engine.outbound(tcp(HOST, S1, "A"), 2.0)
    assert tcp_view(engine, 2.0) == (TcpState.ESTABLISHED, 7442.0)
    engine.outbound(tcp(HOST, S1, "FA"), 3.0)
    assert tcp_view(engine, 3.0) == (TcpState.CLOSING, 243.0)
    assert engine.inbound(tcp(S1, MAPPED, "A"), 242.0).action is Action.FORWARD_IN
    assert engine.inbound(tcp(S1, MAPPED, "A"), 243.0).reason is DropReason.EXPIRED


def test_an_unanswered_syn_expires_after_the_transitory_timeout() -> None:
    engine = nat("full-cone", tcp_transitory_timeout=20)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    engine.outbound(tcp(HOST, S1, "S"), 10.0)  # retransmission refreshes
    assert engine.inbound(tcp(S1, MAPPED, "SA"), 29.0).action is Action.FORWARD_IN
    engine.outbound(tcp(HOST, S1, "A"), 29.5)
    assert tcp_view(engine, 29.5)[0] is TcpState.ESTABLISHED


def test_inbound_rst_makes_the_mapping_transitory() -> None:
    engine = nat("port-restricted", tcp_transitory_timeout=20)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    engine.inbound(tcp(S1, MAPPED, "SA"), 0.5)
    engine.outbound(tcp(HOST, S1, "A"), 1.0)
    engine.inbound(tcp(S1, MAPPED, "R"), 2.0)
    assert tcp_view(engine, 2.0) == (TcpState.CLOSING, 21.0)


def test_a_new_syn_reopens_a_closing_mapping() -> None:
    engine = nat("full-cone", tcp_transitory_timeout=20, tcp_established_timeout=1000)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    engine.inbound(tcp(S1, MAPPED, "SA"), 0.5)
    engine.outbound(tcp(HOST, S1, "R"), 1.0)
    engine.outbound(tcp(HOST, "198.51.100.2:80", "S"), 2.0)
    assert tcp_view(engine, 2.0) == (TcpState.OPENING, 22.0)
    engine.inbound(tcp("198.51.100.2:80", MAPPED, "SA"), 2.5)
    assert tcp_view(engine, 2.5) == (TcpState.ESTABLISHED, 1002.0)


def test_simultaneous_open_through_port_restricted_nats() -> None:
    """Hole punching: both sides send a SYN; the peer's SYN gets in after ours went out."""
    engine = nat("port-restricted")
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    assert engine.inbound(tcp(S1, MAPPED, "S"), 0.1).action is Action.FORWARD_IN
    assert tcp_view(engine, 0.1)[0] is TcpState.ESTABLISHED


def test_expire_honours_a_timeout_shortened_by_fin() -> None:
    engine = nat("full-cone", tcp_transitory_timeout=20, tcp_established_timeout=1000)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    engine.inbound(tcp(S1, MAPPED, "SA"), 1.0)
    assert engine.expire(25.0) == 0  # established: lives until 1000
    engine.outbound(tcp(HOST, S1, "FA"), 30.0)
    assert engine.expire(49.0) == 0
    assert engine.expire(50.0) == 1


def test_an_inbound_syn_reopens_a_closing_mapping() -> None:
    engine = nat("full-cone", tcp_transitory_timeout=20, tcp_established_timeout=1000)
    engine.outbound(tcp(HOST, S1, "S"), 0.0)
    engine.inbound(tcp(S1, MAPPED, "SA"), 0.5)
    engine.inbound(tcp(S1, MAPPED, "F"), 1.0)
    assert tcp_view(engine, 1.0)[0] is TcpState.CLOSING
    engine.inbound(tcp(S1, MAPPED, "S"), 2.0)
    assert tcp_view(engine, 2.0)[0] is TcpState.OPENING


def test_a_static_hosts_hairpin_events_are_throttled_too() -> None:
    engine = forwards("full-cone")
    target = udp("10.0.0.2:7000", S1)
    engine.outbound(target, 0.0)
    engine.drain_events()
    for now in (1.0, 1.5, 2.5):
        assert engine.outbound(udp("10.0.0.4:20000", str(target.src)), now).action is (
            Action.HAIRPIN
        )
    hairpins = [e for e in engine.drain_events() if e.kind == "hairpinned"]
    assert [e.at for e in hairpins] == [1.0, 2.5]
    assert hairpins[0].src_external == ep(f"{WAN}:10000")
