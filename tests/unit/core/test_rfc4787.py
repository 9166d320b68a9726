"""RFC 4787's behaviour table, packet by packet, for every preset and every axis pair.

The scene is the one of the lab tests: host A (10.0.0.2:5000) behind the
NAT sends to server S1 (198.51.100.1:3478). Then S1 from the same port, S1
from another port (3479) and S2 (another address) each send to the
mapping. Separately, A also sends to S1's other port and to S2: the mapping
each of them sees is A's first mapping (endpoint-independent) or not.
"""

from __future__ import annotations

import itertools

import pytest

from natlab.core.behaviour import PRESETS, Filtering, Mapping
from natlab.core.engine import Action, DropReason
from natlab.core.packets import Endpoint

from .helpers import WAN, ep, nat, udp

HOST = "10.0.0.2:5000"
S1_PORT = "198.51.100.1:3478"
S1_OTHER_PORT = "198.51.100.1:3479"
S2_PORT = "198.51.100.2:3478"

PASS = None  # the inbound packet reaches the host
PRESET_TABLE = [
    # preset, then what happens to S1, S1 from another port, S2 sending to
    # the mapping A made towards S1, then whether A's mapping towards
    # S1:3479 and towards S2 equals the one towards S1.
    ("full-cone", PASS, PASS, PASS, True, True),
    ("restricted", PASS, PASS, DropReason.FILTERED_ADDRESS, True, True),
    (
        "port-restricted",
        PASS,
        DropReason.FILTERED_PORT,
        DropReason.FILTERED_ADDRESS,
        True,
        True,
    ),
    ("symmetric", PASS, DropReason.FILTERED_PORT, DropReason.FILTERED_ADDRESS, False, False),
]

# The same facts per axis, from RFC 4787 sections 4.1 and 5.
FILTERING_TABLE = {
    Filtering.ENDPOINT_INDEPENDENT: (PASS, PASS, PASS),
    Filtering.ADDRESS_DEPENDENT: (PASS, PASS, DropReason.FILTERED_ADDRESS),
    Filtering.ADDRESS_AND_PORT_DEPENDENT: (
        PASS,
        DropReason.FILTERED_PORT,
        DropReason.FILTERED_ADDRESS,
    ),
}
MAPPING_TABLE = {  # same mapping towards S1's other port, towards S2
    Mapping.ENDPOINT_INDEPENDENT: (True, True),
    Mapping.ADDRESS_DEPENDENT: (True, False),
    Mapping.ADDRESS_AND_PORT_DEPENDENT: (False, False),
}


def external_after_sending(engine, remote: str, now: float) -> Endpoint:
    packet = udp(HOST, remote)
    assert engine.outbound(packet, now).action is Action.FORWARD_OUT
    assert packet.dst == ep(remote)
    return packet.src


def inbound_outcomes(engine) -> list[DropReason | None]:
    """S1, S1 from another port, S2, each sending to A's mapping towards S1."""
    external = external_after_sending(engine, S1_PORT, 0.0)
    outcomes = []
    for remote in (S1_PORT, S1_OTHER_PORT, S2_PORT):
        packet = udp(remote, str(external))
        verdict = engine.inbound(packet, 1.0)
        if verdict.action is Action.FORWARD_IN:
            assert str(packet.dst) == HOST
            outcomes.append(PASS)
        else:
            assert verdict.action is Action.DROP
            assert str(packet.dst) == str(external), "a dropped packet is left as it came"
            outcomes.append(verdict.reason)
    return outcomes


def same_mappings(engine) -> tuple[bool, bool]:
    """Whether A's mapping towards S1's other port, and towards S2, is its mapping towards S1."""
    first = external_after_sending(engine, S1_PORT, 0.0)
    return (
        external_after_sending(engine, S1_OTHER_PORT, 1.0) == first,
        external_after_sending(engine, S2_PORT, 2.0) == first,
    )


@pytest.mark.parametrize(
    ("preset", "same_port", "other_port", "other_address", "eim_port", "eim_address"),
    PRESET_TABLE,
)
def test_presets_filter_as_rfc4787_says(
    preset, same_port, other_port, other_address, eim_port, eim_address
) -> None:
    assert inbound_outcomes(nat(preset)) == [same_port, other_port, other_address]
    assert same_mappings(nat(preset)) == (eim_port, eim_address)


def test_the_preset_table_covers_every_translating_preset() -> None:
    assert {row[0] for row in PRESET_TABLE} == set(PRESETS) - {"none"}


@pytest.mark.parametrize(("mapping", "filtering"), list(itertools.product(Mapping, Filtering)))
def test_every_axis_pair(mapping: Mapping, filtering: Filtering) -> None:
    engine = nat(mapping=mapping, filtering=filtering)
    assert inbound_outcomes(engine) == list(FILTERING_TABLE[filtering])
    assert same_mappings(nat(mapping=mapping, filtering=filtering)) == MAPPING_TABLE[mapping]


@pytest.mark.parametrize("mapping", list(Mapping))
def test_the_external_address_is_the_wan_address(mapping: Mapping) -> None:
    assert external_after_sending(nat(mapping=mapping), S1_PORT, 0.0).address == WAN


def test_a_permission_opens_the_moment_the_host_sends() -> None:
    """Port-restricted: S2 is filtered until A sends to S2, then it gets in (hole punching)."""
    engine = nat("port-restricted")
    external = external_after_sending(engine, S1_PORT, 0.0)
    assert engine.inbound(udp(S2_PORT, str(external)), 1.0).reason is DropReason.FILTERED_ADDRESS
    assert external_after_sending(engine, S2_PORT, 2.0) == external
    assert engine.inbound(udp(S2_PORT, str(external)), 3.0).action is Action.FORWARD_IN


def test_symmetric_mapping_towards_s2_does_not_let_s2_in_through_the_s1_mapping() -> None:
    engine = nat("symmetric")
    towards_s1 = external_after_sending(engine, S1_PORT, 0.0)
    towards_s2 = external_after_sending(engine, S2_PORT, 1.0)
    assert towards_s1 != towards_s2
    assert engine.inbound(udp(S2_PORT, str(towards_s1)), 2.0).reason is (
        DropReason.FILTERED_ADDRESS
    )
    assert engine.inbound(udp(S2_PORT, str(towards_s2)), 2.0).action is Action.FORWARD_IN


def test_none_routes_unchanged() -> None:
    engine = nat("none")
    packet = udp(HOST, S1_PORT)
    before = bytes(packet.data)
    assert engine.outbound(packet, 0.0).action is Action.PASS
    back = udp(S2_PORT, HOST)
    assert engine.inbound(back, 1.0).action is Action.PASS
    assert bytes(packet.data) == before
    assert str(back.dst) == HOST
    assert engine.mappings(1.0) == []
    assert engine.counters["passed"] == 2
