"""External ports: preserve / sequential / random, range, parity, exhaustion, paired pooling."""

from __future__ import annotations

import random

import pytest

from natlab.core.behaviour import PortAssignment
from natlab.core.engine import Action, DropReason
from natlab.core.events import Exhausted
from natlab.core.packets import Proto
from natlab.core.ports import PortAllocator

from .helpers import WAN, WAN2, ep, nat, tcp, udp

S1 = "198.51.100.1:3478"


def external_port(engine, internal: str, remote: str = S1, now: float = 0.0) -> int | None:
    packet = udp(internal, remote)
    verdict = engine.outbound(packet, now)
    return packet.src.port if verdict.action is Action.FORWARD_OUT else None


def test_preserve_keeps_the_port_and_falls_back_to_the_next_free_one() -> None:
    engine = nat("full-cone")
    assert external_port(engine, "10.0.0.2:5000") == 5000
    assert external_port(engine, "10.0.0.3:5000") == 5001
    assert external_port(engine, "10.0.0.4:5001") == 5002  # 5001 is taken by .3
    assert external_port(engine, "10.0.0.5:80") == 1024  # below the range: its start


def test_preserve_wraps_inside_the_range() -> None:
    engine = nat("full-cone", port_range=(40000, 40002))
    assert external_port(engine, "10.0.0.2:40002") == 40002
    assert external_port(engine, "10.0.0.3:40002") == 40000


def test_dependent_mapping_gets_a_port_per_destination_even_when_preserving() -> None:
    engine = nat("symmetric")
    assert external_port(engine, "10.0.0.2:5000", S1) == 5000
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:3479") == 5001
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.2:3478") == 5002
    assert external_port(engine, "10.0.0.2:5000", S1) == 5000  # the first one still


def test_address_dependent_mapping_shares_a_port_per_remote_address() -> None:
    engine = nat(mapping="address-dependent")
    assert external_port(engine, "10.0.0.2:5000", S1) == 5000
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:9") == 5000
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.2:3478") == 5001


def test_sequential_hands_out_ports_in_order() -> None:
    engine = nat("symmetric", ports="sequential", port_range=(20000, 20002))
    ports = [external_port(engine, f"10.0.0.2:{p}") for p in (7, 5000, 20000)]
    assert ports == [20000, 20001, 20002]


def test_sequential_skips_ports_in_use_and_wraps() -> None:
    engine = nat("full-cone", ports="sequential", port_range=(20000, 20002), udp_timeout=10)
    assert external_port(engine, "10.0.0.2:1", now=0.0) == 20000
    assert external_port(engine, "10.0.0.2:2", now=5.0) == 20001
    assert external_port(engine, "10.0.0.2:3", now=5.0) == 20002
    assert external_port(engine, "10.0.0.2:4", now=12.0) == 20000  # 20000 expired at 10


def test_random_repeats_with_the_same_seed_and_differs_with_another() -> None:
    def ports(seed: int) -> list[int | None]:
        engine = nat("symmetric", ports="random", seed=seed)
        return [external_port(engine, "10.0.0.2:5000", f"198.51.100.1:{p}") for p in range(8)]

    assert ports(7) == ports(7)
    assert ports(7) != ports(8)
    assert len(set(ports(7))) == 8
    assert all(1024 <= p <= 65535 for p in ports(7))


def test_parity_keeps_the_internal_ports_parity() -> None:
    engine = nat("full-cone", parity=True)
    assert external_port(engine, "10.0.0.2:5000") == 5000
    assert external_port(engine, "10.0.0.3:5000") == 5002  # 5001 is free but odd
    assert external_port(engine, "10.0.0.3:5001") == 5001
    assert external_port(engine, "10.0.0.4:5001") == 5003


def test_parity_from_ports_below_the_range() -> None:
    engine = nat("full-cone", parity=True)
    internals = ["10.0.0.2:80", "10.0.0.2:82", "10.0.0.2:84", "10.0.0.2:81", "10.0.0.3:80"]
    assert [external_port(engine, i) for i in internals] == [1024, 1026, 1028, 1025, 1030]


def test_preserve_finds_a_port_freed_below_earlier_fallbacks() -> None:
    engine = nat("full-cone", udp_timeout=10)
    assert external_port(engine, "10.0.0.2:5000", now=0.0) == 5000
    assert external_port(engine, "10.0.0.3:5000", now=5.0) == 5001
    assert external_port(engine, "10.0.0.4:5000", now=5.0) == 5002
    assert external_port(engine, "10.0.0.5:5000", now=11.0) == 5000  # 5000 expired at 10
    assert external_port(engine, "10.0.0.6:5000", now=11.0) == 5003


@pytest.mark.parametrize("ports", ["sequential", "random"])
def test_parity_with_other_assignments(ports) -> None:
    engine = nat("symmetric", ports=ports, parity=True)
    for internal in (5001, 5000, 7003, 7002):
        assert external_port(engine, f"10.0.0.2:{internal}") % 2 == internal % 2


def test_port_exhaustion_drops_counts_and_says_so() -> None:
    engine = nat("full-cone", port_range=(40000, 40001))
    assert external_port(engine, "10.0.0.2:1") == 40000
    assert external_port(engine, "10.0.0.2:2") == 40001
    engine.drain_events()
    verdict = engine.outbound(udp("10.0.0.2:3", S1), 1.0)
    assert verdict.reason is DropReason.EXHAUSTED
    assert engine.counters["dropped_exhausted"] == 1
    assert engine.drain_events() == [
        Exhausted(
            1.0,
            DropReason.EXHAUSTED,
            "outbound",
            Proto.UDP,
            ep("10.0.0.2:3"),
            ep(S1),
            f"no free udp port left on {WAN} in 40000-40001",
        )
    ]
    assert engine.counters["mappings_created"] == 2


def test_ports_are_per_protocol() -> None:
    engine = nat("full-cone", port_range=(40000, 40000))
    assert external_port(engine, "10.0.0.2:1") == 40000
    packet = tcp("10.0.0.2:1", S1)
    assert engine.outbound(packet, 0.0).action is Action.FORWARD_OUT
    assert packet.src.port == 40000


def test_an_expired_mapping_frees_its_port_without_a_sweep() -> None:
    engine = nat("full-cone", port_range=(40000, 40000), udp_timeout=30)
    assert external_port(engine, "10.0.0.2:1", now=0.0) == 40000
    assert external_port(engine, "10.0.0.3:1", now=10.0) is None
    assert external_port(engine, "10.0.0.3:1", now=30.0) == 40000


def test_parity_exhaustion_is_per_parity() -> None:
    engine = nat("full-cone", port_range=(40000, 40001), parity=True)
    assert external_port(engine, "10.0.0.2:2") == 40000
    assert external_port(engine, "10.0.0.3:2") is None
    assert external_port(engine, "10.0.0.3:3") == 40001


def test_max_mappings_per_host() -> None:
    engine = nat("symmetric", max_mappings_per_host=2)
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:1") is not None
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:2") is not None
    engine.drain_events()
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:3") is None
    [event] = engine.drain_events()
    assert isinstance(event, Exhausted)
    assert event.detail == "10.0.0.2 already has 2 mapping(s), its max_mappings_per_host"
    assert external_port(engine, "10.0.0.3:5000", "198.51.100.1:3") is not None  # other host
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:1") is not None  # existing


def test_max_mappings_per_host_counts_only_live_mappings() -> None:
    engine = nat("symmetric", max_mappings_per_host=1, udp_timeout=30)
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:1", now=0.0) is not None
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:2", now=29.0) is None
    assert external_port(engine, "10.0.0.2:5000", "198.51.100.1:2", now=30.0) is not None


def test_paired_pooling_keeps_each_host_on_one_address() -> None:
    engine = nat("symmetric", external=(WAN, WAN2))
    addresses = {}
    for now, (host, remote) in enumerate(
        [("10.0.0.2", 1), ("10.0.0.3", 1), ("10.0.0.4", 1), ("10.0.0.2", 2), ("10.0.0.3", 2)]
    ):
        packet = udp(f"{host}:5000", f"198.51.100.1:{remote}")
        engine.outbound(packet, float(now))
        addresses.setdefault(host, set()).add(packet.src.address)
    assert addresses == {"10.0.0.2": {WAN}, "10.0.0.3": {WAN2}, "10.0.0.4": {WAN}}


def test_paired_pooling_holds_across_protocols_and_keeps_ports_per_address() -> None:
    engine = nat("full-cone", external=(WAN, WAN2))
    assert external_port(engine, "10.0.0.2:5000") == 5000
    packet = udp("10.0.0.3:5000", S1)
    engine.outbound(packet, 0.0)
    assert packet.src == (WAN2, 5000)  # another address: the same port is free there
    segment = tcp("10.0.0.2:6000", S1)
    engine.outbound(segment, 0.0)
    assert segment.src.address == WAN
    assert engine.inbound(udp(S1, f"{WAN2}:5000"), 1.0).action is Action.FORWARD_IN
    assert engine.inbound(udp(S1, f"{WAN}:6000"), 1.0).reason is DropReason.NO_MAPPING


def test_allocator_never_hands_out_reserved_ports() -> None:
    allocator = PortAllocator(
        PortAssignment.PRESERVE,
        (100, 104),
        parity=False,
        rng=random.Random(0),
        reserved={(17, WAN): frozenset({100, 102, 104})},
    )
    assert [allocator.allocate(17, WAN, 100) for _ in range(3)] == [101, 103, None]
    allocator.release(17, WAN, 101)
    assert allocator.allocate(17, WAN, 100) == 101
    assert allocator.allocate(6, WAN, 100) == 100  # reserved for udp only


@pytest.mark.parametrize(
    ("parity", "internal", "expected"),
    [(False, 104, 100), (True, 104, 100), (True, 103, 101), (False, 7, 100)],
)
def test_allocator_wraps_past_the_top_of_the_range(parity, internal, expected) -> None:
    allocator = PortAllocator(
        PortAssignment.PRESERVE,
        (100, 104),
        parity=parity,
        rng=random.Random(0),
        reserved={(17, WAN): frozenset({103, 104})},
    )
    assert allocator.allocate(17, WAN, internal) == expected
