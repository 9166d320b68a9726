"""Martian sources on the WAN (natlab.core.martians) and the engine's martian-source drops.

The classifier is held to an oracle built on the standard library's own
knowledge of address ranges, over any address and any router facts; the
engine tests replay the packet that started the PBX loop (a forged
203.0.113.1:5060 -> 203.0.113.1:5060 through a port forward).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.core.behaviour import PRESETS
from natlab.core.engine import Action, DropReason, NatConfig, NatEngine, StaticMap
from natlab.core.events import Dropped
from natlab.core.martians import CACHE_LIMIT, MartianSources, RouterFacts
from natlab.core.packets import Proto
from natlab.router.config import DaemonConfig, PortConfig

from .helpers import LAN, WAN, echo, ep, nat, tcp, udp

EDGES = [
    "0.0.0.0",
    "0.255.255.255",
    "1.0.0.0",
    "126.255.255.255",
    "127.0.0.1",
    "127.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.254.0.0",
    "169.254.255.255",
    "169.255.0.0",
    "223.255.255.255",
    "224.0.0.0",
    "239.255.255.255",
    "240.0.0.0",
    "255.255.255.254",
    "255.255.255.255",
    "10.0.0.1",
    "100.64.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "203.0.113.1",
    "203.0.113.255",
]
addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.sampled_from(EDGES),
)
networks = st.builds(
    lambda address, prefix: str(IPv4Network(f"{address}/{prefix}", strict=False)),
    addresses,
    st.integers(8, 32),
)
facts = st.builds(
    RouterFacts,
    own_addresses=st.lists(addresses, max_size=3).map(tuple),
    lan_networks=st.lists(networks, max_size=3).map(tuple),
    wan_broadcasts=st.lists(addresses, max_size=2).map(tuple),
)


def oracle(source: str, known: RouterFacts) -> bool:
    """Martian by the standard library's ranges and the router's own facts."""
    ip = IPv4Address(source)
    return (
        source in known.own_addresses
        or source in known.wan_broadcasts
        or ip in IPv4Network("0.0.0.0/8")
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved  # 240.0.0.0/4, the limited broadcast included
        or any(ip in IPv4Network(n) for n in known.lan_networks)
    )


@given(source=addresses, known=facts)
def test_a_source_is_martian_exactly_when_the_oracle_says_so(
    source: str, known: RouterFacts
) -> None:
    martians = MartianSources(known)
    first = martians.reason(source)
    assert (first is not None) == oracle(source, known)
    assert martians.reason(source) == first  # the cached answer is the same


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("203.0.113.1", "the router's own address"),
        ("10.0.0.1", "the router's own address"),
        ("203.0.113.255", "the broadcast address of the WAN segment"),
        ("255.255.255.255", "the limited broadcast address"),
        ("0.1.2.3", '"this network" 0.0.0.0/8'),
        ("127.0.0.1", "loopback 127.0.0.0/8"),
        ("169.254.9.9", "link-local 169.254.0.0/16"),
        ("239.1.1.1", "multicast 224.0.0.0/4"),
        ("250.0.0.1", "reserved 240.0.0.0/4"),
        ("10.0.0.7", "10.0.0.0/24, a network on the router's LAN side"),
        ("10.9.0.7", "10.9.0.0/16, a network on the router's LAN side"),
    ],
)
def test_each_kind_of_martian_is_named(source: str, said: str) -> None:
    known = RouterFacts(
        ("203.0.113.1", "10.0.0.1"), ("10.0.0.0/24", "10.9.0.0/16"), ("203.0.113.255",)
    )
    assert MartianSources(known).reason(source) == said


@pytest.mark.parametrize(
    "source", ["10.0.0.1", "10.0.0.254", "100.64.0.1", "172.16.5.5", "192.168.2.1", "198.51.100.7"]
)
def test_private_sources_outside_this_router_s_lans_are_honest(source: str) -> None:
    """Double NAT / CGNAT: this router's WAN sits on another router's private LAN."""
    behind_a_carrier = RouterFacts(("100.64.0.2", "192.168.1.1"), ("192.168.1.0/24",))
    assert MartianSources(behind_a_carrier).reason(source) is None


def test_the_cache_stays_bounded_under_a_flood_of_sources() -> None:
    martians = MartianSources(RouterFacts((WAN,), (LAN,)))
    for n in range(CACHE_LIMIT + 500):
        martians.reason(str(IPv4Address(0xC6336400 + n)))
    assert len(martians._cache) == CACHE_LIMIT
    assert martians.reason("127.0.0.9") == "loopback 127.0.0.0/8"  # past the limit, still right


# -- the engine ------------------------------------------------------------------------------

PBX = "10.0.0.2"
FORWARD = StaticMap(Proto.UDP, (5060, 5060), PBX, (5060, 5060))


def router(preset: str = "full-cone") -> NatEngine:
    """main-branch's main: WAN 203.0.113.1/24, LAN 10.0.0.1/24, udp 5060 forwarded to the PBX."""
    return NatEngine(
        NatConfig(
            behaviour=PRESETS[preset],
            external_addresses=(WAN,),
            internal_networks=(LAN,),
            static_maps=(FORWARD,),
            local_udp_ports=(3478, 3479),
            router_addresses=("10.0.0.1",),
            wan_broadcasts=("203.0.113.255",),
        )
    )


def test_the_forged_packet_that_started_the_pbx_loop_is_dropped_as_martian() -> None:
    engine = router()
    forged = udp(f"{WAN}:5060", f"{WAN}:5060")
    verdict = engine.inbound(forged, 1.0)
    assert verdict.action is Action.DROP
    assert verdict.reason is DropReason.MARTIAN_SOURCE
    assert str(forged.dst) == f"{WAN}:5060"  # not rewritten towards the PBX
    assert engine.counters["dropped_martian_source"] == 1
    assert engine.counters["translated_in"] == 0
    [event] = engine.drain_events()  # no static-map-hit: the forward was never used
    assert event == Dropped(
        1.0,
        DropReason.MARTIAN_SOURCE,
        "inbound",
        Proto.UDP,
        ep(f"{WAN}:5060"),
        ep(f"{WAN}:5060"),
        f"source {WAN} is the router's own address: no packet from the WAN can come from there",
    )
    assert event.as_json()["reason"] == "martian-source"


@pytest.mark.parametrize(
    "source",
    [
        "10.0.0.1",
        "10.0.0.2",
        "0.0.0.0",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "203.0.113.255",
    ],
)
@pytest.mark.parametrize("kind", ["udp", "tcp", "echo-reply"])
def test_no_martian_reaches_the_lan_by_any_protocol(source: str, kind: str) -> None:
    engine = router()
    if kind == "udp":
        packet = udp(f"{source}:5060", f"{WAN}:5060")
    elif kind == "tcp":
        packet = tcp(f"{source}:5060", f"{WAN}:5060", "S")
    else:
        packet = echo(source, WAN, 7, reply=True)
    assert engine.inbound(packet, 0.0).reason is DropReason.MARTIAN_SOURCE


def test_a_martian_cannot_use_a_mapping_either() -> None:
    engine = router()
    out = udp("10.0.0.3:4000", "198.51.100.1:3478")
    engine.outbound(out, 0.0)
    assert engine.inbound(udp("198.51.100.1:3478", str(out.src)), 0.1).action is Action.FORWARD_IN
    forged = udp("127.0.0.1:3478", str(out.src))  # full cone: any honest source would do
    assert engine.inbound(forged, 0.2).reason is DropReason.MARTIAN_SOURCE


def test_honest_internet_sources_still_use_the_forward() -> None:
    engine = router()
    packet = udp("198.51.100.7:5060", f"{WAN}:5060")
    assert engine.inbound(packet, 0.0).action is Action.FORWARD_IN
    assert str(packet.dst) == f"{PBX}:5060"


def test_hairpin_through_the_forward_still_works() -> None:
    """A LAN host's packet to the router's public address arrives on the LAN: no martian."""
    engine = router()
    packet = udp("10.0.0.3:4000", f"{WAN}:5060")
    assert engine.outbound(packet, 0.0).action is Action.HAIRPIN
    assert str(packet.dst) == f"{PBX}:5060"
    assert packet.src.address == WAN  # the source shown is the router's own address
    answer = udp(f"{PBX}:5060", str(packet.src))
    assert engine.outbound(answer, 0.1).action is Action.HAIRPIN  # the PBX's reply comes back
    assert engine.counters["dropped_martian_source"] == 0


def test_a_router_without_translation_drops_martians_and_passes_the_rest() -> None:
    engine = NatEngine(
        NatConfig(behaviour=PRESETS["none"], external_addresses=(WAN,), internal_networks=(LAN,))
    )
    assert engine.inbound(udp("10.0.0.5:1", "10.0.0.2:2"), 0.0).reason is (
        DropReason.MARTIAN_SOURCE
    )
    assert engine.inbound(udp("198.51.100.1:1", "10.0.0.2:2"), 0.0).action is Action.PASS


def test_an_engine_built_without_router_facts_still_knows_its_own_and_internal_addresses() -> None:
    engine = nat("full-cone")
    for source in (WAN, "10.0.0.9", "127.0.0.1"):
        assert engine.inbound(udp(f"{source}:1", f"{WAN}:5000"), 0.0).reason is (
            DropReason.MARTIAN_SOURCE
        )


def test_the_daemon_config_gives_the_engine_the_router_s_addresses_and_wan_broadcast() -> None:
    config = DaemonConfig(
        lab="t",
        router="main",
        ports=(
            PortConfig("wan", ("203.0.113.1/24", "203.0.113.9/24")),
            PortConfig("lan0", ("10.0.0.1/24",)),
            PortConfig("lan1", ("10.5.0.1/30",)),
        ),
        routes=(),
        internal_networks=("10.0.0.0/24", "10.5.0.0/30"),
        behaviour=PRESETS["full-cone"],
        static_maps=(),
        stun_ports=(),
    )
    nat_config = config.nat_config()
    assert nat_config.router_addresses == ("10.0.0.1", "10.5.0.1")
    assert set(nat_config.wan_broadcasts) == {"203.0.113.255"}
    assert nat_config.router_facts().own_addresses == (
        "203.0.113.1",
        "203.0.113.9",
        "10.0.0.1",
        "10.5.0.1",
    )


def test_a_point_to_point_wan_has_no_broadcast_address() -> None:
    config = DaemonConfig(
        "t", "r", (PortConfig("wan", ("203.0.113.0/31",)), PortConfig("lan0", ("10.0.0.1/24",))),
        (), ("10.0.0.0/24",), PRESETS["full-cone"], (), (),
    )  # fmt: skip
    assert config.nat_config().wan_broadcasts == ()
