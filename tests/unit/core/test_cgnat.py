"""Carrier-grade NAT port blocks: pairing, blocks, quota, exhaustion, release (core.cgnat).

The hypothesis tests drive random allocations, releases and flushes (and,
through the engine, random traffic and time) and check every rule against
a model kept here from what was handed out and from the CGN log events,
never from PortBlocks' own tables.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.core.behaviour import PortAssignment, behaviour_from
from natlab.core.cgnat import CgnatSettings, PortBlockAllocated, PortBlockReleased, PortBlocks
from natlab.core.engine import Action, DropReason, NatConfig, NatEngine
from natlab.core.events import Event, Exhausted
from natlab.core.martians import MartianSources, RouterFacts
from natlab.core.packets import Proto

from .helpers import echo, ep, tcp, udp

UDP, TCP, ICMP = int(Proto.UDP), int(Proto.TCP), int(Proto.ICMP)
POOL = ("203.0.113.10", "203.0.113.11", "203.0.113.12")
INSIDE = "100.64.0.0/10"
SUBSCRIBERS = [f"100.64.0.{i}" for i in range(2, 8)]
SERVER = "198.51.100.1:3478"


# -- PortBlocks alone: random allocations and releases against a model ----------------------


class Log:
    """The CGN log as the events tell it: which blocks are held, by whom."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.blocks: dict[tuple[str, int], tuple[str, int, float]] = {}  # (public, first) -> ...

    def emit(self, event: Event) -> None:
        self.events.append(event)
        key = (event.public, event.first_port)  # type: ignore[attr-defined]
        if isinstance(event, PortBlockAllocated):
            assert key not in self.blocks, f"block {key} handed out twice"
            self.blocks[key] = (event.subscriber, event.last_port, event.at)
        elif isinstance(event, PortBlockReleased):
            subscriber, last, allocated_at = self.blocks.pop(key)
            assert (subscriber, last, allocated_at) == (
                event.subscriber,
                event.last_port,
                event.allocated_at,
            )

    def of(self, subscriber: str) -> list[tuple[str, int, int]]:
        return [
            (p, first, last) for (p, first), (s, last, _) in self.blocks.items() if s == subscriber
        ]


block_settings = st.builds(
    CgnatSettings,
    port_block=st.sampled_from([1, 2, 3, 8]),
    blocks_per_subscriber=st.integers(1, 3),
    port_quota=st.none() | st.integers(1, 12),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cgnat=block_settings,
    addresses=st.integers(1, 3),
    span=st.integers(8, 40),
    mode=st.sampled_from(list(PortAssignment)),
    parity=st.booleans(),
    reserve=st.booleans(),
    data=st.data(),
)
def test_blocks_hold_every_rule_under_random_use(
    cgnat, addresses, span, mode, parity, reserve, data
) -> None:
    low, high = 2000, 2000 + span - 1
    pool = POOL[:addresses]
    reserved = {(UDP, pool[0]): frozenset({2005})} if reserve else {}
    log = Log()

    def build() -> PortBlocks:
        return PortBlocks(
            cgnat,
            pool,
            (low, high),
            mode=mode,
            parity=parity,
            rng=random.Random(1),
            reserved=reserved,
            emit=log.emit,
        )

    if parity and cgnat.port_block % 2:
        with pytest.raises(ValueError, match="parity needs an even port_block"):
            build()
        return
    blocks = build()
    usable = [
        (a, low + i * cgnat.port_block)
        for a in pool
        for i in range(span // cgnat.port_block)
        if not (
            reserve and a == pool[0] and 0 <= 2005 - low - i * cgnat.port_block < cgnat.port_block
        )
    ]
    held: dict[tuple[int, str, int], str] = {}  # (proto, public, port) -> subscriber
    quota = cgnat.port_quota or len(usable) * cgnat.port_block * 3  # None: only the blocks limit
    now = 0.0
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        now += data.draw(st.sampled_from([0.0, 1.0, 7.5]), label="delay")
        action = data.draw(st.sampled_from(["allocate"] * 5 + ["release"] * 3 + ["flush"]))
        if action == "allocate":
            inside = data.draw(st.sampled_from(SUBSCRIBERS), label="subscriber")
            proto = data.draw(st.sampled_from([UDP, TCP, ICMP]), label="proto")
            internal = data.draw(st.sampled_from([low, low + 1, low + 9, 5060, 5061]), label="port")
            mine = log.of(inside)
            free_before = (
                [
                    i
                    for i in mine
                    if i[1] <= internal <= i[2] and (proto, i[0], internal) not in held
                ]
                if mode is PortAssignment.PRESERVE
                else []
            )
            got = blocks.allocate(proto, inside, internal, now)
            count = sum(1 for s in held.values() if s == inside)
            if isinstance(got, str):
                assert inside in got, "a refusal names the subscriber"
                want = internal & 1 if parity and proto != ICMP else None
                free_in_mine = any(
                    (proto, p, port) not in held
                    for p, first, last in mine
                    for port in range(first, last + 1)
                    if want is None or port & 1 == want
                )
                taken_blocks = {(p, f) for p, f, _ in (i for s in SUBSCRIBERS for i in log.of(s))}
                paired = mine[0][0] if mine else None
                free_blocks = [
                    u for u in usable if u not in taken_blocks and paired in (None, u[0])
                ]
                assert count >= quota or (
                    not free_in_mine
                    and (len(mine) >= cgnat.blocks_per_subscriber or not free_blocks)
                ), f"refused with room left: {got}"
                continue
            public, port = got
            assert (proto, public, port) not in held, "a port handed out twice"
            assert count < quota
            if parity and proto != ICMP:
                assert port & 1 == internal & 1
            if free_before:
                assert port == internal, "preserve keeps the port when the block has it free"
            held[(proto, public, port)] = inside
        elif action == "release" and held:
            key = data.draw(st.sampled_from(sorted(held)), label="held")
            inside = held.pop(key)
            proto, public, port = key
            [(_, first, last)] = [
                b for b in log.of(inside) if b[0] == public and b[1] <= port <= b[2]
            ]
            before = len(log.events)
            blocks.release(proto, public, port, now)
            still = any(
                s == inside and p == public and first <= q <= last for (_, p, q), s in held.items()
            )
            released = [e for e in log.events[before:] if isinstance(e, PortBlockReleased)]
            if still:
                assert not released, "a block went back while a mapping still used it"
            else:
                assert (
                    len(released) == 1 and released[0].first_port <= port <= released[0].last_port
                )
        elif action == "flush":
            blocks.release_all(now)
            held.clear()
            assert not log.blocks
        # the rules, after every step
        for (_, public, port), inside in held.items():
            mine = log.of(inside)
            assert {p for p, _, _ in mine} == {public}, "paired pooling: one address each"
            assert any(first <= port <= last for _, first, last in mine), (
                "a port outside its blocks"
            )
        for inside in SUBSCRIBERS:
            assert len(log.of(inside)) <= cgnat.blocks_per_subscriber
            assert sum(1 for s in held.values() if s == inside) <= quota
            for public, first, last in log.of(inside):
                assert any(
                    s == inside and p == public and first <= q <= last
                    for (_, p, q), s in held.items()
                ), "a block stays held with no mapping in it"
        spans = sorted((p, first, last) for (p, first), (_, last, _) in log.blocks.items())
        for (p1, _, last1), (p2, first2, _) in itertools.pairwise(spans):
            assert p1 != p2 or last1 < first2, "blocks overlap"
        for public, first in log.blocks:
            assert (public, first) in usable, "a block off the grid or holding a reserved port"


# -- through the engine ----------------------------------------------------------------


def cgnat(
    *, pool: tuple[str, ...] = POOL[:1], udp_timeout: float = 30, **knobs: int | None
) -> NatEngine:
    behaviour = behaviour_from("port-restricted", udp_timeout=udp_timeout, port_range=(1024, 1535))
    return NatEngine(
        NatConfig(behaviour, pool, (INSIDE,), cgnat=CgnatSettings(**knobs))  # type: ignore[arg-type]
    )


def flow(subscriber: str, port: int, now: float, engine: NatEngine):
    packet = udp(f"{subscriber}:{port}", SERVER)
    return engine.outbound(packet, now), packet.src


def test_a_subscriber_gets_a_block_and_keeps_its_address_for_every_protocol() -> None:
    engine = cgnat(pool=POOL[:2], port_block=64, blocks_per_subscriber=2)
    sources = []
    for packet in (
        udp("100.64.0.2:5000", SERVER),
        tcp("100.64.0.2:6000", "198.51.100.1:443"),
        echo("100.64.0.2", "198.51.100.1", 7),
    ):
        assert engine.outbound(packet, 1.0).action is Action.FORWARD_OUT
        sources.append(packet.src)
    assert {s.address for s in sources} == {"203.0.113.10"}
    assert all(1024 <= s.port <= 1087 for s in sources)
    [allocated] = [e for e in engine.drain_events() if isinstance(e, PortBlockAllocated)]
    assert allocated == PortBlockAllocated(1.0, "100.64.0.2", "203.0.113.10", 1024, 1087)
    _, second = flow("100.64.0.3", 5000, 2.0, engine)
    assert second.address == "203.0.113.11", "a new subscriber goes to the emptier address"


def test_exhaustion_refuses_new_flows_only_and_names_the_subscriber() -> None:
    engine = cgnat(port_block=4, blocks_per_subscriber=1)
    mapped = [flow("100.64.0.2", 5000 + i, 0.0, engine)[1] for i in range(4)]
    engine.drain_events()
    verdict, _ = flow("100.64.0.2", 5100, 1.0, engine)
    assert verdict.reason is DropReason.EXHAUSTED
    [refused] = engine.drain_events()
    assert isinstance(refused, Exhausted) and refused.subscriber == "100.64.0.2"
    assert "100.64.0.2" in refused.detail and "1 block" in refused.detail
    assert engine.counters["dropped_exhausted"] == 1
    for i, external in enumerate(mapped):  # existing flows go on both ways, untouched
        verdict, source = flow("100.64.0.2", 5000 + i, 2.0, engine)
        assert verdict.action is Action.FORWARD_OUT and source == external
        back = udp(SERVER, str(external))
        assert engine.inbound(back, 2.0).action is Action.FORWARD_IN
        assert back.dst == ep(f"100.64.0.2:{5000 + i}")
    verdict, other = flow("100.64.0.3", 5000, 3.0, engine)  # another subscriber: its own block
    assert verdict.action is Action.FORWARD_OUT and 1028 <= other.port <= 1031


def test_the_quota_holds_below_the_blocks() -> None:
    engine = cgnat(port_block=8, blocks_per_subscriber=2, port_quota=3)
    assert [flow("100.64.0.2", 5000 + i, 0.0, engine)[0].action for i in range(4)] == [
        Action.FORWARD_OUT
    ] * 3 + [Action.DROP]
    refused = engine.drain_events()[-1]
    assert "quota of 3" in refused.detail


def test_the_pool_running_out_refuses_the_next_subscriber() -> None:
    engine = cgnat(port_block=256, blocks_per_subscriber=1)  # 1024-1535: two blocks
    assert flow("100.64.0.2", 5000, 0.0, engine)[0].action is Action.FORWARD_OUT
    assert flow("100.64.0.3", 5000, 0.0, engine)[0].action is Action.FORWARD_OUT
    assert flow("100.64.0.4", 5000, 0.0, engine)[0].reason is DropReason.EXHAUSTED
    assert engine.drain_events()[-1].detail == (
        "subscriber 100.64.0.4: no free port block left in the pool"
    )


def test_a_block_goes_back_when_its_last_mapping_expires() -> None:
    engine = cgnat(port_block=16, blocks_per_subscriber=1, udp_timeout=30)
    flow("100.64.0.2", 5000, 0.0, engine)
    flow("100.64.0.2", 5001, 10.0, engine)
    engine.drain_events()
    engine.expire(35.0)  # the first mapping lapsed at 30; the second lives until 40
    assert not [e for e in engine.drain_events() if isinstance(e, PortBlockReleased)]
    engine.expire(40.0)
    released = [e for e in engine.drain_events() if isinstance(e, PortBlockReleased)]
    assert released == [PortBlockReleased(40.0, "100.64.0.2", "203.0.113.10", 1024, 1039, 0.0)]
    assert list(engine.port_blocks.subscribers()) == []  # type: ignore[union-attr]
    _, again = flow("100.64.0.3", 5000, 41.0, engine)
    assert again.port == 1024, "the released block is the first one handed out again"


def test_a_flush_releases_every_block_and_logs_it() -> None:
    engine = cgnat(port_block=16)
    flow("100.64.0.2", 5000, 0.0, engine)
    flow("100.64.0.3", 5000, 0.0, engine)
    engine.drain_events()
    engine.flush(5.0)
    released = [e for e in engine.drain_events() if isinstance(e, PortBlockReleased)]
    assert [(e.subscriber, e.at) for e in released] == [("100.64.0.2", 5.0), ("100.64.0.3", 5.0)]


def test_a_behaviour_whose_port_range_holds_no_block_is_refused_and_changes_nothing() -> None:
    engine = cgnat(port_block=512)
    _, before = flow("100.64.0.2", 5000, 0.0, engine)
    with pytest.raises(ValueError, match="port_block 512 is larger than the port range"):
        engine.reconfigure(behaviour_from("full-cone", port_range=(2000, 2100)), 1.0)
    verdict, again = flow("100.64.0.2", 5000, 2.0, engine)
    assert verdict.action is Action.FORWARD_OUT and again == before


def test_settings_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError, match="port_block"):
        CgnatSettings(port_block=0)
    with pytest.raises(ValueError, match="blocks_per_subscriber"):
        CgnatSettings(blocks_per_subscriber=0)
    with pytest.raises(ValueError, match="port_quota must be at least 1"):
        CgnatSettings(port_quota=0)
    assert CgnatSettings(**CgnatSettings(64, 2, 100).as_json()) == CgnatSettings(64, 2, 100)


def test_show_lists_the_pool_and_each_subscriber_with_its_blocks() -> None:
    engine = cgnat(port_block=16, blocks_per_subscriber=2, port_quota=20)
    for i in range(17):
        flow("100.64.0.2", 5000 + i, 3.0, engine)
    shown = engine.port_blocks.as_json()  # type: ignore[union-attr]
    assert shown["port_quota"] == 20
    assert shown["pool"] == [{"public": "203.0.113.10", "blocks": 32, "free_blocks": 30}]
    assert shown["subscribers"] == [
        {
            "subscriber": "100.64.0.2",
            "public": "203.0.113.10",
            "ports_held": 17,
            "blocks": [
                {"first_port": 1024, "last_port": 1039, "allocated_at": 3.0},
                {"first_port": 1040, "last_port": 1055, "allocated_at": 3.0},
            ],
        }
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([2, 4, 16]),
    blocks_each=st.integers(1, 3),
    pool=st.integers(1, 3),
    data=st.data(),
)
def test_random_traffic_keeps_pairing_and_blocks_and_never_breaks_live_flows(
    size, blocks_each, pool, data
) -> None:
    """Through the engine, with time: a subscriber's flows all leave from its one address,
    inside its blocks; a refusal never touches a flow that was already there."""
    behaviour = behaviour_from("full-cone", udp_timeout=20, port_range=(1024, 1024 + 4 * size - 1))
    engine = NatEngine(
        NatConfig(behaviour, POOL[:pool], (INSIDE,), cgnat=CgnatSettings(size, blocks_each))
    )
    log = Log()
    live: dict[tuple[str, int], tuple[str, float]] = {}  # internal -> (external, last sent)
    now = 0.0
    for _ in range(data.draw(st.integers(1, 50), label="steps")):
        now += data.draw(st.sampled_from([0.0, 0.5, 3.0, 21.0]), label="delay")
        subscriber = data.draw(st.sampled_from(SUBSCRIBERS[:4]), label="subscriber")
        port = data.draw(st.integers(5000, 5005), label="port")
        verdict, source = flow(subscriber, port, now, engine)
        for event in engine.drain_events():
            if isinstance(event, PortBlockAllocated | PortBlockReleased):
                log.emit(event)
        previous = live.get((subscriber, port))
        alive = previous is not None and now < previous[1] + 20
        if verdict.action is Action.DROP:
            assert verdict.reason is DropReason.EXHAUSTED and not alive, "a live flow refused"
            live.pop((subscriber, port), None)
            continue
        if alive:
            assert str(source) == previous[0], "a live flow moved"
        live[(subscriber, port)] = (str(source), now)
        mine = log.of(subscriber)
        assert {p for p, _, _ in mine} == {source.address}, "paired pooling broken"
        assert any(first <= source.port <= last for _, first, last in mine)
        taken = [str(s) for (_, _), (s, t) in live.items() if now < t + 20]
        assert len(taken) == len(set(taken)), "two live flows share an external endpoint"


def test_the_shared_space_is_no_martian_on_a_home_wan_but_is_on_the_carrier_wan() -> None:
    """A home router's WAN sits on 100.64.0.0/10: the carrier and other homes are honest
    sources there. On the carrier's WAN (the internet) its own inside space is forged."""
    home = MartianSources(RouterFacts(("100.64.0.2", "192.168.1.1"), ("192.168.1.0/24",)))
    assert home.reason("100.64.0.1") is None  # the carrier itself
    assert home.reason("100.64.0.3") is None  # another home on the carrier's segment
    assert home.reason("100.127.255.254") is None
    carrier = MartianSources(RouterFacts(("203.0.113.10", "100.64.0.1"), ("100.64.0.0/24",)))
    assert carrier.reason("100.64.0.2") == "100.64.0.0/24, a network on the router's LAN side"
