"""Hairpinning (RFC 4787 REQ-9) and the router's own STUN ports (Action.LOCAL)."""

from __future__ import annotations

from natlab.core.engine import Action, DropReason, StaticMap
from natlab.core.events import Dropped, Hairpinned, MappingCreated
from natlab.core.packets import Proto

from .helpers import WAN, assert_checksums_valid, ep, nat, tcp, udp

A = "10.0.0.2:5000"
B = "10.0.0.3:6000"
S1 = "198.51.100.1:3478"


def mapped(engine, internal: str, remote: str = S1, now: float = 0.0) -> str:
    packet = udp(internal, remote)
    assert engine.outbound(packet, now).action is Action.FORWARD_OUT
    return str(packet.src)


def test_hairpinned_packet_carries_the_senders_external_endpoint() -> None:
    engine = nat("full-cone")
    a_external = mapped(engine, A)
    b_external = mapped(engine, B)
    engine.drain_events()
    packet = udp(B, a_external)
    assert engine.outbound(packet, 0.5).action is Action.HAIRPIN
    assert str(packet.src) == b_external  # REQ-9: not B's internal address
    assert str(packet.dst) == A
    assert_checksums_valid(packet)
    assert engine.counters["hairpinned"] == 1
    assert engine.drain_events() == [
        Hairpinned(0.5, Proto.UDP, ep(B), ep(b_external), ep(a_external), ep(A))
    ]


def test_hairpin_makes_the_senders_mapping_like_any_destination() -> None:
    engine = nat("full-cone")
    a_external = mapped(engine, A)
    engine.drain_events()
    packet = udp(B, a_external)
    assert engine.outbound(packet, 1.0).action is Action.HAIRPIN
    created = engine.drain_events()[0]
    assert created == MappingCreated(1.0, Proto.UDP, ep(B), packet.src, ep(a_external))


def test_hairpin_goes_through_filtering() -> None:
    """Port-restricted: B reaches A's mapping only after A has sent to B's external endpoint."""
    engine = nat("port-restricted")
    a_external = mapped(engine, A)
    b_external = mapped(engine, B)
    verdict = engine.outbound(udp(A, b_external), 1.0)
    assert verdict.reason is DropReason.FILTERED_ADDRESS  # B never sent to A's external address
    assert engine.outbound(udp(B, a_external), 2.0).action is Action.HAIRPIN  # A sent to B
    assert engine.outbound(udp(A, b_external), 3.0).action is Action.HAIRPIN  # and now B to A


def test_hairpin_to_an_unmapped_external_port_is_no_mapping() -> None:
    engine = nat("full-cone")
    assert engine.outbound(udp(A, f"{WAN}:40000"), 0.0).reason is DropReason.NO_MAPPING


def test_hairpin_off_drops_before_making_a_mapping() -> None:
    engine = nat("full-cone", hairpin=False)
    a_external = mapped(engine, A)
    engine.drain_events()
    packet = udp(B, a_external)
    assert engine.outbound(packet, 1.0).reason is DropReason.HAIRPIN_OFF
    assert str(packet.src) == B
    assert [m.internal for m in engine.mappings(1.0)] == [ep(A)]
    [event] = engine.drain_events()
    assert isinstance(event, Dropped)
    assert event.reason is DropReason.HAIRPIN_OFF
    assert engine.counters["dropped_hairpin_off"] == 1


def test_hairpin_reaches_a_static_map() -> None:
    engine = nat(
        "symmetric",
        static_maps=(StaticMap("udp", (5060, 5060), "10.0.0.3", (5060, 5060)),),
    )
    packet = udp(A, f"{WAN}:5060")
    assert engine.outbound(packet, 0.0).action is Action.HAIRPIN
    assert str(packet.dst) == "10.0.0.3:5060"
    assert packet.src.address == WAN


def test_stun_from_the_lan_is_translated_first() -> None:
    engine = nat("symmetric")
    packet = udp(A, f"{WAN}:3478")
    assert engine.outbound(packet, 0.0).action is Action.LOCAL
    assert packet.src.address == WAN and packet.src.port != 0
    assert str(packet.dst) == f"{WAN}:3478"
    [view] = engine.mappings(0.0)
    assert (view.internal, view.external, view.remote) == (ep(A), packet.src, f"{WAN}:3478")
    assert engine.counters["local"] == 1
    assert_checksums_valid(packet)


def test_stun_answer_comes_back_through_filtering() -> None:
    """The responder's answer from 3478 passes; one from the alternate port 3479 does not."""
    engine = nat("port-restricted")
    request = udp(A, f"{WAN}:3478")
    engine.outbound(request, 0.0)
    answer = udp(f"{WAN}:3478", str(request.src))
    assert engine.answer_inbound(answer, 0.1).action is Action.FORWARD_IN
    assert str(answer.dst) == A
    changed_port = udp(f"{WAN}:3479", str(request.src))
    assert engine.answer_inbound(changed_port, 0.2).reason is DropReason.FILTERED_PORT


def test_the_router_s_own_source_arriving_on_the_wan_is_martian_not_a_stun_answer() -> None:
    """Only the daemon's own responder may hand in a packet from the router's address."""
    engine = nat("full-cone")
    request = udp(A, f"{WAN}:3478")
    engine.outbound(request, 0.0)
    forged = udp(f"{WAN}:3478", str(request.src))
    assert engine.inbound(forged, 0.1).reason is DropReason.MARTIAN_SOURCE


def test_symmetric_nat_gives_stun_a_mapping_no_other_destination_sees() -> None:
    engine = nat("symmetric")
    request = udp(A, f"{WAN}:3478")
    engine.outbound(request, 0.0)
    assert mapped(engine, A, S1, 1.0) != str(request.src)


def test_full_cone_gives_stun_the_mapping_every_destination_sees() -> None:
    engine = nat("full-cone")
    request = udp(A, f"{WAN}:3478")
    engine.outbound(request, 0.0)
    assert mapped(engine, A, S1, 1.0) == str(request.src)


def test_stun_from_outside_is_local_and_untouched() -> None:
    engine = nat("symmetric")
    packet = udp(S1, f"{WAN}:3478")
    before = bytes(packet.data)
    assert engine.inbound(packet, 0.0).action is Action.LOCAL
    assert bytes(packet.data) == before


def test_stun_works_with_hairpin_off() -> None:
    engine = nat("full-cone", hairpin=False)
    assert engine.outbound(udp(A, f"{WAN}:3479"), 0.0).action is Action.LOCAL


def test_local_ports_are_never_given_to_mappings() -> None:
    engine = nat("full-cone", local_udp_ports=(3478,))
    packet = udp("10.0.0.2:3478", S1)
    engine.outbound(packet, 0.0)
    assert packet.src == (WAN, 3479)


def test_local_ports_are_udp_only() -> None:
    engine = nat("full-cone")
    assert engine.inbound(udp(S1, f"{WAN}:3478"), 0.0).action is Action.LOCAL
    assert engine.inbound(tcp(S1, f"{WAN}:3478"), 0.0).reason is DropReason.NO_MAPPING
