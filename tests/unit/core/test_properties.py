"""Random traffic through random behaviours, checked against a model written here.

The model never calls the engine's key functions: it watches what the
engine did to the packets (which source an outbound packet left with,
where an inbound one was delivered) and checks that against RFC 4787 as
stated below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP

from natlab.core.behaviour import Behaviour, Filtering, Mapping, behaviour_from
from natlab.core.engine import Action, NatConfig, NatEngine, Verdict
from natlab.core.packets import Endpoint, Packet, Proto, parse

from .helpers import LAN, ROUTER, WAN, WAN2, echo_bytes, icmp_error, tcp_bytes, udp_bytes

HOSTS = [Endpoint("10.0.0.2", 5000), Endpoint("10.0.0.2", 5001), Endpoint("10.0.0.3", 5000)]
REMOTES = [
    Endpoint("198.51.100.1", 3478),
    Endpoint("198.51.100.1", 3479),
    Endpoint("198.51.100.2", 3478),
]
STUN = Endpoint(WAN, 3478)  # the router's own responder
TIMEOUTS = dict(
    udp_timeout=30, icmp_timeout=30, tcp_transitory_timeout=20, tcp_established_timeout=100
)
SHORTEST = {Proto.UDP: 30, Proto.ICMP: 30, Proto.TCP: 20}  # a mapping lives at least this
LONGEST = {Proto.UDP: 30, Proto.ICMP: 30, Proto.TCP: 100}  # and at most this after a refresh

behaviours = st.builds(
    lambda **axes: behaviour_from(None, **axes, **TIMEOUTS),
    mapping=st.sampled_from(list(Mapping)),
    filtering=st.sampled_from(list(Filtering)),
    ports=st.sampled_from(["preserve", "sequential", "random"]),
    seed=st.integers(0, 3),
    port_range=st.sampled_from([(1024, 65535), (40000, 40003)]),
    parity=st.booleans(),
    hairpin=st.booleans(),
    refresh=st.sampled_from(["outbound", "both", "inbound", "none"]),
    max_mappings_per_host=st.sampled_from([None, 2, 4]),
)
delays = st.sampled_from([0.0, 0.1, 0.7, 5.0, 19.0, 25.0, 31.0, 120.0])
tcp_flags = st.sampled_from(["S", "SA", "A", "PA", "F", "R"])


def allowed(filtering: Filtering, sent_to: Endpoint, sender: Endpoint) -> bool:
    """RFC 4787 section 5: may `sender` reach a mapping that has sent to `sent_to`?"""
    if filtering is Filtering.ENDPOINT_INDEPENDENT:
        return True
    if filtering is Filtering.ADDRESS_DEPENDENT:
        return sent_to.address == sender.address
    return sent_to == sender


@dataclass
class Model:
    """What the engine was seen to do: translations out, deliveries in, who owns which port."""

    behaviour: Behaviour
    sent: dict[tuple[int, Endpoint], list[tuple[Endpoint, Endpoint]]] = field(default_factory=dict)
    # external -> (internal it serves, last refresh); internal -> (external, last refresh)
    owner: dict[tuple[int, Endpoint], tuple[Endpoint, float]] = field(default_factory=dict)
    mapped: dict[tuple[int, Endpoint], tuple[Endpoint, float]] = field(default_factory=dict)
    externals: list[tuple[int, Endpoint]] = field(default_factory=list)

    def translated(
        self, proto: int, internal: Endpoint, external: Endpoint, remote, now, created: bool
    ) -> None:
        """An outbound packet from `internal` to `remote` left as `external`: it made the
        mapping (`created`), or refreshed it if outbound packets refresh."""
        self.sent.setdefault((proto, external), []).append((internal, remote))
        if (proto, external) not in self.externals:
            self.externals.append((proto, external))
        refresh = created or self.behaviour.refresh.outbound
        self.serves(proto, external, internal, now, refresh=refresh)
        if self.behaviour.mapping is Mapping.ENDPOINT_INDEPENDENT:
            previous = self.mapped.get((proto, internal))
            if previous is not None and previous[0] != external:
                # endpoint-independent: a second external endpoint only after the first expired
                assert now >= previous[1] + SHORTEST[Proto(proto)], (internal, previous, external)
            if refresh or previous is None:
                self.mapped[(proto, internal)] = (external, now)

    def delivered(self, proto: int, external: Endpoint, internal: Endpoint, sender, now) -> None:
        """`sender` reached `internal` through `external`: filtering must have allowed it."""
        assert any(
            host == internal and allowed(self.behaviour.filtering, remote, sender)
            for host, remote in self.sent.get((proto, external), [])
        ), f"{sender} reached {internal} via {external}, which never sent to it"
        refreshed = self.owner[(proto, external)][1]
        assert now < refreshed + LONGEST[Proto(proto)], f"{external} delivered after it expired"
        self.serves(proto, external, internal, now, refresh=self.behaviour.refresh.inbound)

    def serves(self, proto: int, external: Endpoint, internal: Endpoint, now, refresh) -> None:
        """One external endpoint serves one internal endpoint until it expires; note refreshes."""
        previous = self.owner.get((proto, external))
        if previous is not None and previous[0] != internal:
            assert now >= previous[1] + SHORTEST[Proto(proto)], (external, previous, internal)
        if previous is None or previous[0] != internal or refresh:
            self.owner[(proto, external)] = (internal, now)
        if (
            refresh
            and (proto, internal) in self.mapped
            and self.mapped[(proto, internal)][0] == external
        ):
            self.mapped[(proto, internal)] = (external, now)


def outbound_packet(data, model: Model) -> Packet:
    host = data.draw(st.sampled_from(HOSTS), label="host")
    kind = data.draw(st.sampled_from(["udp", "tcp", "echo"]), label="kind")
    targets = list(REMOTES) + [STUN] + [e for p, e in model.externals if p == Proto.UDP]
    remote = data.draw(st.sampled_from(targets), label="remote")
    if kind == "udp":
        return parse(udp_bytes(host, remote))
    if kind == "tcp":
        return parse(tcp_bytes(host, remote, data.draw(tcp_flags, label="flags")))
    return parse(echo_bytes(host.address, remote.address, host.port))


def inbound_packet(data, model: Model) -> Packet:
    """Half the time to an external endpoint seen in use, often from a remote it sent to."""
    if model.externals and data.draw(st.booleans(), label="to a mapping"):
        proto, external = data.draw(st.sampled_from(model.externals), label="external")
        senders = [remote for _, remote in model.sent[(proto, external)]] + REMOTES
    else:
        proto = data.draw(st.sampled_from(list(Proto)), label="proto")
        external = data.draw(
            st.builds(Endpoint, st.sampled_from([WAN, WAN2]), st.sampled_from([5000, 40000])),
            label="external",
        )
        senders = [*REMOTES, STUN]
    sender = data.draw(st.sampled_from(senders), label="sender")
    if proto == Proto.UDP:
        return parse(udp_bytes(sender, external))
    if proto == Proto.TCP:
        return parse(tcp_bytes(sender, external, data.draw(tcp_flags, label="flags")))
    return parse(echo_bytes(sender.address, external.address, external.port, True))


def step(engine: NatEngine, model: Model, packet: Packet, outbound: bool, now: float) -> Verdict:
    """Send one packet through the engine and tell the model what became of it."""
    src, dst, proto = packet.src, packet.dst, packet.proto  # ICMP: the peer's "port" is 0
    made = engine.counters["mappings_created"]
    verdict = engine.outbound(packet, now) if outbound else engine.inbound(packet, now)
    assert isinstance(verdict, Verdict)
    assert (verdict.action is Action.DROP) == (verdict.reason is not None)
    if outbound and packet.src != src:
        created = engine.counters["mappings_created"] > made
        model.translated(proto, src, packet.src, dst, now, created)
    if verdict.action is Action.FORWARD_IN:
        model.delivered(proto, dst, packet.dst, src, now)
    elif verdict.action is Action.HAIRPIN:
        model.delivered(proto, dst, packet.dst, packet.src, now)
    elif not outbound:
        assert packet.dst == dst, "only deliveries are rewritten"
    return verdict


def traffic(data, behaviour: Behaviour, external: tuple[str, ...]) -> None:
    engine = NatEngine(
        NatConfig(behaviour, external, (LAN,), local_udp_ports=(STUN.port, STUN.port + 1))
    )
    model = Model(behaviour)
    now = 0.0
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        now += data.draw(delays, label="delay")
        outbound = data.draw(st.booleans(), label="outbound")
        packet = (outbound_packet if outbound else inbound_packet)(data, model)
        step(engine, model, packet, outbound, now)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(behaviour=behaviours, data=st.data())
def test_never_delivers_what_filtering_forbids(behaviour, data) -> None:
    traffic(data, behaviour, (WAN,))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    behaviour=behaviours.map(lambda b: replace(b, mapping=Mapping.ENDPOINT_INDEPENDENT)),
    external=st.sampled_from([(WAN,), (WAN, WAN2)]),
    data=st.data(),
)
def test_endpoint_independent_mapping_one_external_port_per_internal_endpoint(
    behaviour, external, data
) -> None:
    """Each external endpoint serves one internal endpoint at a time, and under EIM each
    internal endpoint has one external endpoint for every destination (checked in Model)."""
    traffic(data, behaviour, external)


def chaos_packet(data, recent: list[bytes]) -> tuple[bytes, bool]:
    """Anything a LAN or the internet may send: also errors, fragments, strangers, spoofing."""
    outbound = data.draw(st.booleans(), label="outbound")
    inside = [*HOSTS, Endpoint("192.168.9.9", 1)]
    outside = [*REMOTES, STUN, Endpoint(WAN, 5000), Endpoint(WAN, 40000)]
    src = data.draw(st.sampled_from(inside if outbound else outside), label="src")
    dst = data.draw(st.sampled_from(outside if outbound else inside[:1] + outside), label="dst")
    kind = data.draw(
        st.sampled_from(["udp", "tcp", "echo", "reply", "error", "fragment", "gre"]), label="kind"
    )
    if kind == "udp":
        raw = udp_bytes(src, dst)
    elif kind == "tcp":
        raw = tcp_bytes(src, dst, data.draw(tcp_flags, label="flags"))
    elif kind in ("echo", "reply"):
        raw = echo_bytes(
            src.address, dst.address, data.draw(st.sampled_from([5000, 40000])), kind == "reply"
        )
    elif kind == "error":
        quoted = data.draw(st.sampled_from(recent)) if recent else udp_bytes(dst, src)
        source = src.address if outbound else data.draw(st.sampled_from([src.address, ROUTER]))
        raw = bytes(
            icmp_error(source, dst.address, quoted, data.draw(st.sampled_from([3, 11]))).data
        )
    elif kind == "fragment":
        raw = bytes(IP(src=src.address, dst=dst.address, flags="MF") / UDP() / b"x")
    else:
        raw = bytes(IP(src=src.address, dst=dst.address, proto=47) / (b"\x00" * 8))
    return raw, outbound


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    behaviour=behaviours,
    presets=st.sampled_from(["full-cone", "symmetric", "none"]),
    data=st.data(),
)
def test_random_packet_sequences_never_raise(behaviour, presets, data) -> None:
    engine = NatEngine(NatConfig(behaviour, (WAN, WAN2), (LAN,), local_udp_ports=(3478,)))
    now, recent = 0.0, []
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        now += data.draw(delays, label="delay")
        action = data.draw(
            st.sampled_from(["packet"] * 8 + ["expire", "flush", "reconfigure", "show"])
        )
        if action == "expire":
            assert engine.expire(now) >= 0
        elif action == "flush":
            assert engine.flush(now) >= 0
        elif action == "reconfigure":
            engine.reconfigure(behaviour_from(presets, **TIMEOUTS), now)
        elif action == "show":
            json.dumps([view.as_json(now) for view in engine.mappings(now)])
        else:
            raw, outbound = chaos_packet(data, recent)
            packet = parse(raw)
            verdict = engine.outbound(packet, now) if outbound else engine.inbound(packet, now)
            assert isinstance(verdict, Verdict)
            recent = [*recent[-5:], bytes(packet.data)]
    events = engine.drain_events()
    json.dumps([event.as_json() for event in events])
    assert all(isinstance(value, int) and value >= 0 for value in engine.counters.values())
