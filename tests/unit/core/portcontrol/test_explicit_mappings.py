"""Explicit mappings in the engine (what port control asks for): open, timed, outbound too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.behaviour import PRESETS
from natlab.core.cgnat import CgnatSettings
from natlab.core.engine import Action, DropReason, NatConfig, NatEngine
from natlab.core.mapping import MapRefusal
from natlab.core.packets import Proto

from ..helpers import S1, S2, WAN, A, B, ep, nat, tcp, udp


def test_an_explicit_mapping_admits_every_remote_until_its_lifetime_ends():
    engine = nat("symmetric")
    view = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "pcp", 1.0, suggested=6000)
    assert view.external == ep(f"{WAN}:6000")
    assert (view.origin, view.lifetime, view.expires_at) == ("pcp", 60.0, 61.0)
    for source in (f"{S1}:1", f"{S2}:9999"):
        packet = udp(source, f"{WAN}:6000")
        assert engine.inbound(packet, 30.0).action is Action.FORWARD_IN
        assert packet.dst == ep(f"{A}:5000")
    late = udp(f"{S1}:1", f"{WAN}:6000")
    assert engine.inbound(late, 61.0).reason is DropReason.EXPIRED


@settings(max_examples=100, deadline=None)
@given(
    filtering=st.sampled_from(("full-cone", "restricted", "port-restricted", "symmetric")),
    port=st.integers(1, 65535),
)
def test_one_that_admits_one_address_lets_in_only_that_address_any_port(filtering, port):
    """A SIP ALG's registration pinhole: only the registrar, whatever the NAT's filtering."""
    engine = nat(filtering)
    view = engine.map_port(Proto.TCP, ep(f"{A}:5060"), 60.0, "sip-alg", 0.0, admits=S1)
    assert view.permissions == (S1,)
    allowed = tcp(f"{S1}:{port}", str(view.external), "S")
    assert engine.inbound(allowed, 1.0).action is Action.FORWARD_IN
    assert allowed.dst == ep(f"{A}:5060")
    stranger = tcp(f"{S2}:{port}", str(view.external), "S")
    verdict = engine.inbound(stranger, 1.0)
    assert verdict.reason is DropReason.FILTERED_ADDRESS
    (drop,) = [e for e in engine.drain_events() if getattr(e, "reason", None)]
    assert f"lets in only {S1}" in drop.detail


def test_a_renewal_says_again_whom_it_admits():
    engine = nat()
    engine.map_port(Proto.UDP, ep(f"{A}:5060"), 60.0, "sip-alg", 0.0, admits=S1)
    view = engine.map_port(Proto.UDP, ep(f"{A}:5060"), 60.0, "upnp", 1.0)
    assert view.permissions == ("any",)
    assert engine.inbound(udp(f"{S2}:1", str(view.external)), 2.0).action is Action.FORWARD_IN


def test_outbound_traffic_leaves_through_it_and_does_not_extend_it():
    engine = nat("symmetric")
    engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "natpmp", 0.0, suggested=6000)
    for remote in (f"{S1}:3478", f"{S2}:80"):
        packet = udp(f"{A}:5000", remote)
        assert engine.outbound(packet, 50.0).action is Action.FORWARD_OUT
        assert packet.src == ep(f"{WAN}:6000"), "symmetric NAT, yet the mapped port for all"
        assert engine.last_flow is None, "no replay: the engine decides every packet"
    assert engine.expire(60.0) == 1
    assert engine.mappings(60.0) == []


def test_tcp_fin_does_not_shorten_an_explicit_mapping():
    engine = nat()
    engine.map_port(Proto.TCP, ep(f"{A}:80"), 600.0, "upnp", 0.0, suggested=8080)
    syn = tcp(f"{S1}:40000", f"{WAN}:8080", "S")
    assert engine.inbound(syn, 1.0).action is Action.FORWARD_IN
    assert engine.inbound(tcp(f"{S1}:40000", f"{WAN}:8080", "F"), 2.0).action is Action.FORWARD_IN
    assert engine.explicit_mapping(Proto.TCP, ep(f"{A}:80"), 500.0) is not None


def test_renewal_keeps_the_port_and_sets_the_new_lifetime():
    engine = nat()
    first = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "pcp", 0.0, suggested=6000)
    again = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 10.0, "pcp", 5.0, suggested=7000)
    assert again.external == first.external
    assert again.expires_at == 15.0
    assert engine.expire(15.0) == 1, "a shorter lifetime is honoured"


def test_a_taken_port_is_refused_when_exact_else_another_is_given():
    engine = nat()
    engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "pcp", 0.0, suggested=6000)
    refused = engine.map_port(
        Proto.UDP, ep(f"{B}:5000"), 60.0, "upnp", 0.0, suggested=6000, exact=True
    )
    assert refused is MapRefusal.PORT_TAKEN
    other = engine.map_port(Proto.UDP, ep(f"{B}:5000"), 60.0, "pcp", 0.0, suggested=6000)
    assert other.external.port != 6000


def test_reserved_ports_are_never_claimed():
    engine = nat(local_udp_ports=(3478, 3479))
    view = engine.map_port(Proto.UDP, ep(f"{A}:3478"), 60.0, "pcp", 0.0, suggested=3478)
    assert view.external.port != 3478
    exact = engine.map_port(Proto.UDP, ep(f"{B}:1"), 60.0, "pcp", 0.0, suggested=3479, exact=True)
    assert exact is MapRefusal.PORT_TAKEN


def test_quota_and_no_translation_are_refusals():
    limited = nat(max_mappings_per_host=1)
    assert limited.map_port(Proto.UDP, ep(f"{A}:1"), 9.0, "pcp", 0.0) is not None
    assert limited.map_port(Proto.UDP, ep(f"{A}:2"), 9.0, "pcp", 0.0) is MapRefusal.QUOTA
    assert nat("none").map_port(Proto.UDP, ep(f"{A}:1"), 9.0, "pcp", 0.0) is (
        MapRefusal.NOT_TRANSLATING
    )


def test_unmap_frees_the_port_and_says_what_it_was():
    engine = nat()
    engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "natpmp", 0.0, suggested=6000)
    gone = engine.unmap_port(Proto.UDP, ep(f"{A}:5000"), "natpmp", 1.0)
    assert gone is not None and gone.external.port == 6000
    assert engine.unmap_port(Proto.UDP, ep(f"{A}:5000"), "natpmp", 1.0) is None
    assert engine.inbound(udp(f"{S1}:1", f"{WAN}:6000"), 2.0).action is Action.DROP
    again = engine.map_port(Proto.UDP, ep(f"{B}:1"), 9.0, "pcp", 2.0, suggested=6000, exact=True)
    assert again.external.port == 6000
    kinds = [event.kind for event in engine.drain_events()]
    assert kinds.count("mapping-requested") == 3


def test_peer_makes_the_mapping_a_packet_would_and_keeps_it_its_lifetime():
    engine = nat("port-restricted", udp_timeout=30)
    view = engine.peer(Proto.UDP, ep(f"{A}:5000"), ep(f"{S1}:3478"), 300.0, 0.0)
    assert view.origin == "pcp" and view.remote is None
    reply = udp(f"{S1}:3478", str(view.external))
    assert engine.inbound(reply, 200.0).action is Action.FORWARD_IN
    stranger = udp(f"{S2}:3478", str(view.external))
    assert engine.inbound(stranger, 200.0).reason is DropReason.FILTERED_ADDRESS
    packet = udp(f"{A}:5000", f"{S1}:3478")
    engine.outbound(packet, 201.0)
    assert packet.src == view.external


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("map", "unmap", "advance", "send")),
            st.sampled_from((A, B)),
            st.integers(1, 4),  # internal port
            st.one_of(st.none(), st.integers(1024, 1030)),  # suggested external port
            st.integers(0, 120),  # lifetime or seconds
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_explicit_mappings_never_share_a_port_and_live_exactly_their_lifetime(steps):
    engine = nat("port-restricted", port_range=(1024, 1030))
    now = 0.0
    granted: dict = {}
    explicit_of: dict = {}
    for op, host, port, suggested, number, exact in steps:
        internal = ep(f"{host}:{port}")
        if op == "advance":
            now += number
            engine.expire(now)
            granted = {k: v for k, v in granted.items() if v > now}
        elif op == "send":  # traffic: an implicit mapping, or through the explicit one
            packet = udp(str(internal), f"{S1}:{number + 1}")
            verdict = engine.outbound(packet, now)
            if internal in granted:
                assert verdict.action is Action.FORWARD_OUT
                assert packet.src == explicit_of[internal]
        elif op == "unmap":
            engine.unmap_port(Proto.UDP, internal, "pcp", now)
            granted.pop(internal, None)
        elif number:
            view = engine.map_port(
                Proto.UDP, internal, float(number), "pcp", now, suggested=suggested, exact=exact
            )
            if isinstance(view, MapRefusal):
                assert internal not in granted
                assert view in (MapRefusal.NO_PORTS, MapRefusal.PORT_TAKEN)
                if view is MapRefusal.PORT_TAKEN:
                    assert exact and suggested is not None
            else:
                assert 1024 <= view.external.port <= 1030
                granted[internal] = now + number
                explicit_of[internal] = view.external
        live = engine.mappings(now)
        ports = [view.external.port for view in live]
        assert len(ports) == len(set(ports))
        assert {v.internal: v.expires_at for v in live if v.origin} == granted


def test_the_port_its_traffic_already_has_becomes_the_explicit_one():
    engine = nat("port-restricted", ports="sequential", max_mappings_per_host=1)
    first = udp(f"{A}:5000", f"{S1}:3478")
    engine.outbound(first, 0.0)
    seen = first.src  # what a STUN server would have told the host
    view = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 600.0, "pcp", 1.0)
    assert view.external == seen and view.origin == "pcp"
    assert len(engine.mappings(1.0)) == 1, "one mapping, and the host's quota still holds it"
    stranger = udp(f"{S2}:1", str(seen))
    assert engine.inbound(stranger, 2.0).action is Action.FORWARD_IN, "now open to every remote"
    assert engine.expire(300.0) == 0, "it lives the PCP lifetime, not the UDP timeout"


def test_a_symmetric_nats_mappings_are_not_taken_over():
    engine = nat("symmetric")
    first = udp(f"{A}:5000", f"{S1}:3478")
    engine.outbound(first, 0.0)
    view = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 600.0, "pcp", 1.0)
    assert view.external != first.src
    assert len(engine.mappings(1.0)) == 2


def test_a_carrier_grade_nat_makes_no_explicit_mapping():
    engine = NatEngine(
        NatConfig(PRESETS["port-restricted"], (WAN,), ("10.0.0.0/24",), cgnat=CgnatSettings())
    )
    refused = engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "pcp", 0.0)
    assert refused is MapRefusal.CARRIER_GRADE
    assert engine.mappings(0.0) == []
