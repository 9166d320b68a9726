"""NatEngine.open_pinhole: the mapping a SIP ALG makes for a media port, open to any remote."""

from __future__ import annotations

from natlab.core.engine import Action, StaticMap
from natlab.core.events import Exhausted, MappingCreated
from natlab.core.packets import Endpoint
from tests.unit.core.helpers import S1, S2, WAN, nat, udp

MEDIA = Endpoint("10.0.0.2", 4000)
PBX = Endpoint(S1, 5060)


def test_a_pinhole_is_the_mapping_the_first_packet_would_make_and_lets_anyone_in():
    engine = nat("port-restricted")
    external = engine.open_pinhole(MEDIA, PBX, 1.0)
    assert external == Endpoint(WAN, 4000), "ports preserved, as for a packet"
    assert any(isinstance(e, MappingCreated) for e in engine.drain_events())
    inbound = udp(f"{S2}:7078", f"{external}")  # never sent to: filtering would drop it
    assert engine.inbound(inbound, 2.0).action is Action.FORWARD_IN
    assert inbound.dst == MEDIA
    out = udp(f"{MEDIA}", f"{S2}:7078")
    engine.outbound(out, 2.5)
    assert out.src == external, "the host's own media leaves through the same mapping"


def test_without_a_pinhole_the_same_packet_is_filtered():
    engine = nat("port-restricted")
    engine.outbound(udp(f"{MEDIA}", f"{PBX}"), 1.0)
    assert engine.inbound(udp(f"{S2}:7078", f"{WAN}:4000"), 2.0).action is Action.DROP


def test_an_existing_mapping_is_opened_not_duplicated():
    engine = nat("symmetric")
    engine.outbound(udp(f"{MEDIA}", f"{PBX}"), 1.0)
    before = engine.mappings(1.0)
    assert engine.open_pinhole(MEDIA, PBX, 1.5) == before[0].external
    assert len(engine.mappings(1.5)) == 1
    assert "any (SIP ALG pinhole)" in engine.mappings(1.5)[0].permissions


def test_a_pinhole_expires_like_any_mapping():
    engine = nat("port-restricted", udp_timeout=30)
    external = engine.open_pinhole(MEDIA, PBX, 1.0)
    assert engine.inbound(udp(f"{S2}:7078", f"{external}"), 40.0).action is Action.DROP


def test_a_static_map_or_no_translation_or_no_port_opens_nothing_new():
    static = StaticMap("udp", (4000, 4000), "10.0.0.2", (4000, 4000))
    assert nat(static_maps=(static,)).open_pinhole(MEDIA, PBX, 1.0) == Endpoint(WAN, 4000)
    assert nat("none").open_pinhole(MEDIA, PBX, 1.0) is None
    assert nat().open_pinhole(Endpoint("192.168.9.9", 4000), PBX, 1.0) is None, "not internal"
    full = nat(max_mappings_per_host=1)
    full.outbound(udp(f"{MEDIA}", f"{PBX}"), 1.0)
    assert full.open_pinhole(Endpoint("10.0.0.2", 4002), PBX, 1.0) is None
    assert any(isinstance(e, Exhausted) for e in full.drain_events())
