"""`hairpin: on|off|unfiltered`, and RST/FIN moving a TCP mapping to transitory either way.

`on` admits a hairpinned packet as the filtering would admit the same
packet from outside; `unfiltered` admits it whenever the target's mapping
lives; `off` drops it before any mapping is made.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.behaviour import Behaviour, Filtering, Hairpin, Mapping, behaviour_from
from natlab.core.engine import Action, DropReason
from natlab.core.mapping import TcpState
from natlab.core.packets import Endpoint
from natlab.topology.behaviour_input import settings_over

from .helpers import WAN, ep, icmp_error, nat, tcp, udp

A = "10.0.0.2:5000"
B = "10.0.0.3:6000"
REMOTES = ["198.51.100.1:3478", "198.51.100.1:3479", "198.51.100.2:3478"]


@pytest.mark.parametrize(
    ("written", "mode"),
    [
        *[(True, Hairpin.ON), (False, Hairpin.OFF), ("on", Hairpin.ON), ("off", Hairpin.OFF)],
        *[("unfiltered", Hairpin.UNFILTERED), ("true", Hairpin.ON), ("false", Hairpin.OFF)],
    ],
)
def test_true_and_false_still_mean_on_and_off(written, mode) -> None:
    assert settings_over(None, {"hairpin": written}).hairpin is mode
    assert Behaviour(hairpin=written).as_json()["hairpin"] == mode.value


def test_unfiltered_lets_in_what_on_filters() -> None:
    on, unfiltered = nat("symmetric"), nat("symmetric", hairpin="unfiltered")
    for engine in (on, unfiltered):
        a = udp(A, REMOTES[0])
        engine.outbound(a, 0.0)
        a_external = str(a.src)
        engine.drain_events()
        packet = udp(B, a_external)
        verdict = engine.outbound(packet, 1.0)
        if engine is on:
            assert verdict.reason is DropReason.FILTERED_ADDRESS
        else:
            assert verdict.action is Action.HAIRPIN
            assert str(packet.dst) == A
            assert packet.src.address == WAN  # still the sender's external endpoint


def test_unfiltered_still_needs_a_live_mapping() -> None:
    engine = nat("port-restricted", hairpin="unfiltered", udp_timeout=30)
    a = udp(A, REMOTES[0])
    engine.outbound(a, 0.0)
    assert engine.outbound(udp(B, f"{WAN}:40000"), 1.0).reason is DropReason.NO_MAPPING
    assert engine.outbound(udp(B, str(a.src)), 31.0).reason is DropReason.EXPIRED


def test_unfiltered_does_not_open_the_mapping_to_outside() -> None:
    engine = nat("port-restricted", hairpin="unfiltered")
    a = udp(A, REMOTES[0])
    engine.outbound(a, 0.0)
    verdict = engine.inbound(udp(REMOTES[2], str(a.src)), 1.0)
    assert verdict.reason is DropReason.FILTERED_ADDRESS


def test_an_icmp_error_about_a_hairpinned_flow_is_unfiltered_too() -> None:
    """As test_icmp's filtered case: B never sent to A's external address."""
    engine = nat("port-restricted", hairpin="unfiltered")
    engine.outbound(udp(A, REMOTES[0]), 0.0)
    b = udp(B, REMOTES[0])
    engine.outbound(b, 0.0)
    as_received = udp(str(b.src), A)  # as if B's packet had reached A
    error = icmp_error(A.split(":")[0], WAN, as_received)
    assert engine.outbound(error, 0.1).action is Action.HAIRPIN
    assert error.dst.address == B.split(":")[0]


def _key(axis: Mapping | Filtering, endpoint: Endpoint) -> tuple:
    """What of a remote endpoint an axis looks at (RFC 4787), written out here."""
    if axis.value == "endpoint-independent":
        return ()
    if axis.value == "address-dependent":
        return (endpoint.address,)
    return (endpoint.address, endpoint.port)


DESTINATIONS = [*REMOTES, f"{WAN}:6000", f"{WAN}:6001"]  # the last two: B's external side


@settings(max_examples=300, deadline=None)
@given(
    mapping=st.sampled_from(list(Mapping)),
    filtering=st.sampled_from(list(Filtering)),
    sent=st.lists(st.sampled_from(DESTINATIONS), max_size=4),
    proto=st.sampled_from(["udp", "tcp"]),
)
def test_each_mode_against_a_model_of_filtering(mapping, filtering, sent, proto) -> None:
    """B sends to A's external endpoint. On: delivered iff A's mapping has sent to what B's
    packet shows as its source (trimmed by the filtering). Unfiltered: delivered. Off:
    hairpin-off."""

    def segment(src: str, dst: str):
        return udp(src, dst) if proto == "udp" else tcp(src, dst, "S")

    for mode in Hairpin:
        engine = nat(mapping=mapping, filtering=filtering, hairpin=mode)
        first = segment(A, REMOTES[0])
        engine.outbound(first, 0.0)
        engine.outbound(segment(B, REMOTES[1]), 0.0)  # B's first mapping: port 6000
        for destination in sent:
            engine.outbound(segment(A, destination), 0.5)
        packet = segment(B, str(first.src))
        verdict = engine.outbound(packet, 1.0)
        if mode is Hairpin.OFF:
            assert verdict.reason is DropReason.HAIRPIN_OFF
            continue
        if mode is Hairpin.UNFILTERED:
            assert verdict.action is Action.HAIRPIN
            continue
        same_mapping = [REMOTES[0]] + [
            d for d in sent if _key(mapping, ep(d)) == _key(mapping, ep(REMOTES[0]))
        ]
        permitted = any(_key(filtering, ep(d)) == _key(filtering, packet.src) for d in same_mapping)
        assert (verdict.action is Action.HAIRPIN) == permitted, (verdict, packet.src)


@settings(max_examples=200, deadline=None)
@given(
    flags=st.sampled_from(["R", "RA", "F", "FA", "FPA", "RPA"]),
    inbound=st.booleans(),
    established=st.booleans(),
    at=st.floats(min_value=1.0, max_value=19.0),  # before an opening mapping expires
)
def test_rst_or_fin_either_way_makes_the_mapping_transitory(flags, inbound, established, at):
    engine = nat("port-restricted", tcp_transitory_timeout=20, tcp_established_timeout=7440)
    first = tcp(A, REMOTES[0], "S")
    engine.outbound(first, 0.0)
    mapped = str(first.src)
    if established:
        engine.inbound(tcp(REMOTES[0], mapped, "SA"), 0.5)
    if inbound:
        assert engine.inbound(tcp(REMOTES[0], mapped, flags), at).action is Action.FORWARD_IN
    else:
        assert engine.outbound(tcp(A, REMOTES[0], flags), at).action is Action.FORWARD_OUT
    [view] = engine.mappings(at)
    assert view.tcp_state is TcpState.CLOSING
    refreshed = 0.0 if inbound else at  # an inbound packet does not refresh (refresh: outbound)
    assert view.expires_at == pytest.approx(refreshed + 20)


def test_behaviour_from_accepts_the_modes() -> None:
    assert behaviour_from(None, hairpin="unfiltered").hairpin is Hairpin.UNFILTERED
