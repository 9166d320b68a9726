"""The flow cache: replaying the engine must be indistinguishable from asking it.

Two engines with the same behaviour see the same packets: one decides every
packet (the reference), the other sits behind two flow caches the way the
router daemon uses them (LAN side and WAN side). The packets that come out,
the mappings, the counters and the events must be the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from natlab.core.behaviour import Filtering, Mapping, behaviour_from
from natlab.core.engine import Action, NatConfig, NatEngine
from natlab.core.flows import FlowCache
from natlab.core.packets import Endpoint, decrement_ttl, parse

from .helpers import LAN, WAN, checksums, nat

HOSTS = [Endpoint("10.0.0.2", 5000), Endpoint("10.0.0.2", 5001), Endpoint("10.0.0.3", 5000)]
REMOTES = [
    Endpoint("198.51.100.1", 3478),
    Endpoint("198.51.100.1", 3479),
    Endpoint("198.51.100.2", 3478),
]
FORWARDED = {Action.FORWARD_OUT, Action.FORWARD_IN, Action.PASS}


def packet_bytes(proto: str, src: Endpoint, dst: Endpoint, flags: str, ttl: int, sum0: bool):
    ip = IP(src=src.address, dst=dst.address, ttl=ttl)
    if proto == "udp":
        layer = UDP(sport=src.port, dport=dst.port)
        if sum0:
            layer.chksum = 0
        return bytes(ip / layer / b"media")
    return bytes(ip / TCP(sport=src.port, dport=dst.port, flags=flags, seq=7) / b"data")


@dataclass
class Daemonish:
    """An engine behind one flow cache per side, glued as natlab.router.daemon glues them."""

    engine: NatEngine
    caches: dict[str, FlowCache] = field(
        default_factory=lambda: {"out": FlowCache(), "in": FlowCache()}
    )

    def handle(self, direction: str, raw: bytes, now: float) -> bytes | None:
        buffer = bytearray(raw)
        if self.caches[direction].forward(buffer, 0, len(buffer), now) is not None:
            return bytes(buffer)
        packet = parse(raw)
        decide = self.engine.outbound if direction == "out" else self.engine.inbound
        if decide(packet, now).action not in FORWARDED or not decrement_ttl(packet.data):
            return None
        if self.engine.last_flow is not None:
            self.caches[direction].learn(raw, packet, self.engine.last_flow, "egress")
        return bytes(packet.data)


def reference(engine: NatEngine, direction: str, raw: bytes, now: float) -> bytes | None:
    packet = parse(raw)
    decide = engine.outbound if direction == "out" else engine.inbound
    if decide(packet, now).action not in FORWARDED or not decrement_ttl(packet.data):
        return None
    return bytes(packet.data)


def without_checksums(data: bytes) -> bytes:
    """The packet with its IP and UDP/TCP checksums zeroed (0 and 0xFFFF both mean zero)."""
    masked = bytearray(data)
    masked[10:12] = b"\0\0"
    at = 26 if masked[9] == 17 else 36
    masked[at : at + 2] = b"\0\0"
    return bytes(masked)


def valid(data: bytes) -> bool:
    ours, theirs = checksums(data)
    return ours == theirs or (data[9] == 17 and data[26:28] == b"\0\0" and ours[0] == theirs[0])


# A few flows per example, so that packets repeat and the cache has something to replay.
flows = st.lists(
    st.tuples(
        st.sampled_from(["udp", "udp", "tcp"]),
        st.integers(0, len(HOSTS) - 1),
        st.integers(0, len(REMOTES) - 1),
        st.booleans(),  # UDP without checksum
    ),
    min_size=1,
    max_size=3,
)
steps = st.lists(
    st.tuples(
        st.sampled_from(["out"] * 4 + ["in"] * 4 + ["flush", "reconfigure"]),
        st.integers(0, 2),
        st.sampled_from(["A", "PA", "A", "PA", "S", "SA", "F", "R"]),
        st.sampled_from([64] * 9 + [1]),
        st.sampled_from([0.0, 0.01, 0.01, 0.3, 0.9, 1.2, 31.0]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mapping=st.sampled_from(list(Mapping)),
    filtering=st.sampled_from(list(Filtering)),
    refresh=st.sampled_from(["outbound", "both", "inbound", "none"]),
    translate=st.sampled_from(["nat", "nat", "nat", "none"]),
    flows=flows,
    steps=steps,
)
def test_replayed_flows_match_the_engine(
    mapping, filtering, refresh, translate, flows, steps
) -> None:
    if translate == "none":
        behaviour = behaviour_from("none")
    else:
        behaviour = behaviour_from(
            None, mapping=mapping, filtering=filtering, refresh=refresh, udp_timeout=30
        )
    config = NatConfig(behaviour, (WAN,), (LAN,), local_udp_ports=(3478,))
    alone, cached = NatEngine(config), Daemonish(NatEngine(config))
    now, externals = 0.0, {}
    for action, flow, flags, ttl, delay in steps:
        proto, host, remote, sum0 = flows[flow % len(flows)]
        now += delay
        if action == "flush":
            assert alone.flush(now) == cached.engine.flush(now)
            continue
        if action == "reconfigure" and translate == "nat":
            assert alone.reconfigure(behaviour, now) == cached.engine.reconfigure(behaviour, now)
            continue
        if action == "in":
            target = externals.get((proto, HOSTS[host]), Endpoint(WAN, HOSTS[host].port))
            raw = packet_bytes(proto, REMOTES[remote], target, flags, ttl, sum0)
        else:
            raw = packet_bytes(proto, HOSTS[host], REMOTES[remote], flags, ttl, sum0)
        direction = "in" if action == "in" else "out"
        expected = reference(alone, direction, raw, now)
        got = cached.handle(direction, raw, now)
        assert (got is None) == (expected is None)
        if got is not None:
            assert without_checksums(got) == without_checksums(expected)
            assert valid(got)
            if direction == "out":
                externals[(proto, HOSTS[host])] = Endpoint(IP(got).src, IP(got).payload.sport)
        assert alone.counters == cached.engine.counters
        assert alone.mappings(now) == cached.engine.mappings(now)
        assert [e.as_json() for e in alone.drain_events()] == [
            e.as_json() for e in cached.engine.drain_events()
        ]


def test_a_busy_flow_is_forwarded_from_the_cache() -> None:
    router = Daemonish(nat("port-restricted"))
    host, remote = HOSTS[0], REMOTES[0]
    for i in range(10):
        out = router.handle("out", packet_bytes("udp", host, remote, "", 64, False), i * 0.01)
        assert out is not None
    assert router.caches["out"].hits == 8  # the first makes the mapping, the second is learnt
    assert router.engine.counters["translated_out"] == 10
    external = Endpoint(IP(out).src, IP(out).payload.sport)
    for i in range(10):
        back = router.handle("in", packet_bytes("udp", remote, external, "", 64, False), 1 + i)
        assert back is not None and IP(back).dst == host.address
    assert router.caches["in"].hits == 9


def test_the_cache_leaves_what_it_does_not_handle_alone() -> None:
    cache = FlowCache()
    engine = nat("full-cone")
    host, remote = HOSTS[0], REMOTES[0]
    for when in (0.0, 0.1):
        raw = packet_bytes("udp", host, remote, "", 64, False)
        packet = parse(raw)
        engine.outbound(packet, when)
    cache.learn(raw, packet, engine.last_flow, "egress")
    assert len(cache) == 1
    kinds = {
        "ttl 1": packet_bytes("udp", host, remote, "", 1, False),
        "fragment": bytes(
            IP(src=host.address, dst=remote.address, flags="MF")
            / UDP(sport=host.port, dport=remote.port)
            / b"media"
        ),
        "options": bytes(
            IP(src=host.address, dst=remote.address, options=b"\x01\x01\x01\x00")
            / UDP(sport=host.port, dport=remote.port)
            / b"media"
        ),
        "bad udp length": bytearray(raw),
        "truncated": raw[:-3],
    }
    kinds["bad udp length"][24:26] = b"\x00\x07"
    for name, data in kinds.items():
        buffer = bytearray(data)
        assert cache.forward(buffer, 0, len(buffer), 0.2) is None, name
        assert buffer == bytearray(data), name
    assert cache.hits == 0


@pytest.mark.parametrize("flags", ["S", "F", "R", "SA"])
def test_tcp_segments_that_move_state_ask_the_engine(flags: str) -> None:
    engine, cache = nat("full-cone"), FlowCache()
    host, remote = HOSTS[0], REMOTES[0]
    engine.outbound(parse(packet_bytes("tcp", host, remote, "S", 64, False)), 0.0)
    raw = packet_bytes("tcp", host, remote, "A", 64, False)
    packet = parse(raw)
    engine.outbound(packet, 0.1)
    cache.learn(raw, packet, engine.last_flow, "egress")
    acks = bytearray(raw)
    assert cache.forward(acks, 0, len(acks), 0.2) == "egress"
    segment = bytearray(packet_bytes("tcp", host, remote, flags, 64, False))
    assert cache.forward(segment, 0, len(segment), 0.3) is None


def test_the_cache_is_bounded() -> None:
    cache, engine = FlowCache(limit=2), nat("full-cone")
    for port in (5000, 5001, 5002):
        host = Endpoint("10.0.0.2", port)
        for when in (0.0, 0.1):
            raw = packet_bytes("udp", host, REMOTES[0], "", 64, False)
            packet = parse(raw)
            engine.outbound(packet, when)
        cache.learn(raw, packet, engine.last_flow, port)
    assert len(cache) == 1  # full at the third: started afresh


def test_a_tcp_mapping_opening_again_is_decided_by_the_engine() -> None:
    """SYN after FIN: the next inbound segment must move the mapping back to established."""
    alone, router = nat("full-cone"), Daemonish(nat("full-cone"))
    host, remote = HOSTS[0], REMOTES[0]
    external = Endpoint(WAN, host.port)
    script = [
        ("out", host, remote, "S"),
        ("in", remote, external, "SA"),
        ("in", remote, external, "A"),  # learnt from the SA, replayed
        ("out", host, remote, "F"),
        ("out", host, remote, "S"),  # closing -> opening
        ("in", remote, external, "A"),  # opening -> established: not a replay
    ]
    for step, (direction, src, dst, flags) in enumerate(script):
        raw = packet_bytes("tcp", src, dst, flags, 64, False)
        expected = reference(alone, direction, raw, step * 0.1)
        assert router.handle(direction, raw, step * 0.1) == expected
        assert alone.mappings(step * 0.1) == router.engine.mappings(step * 0.1)
    assert router.caches["in"].hits == 1
    assert router.engine.mappings(1.0)[0].tcp_state == "established"


def test_a_udp_checksum_that_comes_to_zero_is_sent_as_ffff_from_the_cache() -> None:
    host, remote = HOSTS[0], REMOTES[0]
    router = Daemonish(nat("full-cone", ports="sequential"))

    def datagram(payload: bytes) -> bytes:
        return bytes(
            IP(src=host.address, dst=remote.address)
            / UDP(sport=host.port, dport=remote.port)
            / payload
        )

    probe = router.handle("out", datagram(b"\0\0"), 0.0)
    router.handle("out", datagram(b"\0\0"), 0.1)  # learnt
    # Adding C to a payload word turns a checksum C into one that computes to zero.
    zero = datagram(probe[26:28])
    out = router.handle("out", zero, 0.2)
    assert router.caches["out"].hits == 1
    assert out[26:28] == b"\xff\xff"
    assert valid(out)
