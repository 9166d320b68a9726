"""The NAT engine: packets and times in, verdicts and events out. No I/O.

How a packet is decided
=======================

The router daemon hands over a parsed packet and the current time: with
`outbound` for a packet that came from the LAN towards somewhere outside,
with `inbound` for one that came from the WAN addressed to one of the
external addresses. The engine rewrites the packet in place and returns a
shared `Verdict`; it reads no clock, opens no socket, logs nothing, and
draws random numbers only from its own `random.Random(behaviour.seed)`.

A *mapping* (binding) ties an internal endpoint, for one *mapping key*, to
an external endpoint. The mapping axis trims the remote endpoint to that
key (natlab.core.mapping): endpoint-independent keeps nothing of it, so an
internal endpoint has one mapping for every destination; address-dependent
keeps the remote address; address-and-port-dependent the whole remote. An
external port serves one mapping key at a time, so a dependent mapping gets
a distinct external port per key even when ports are preserved: a NAT that
kept the port for every destination would look endpoint-independent to
every discovery tool. Ports come from natlab.core.ports (preserve, falling
back to the next free one; sequential; random; range; parity).

Only an outbound packet creates a mapping (for TCP only a SYN; anything else
without a mapping is dropped as not-syn). Each outbound packet also records
its remote, trimmed by the filtering axis, as a *permission* of the mapping.
An inbound packet is delivered when the mapping of its destination exists,
has not expired, and holds a permission for its source trimmed the same
way; otherwise it is dropped as no-mapping, expired, filtered-address (no
permission for the source address) or filtered-port (the address is
known, not that port). A bounded record of recently expired external
endpoints tells "expired" from "no mapping" (a flush starts it afresh).

Time: a mapping lives `timeout` seconds after its last refresh: UDP
`udp_timeout`, ICMP `icmp_timeout`, TCP `tcp_transitory_timeout` until
packets have gone both ways, `tcp_established_timeout` after, and
transitory again once a FIN or RST is seen. `refresh` says which packets
refresh: outbound ones (the default), inbound ones, both, or none (a
mapping then lives its timeout from creation, as some carriers' NATs
do). Expiry is noticed when a packet
meets an old mapping, by `expire(now)`, and before any new mapping is made
(so what has lapsed frees its port and its place in the host's limit
whether or not the caller swept); each time a MappingExpired event is
emitted and the port goes back to the pool. `expire` costs nothing when
nothing is due: deadlines sit in a heap.

Hairpinning: an outbound packet to an external address is translated as for
any destination (source = the sender's external endpoint, RFC 4787 REQ-9),
then admitted as an inbound packet would be (static map, or mapping plus
filtering) and sent back to the LAN. With hairpinning `unfiltered` the
filtering is skipped: a live mapping of the target is enough. With
hairpinning off it is dropped before any mapping is made. UDP to an
external address on one of `local_udp_ports` is for the router itself (its
STUN responder): from the LAN it is translated first, creating or
refreshing the mapping as for any destination, so the responder sees what
a peer outside would see; from the WAN it is handed over as is. The
responder's answer comes back through `inbound` like any packet from
outside and must pass filtering.

Unsolicited SYNs: an inbound SYN (without ACK) that no mapping lets in is
dropped as any such packet; with `tcp_unsolicited` rst or icmp it is also
held (natlab.core.syn_hold, RFC 5382 REQ-4), and `syn_answers(now)` hands
the caller, 6 s later, the RST or ICMP error that answers it, unless an
outbound SYN from that external endpoint to the SYN's source was
translated meanwhile (a simultaneous open: it stays unanswered).

Static maps live on the first external address and win both ways: inbound
to a mapped port goes to the internal host and port without filtering, and
that host's outbound traffic from a mapped internal port leaves with the
mapped external port. Their ports and the local UDP ports are never given
to mappings. With several external addresses, pooling is paired: a host
gets its address on its first mapping (round robin) and keeps it.
A carrier-grade NAT (`NatConfig.cgnat`) takes its addresses and ports from
port blocks instead (natlab.core.cgnat): paired pooling per subscriber
(inside address), blocks, a quota, and new flows refused at exhaustion
with an event naming the subscriber.

Explicit mappings are what port control asks for (natlab.core.portcontrol):
`map_port` maps an internal endpoint, for every remote, with an origin
(pcp, natpmp, upnp; sip-alg for a registration's pinhole, which lets in
only the registrar's address) and a lifetime it lives exactly, since traffic
neither refreshes nor shortens it; like a static map it carries that endpoint's
outbound traffic too. `unmap_port` deletes one; `peer` makes or refreshes
the mapping a packet to one remote would, kept at least a lifetime.

ICMP: echo requests go out with their identifier mapped like a port (the
remote "port" is 0; identifiers come from the whole 16-bit space, without
parity) and replies come back through that mapping. An ICMP
error from outside about a translated flow is matched by the packet it
quotes: the outer destination and the quoted source go back to the
internal endpoint. An error from an internal host about an inbound flow
gets the quoted destination and the outer source rewritten to the external
side. Other ICMP, other protocols and IP fragments are dropped (unsupported,
fragment); packets from the LAN with a source outside `internal_networks`
are dropped as not-internal. A packet from the WAN whose source it cannot
honestly carry (the router's own addresses, the WAN's broadcast, 0/8,
loopback, link-local, multicast, 240/4, the internal networks; see
natlab.core.martians) is dropped before anything else as martian-source,
translation or not; the built-in STUN responder's own answers come in
through `answer_inbound`, which skips that check. With translation off
(preset `none`) every other packet passes unchanged.

Replaying: after `outbound` or `inbound`, `last_flow` is None or a function
of the time that makes, for the next packet of the same flow (same protocol,
addresses and ports, coming the same way; UDP, or TCP without SYN, FIN or
RST), the same state changes the engine would (refresh, permission,
counters) and returns True, or changes nothing and returns False when the
engine has to decide afresh: the mapping expired or went, a refresh event is
due, TCP state may move. The daemon's flow cache (natlab.core.flows) uses it
to skip parsing and deciding for most packets. Only plain translations
through a mapping that existed before the packet offer one (a one-packet
flow, such as a STUN probe, would only fill the cache), and passes when
translation is off.

Events and counters: decisions that change state or drop emit events
(mapping created, expired, flushed, reconfigured, every drop); refreshes,
static map hits and hairpins emit at most one event per second of engine
time per mapping (per static map and direction), since one per packet
would flood. Plain translations only bump counters, and the event backlog
is bounded (`events_discarded` counts what fell off).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from natlab.core.behaviour import (
    PRESETS,
    Behaviour,
    Filtering,
    Hairpin,
    TcpUnsolicited,
)
from natlab.core.cgnat import CgnatSettings, PortBlocks
from natlab.core.events import (
    Action,
    Dropped,
    DropReason,
    Event,
    Exhausted,
    Flushed,
    Hairpinned,
    MappingCreated,
    MappingExpired,
    MappingRefreshed,
    MappingRequested,
    Reconfigured,
    StaticMapHit,
    SynAnswered,
    SynHeld,
    SynWithdrawn,
    Verdict,
    format_time,
    proto_name,
)
from natlab.core.mapping import (
    OPEN,
    Binding,
    MappingView,
    MapRefusal,
    RemoteKey,
    TcpState,
    describe_key,
    trim_for,
)
from natlab.core.martians import MartianSources, RouterFacts
from natlab.core.packets import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_ERRORS,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Endpoint,
    Packet,
    Proto,
)
from natlab.core.ports import PortAllocator
from natlab.core.syn_hold import SynHold

__all__ = [
    "Action",
    "DropReason",
    "Event",
    "MappingView",
    "NatConfig",
    "NatEngine",
    "Replay",
    "StaticMap",
    "Verdict",
]

TOMBSTONES = 4096  # recently expired external endpoints remembered for "expired" drops
EVENT_BACKLOG = 10_000  # events kept between two drains
EVENT_INTERVAL = 1.0  # seconds between two refresh / hairpin / static-hit events of one mapping

_UDP, _TCP, _ICMP = int(Proto.UDP), int(Proto.TCP), int(Proto.ICMP)
_FORWARD_OUT = Verdict(Action.FORWARD_OUT)
_FORWARD_IN = Verdict(Action.FORWARD_IN)
_HAIRPIN = Verdict(Action.HAIRPIN)
_LOCAL = Verdict(Action.LOCAL)
_PASS = Verdict(Action.PASS)
_DROPS = {reason: Verdict(Action.DROP, reason) for reason in DropReason}

Replay = Callable[[float], bool]
"""Repeats a decision for the next packet of its flow at a time; False: ask the engine."""


@dataclass(frozen=True)
class StaticMap:
    """A port forward: external ports (on the first external address) to an internal host.

    Ranges are inclusive and of equal length; port p maps to
    internal_ports[0] + (p - external_ports[0]). `proto` may be given as
    "tcp"/"udp", as the topology spells it.
    """

    proto: Proto
    external_ports: tuple[int, int]
    internal_address: str
    internal_ports: tuple[int, int]

    def __post_init__(self) -> None:
        proto = Proto[self.proto.upper()] if isinstance(self.proto, str) else Proto(self.proto)
        if proto is Proto.ICMP:
            raise ValueError("a static map is for tcp or udp, not icmp")
        object.__setattr__(self, "proto", proto)
        (ext_low, ext_high), (int_low, int_high) = self.external_ports, self.internal_ports
        if not (1 <= ext_low <= ext_high <= 65535 and 1 <= int_low <= int_high <= 65535):
            raise ValueError(f"static map ports out of order or range: {self}")
        if ext_high - ext_low != int_high - int_low:
            raise ValueError(f"static map ranges differ in length: {self}")
        IPv4Address(self.internal_address)


@dataclass(frozen=True)
class NatConfig:
    """Everything a NAT engine is built from; the behaviour can change later (reconfigure)."""

    behaviour: Behaviour
    external_addresses: tuple[str, ...]
    internal_networks: tuple[str, ...]
    static_maps: tuple[StaticMap, ...] = ()
    local_udp_ports: tuple[int, ...] = ()
    router_addresses: tuple[str, ...] = ()  # the router's other interfaces' addresses
    wan_broadcasts: tuple[str, ...] = ()  # the broadcast address of each WAN subnet
    cgnat: CgnatSettings | None = None  # port blocks per subscriber (natlab.core.cgnat)

    def __post_init__(self) -> None:
        if not self.external_addresses:
            raise ValueError("a NAT needs at least one external address")
        for address in (*self.external_addresses, *self.router_addresses, *self.wan_broadcasts):
            IPv4Address(address)
        for network in self.internal_networks:
            IPv4Network(network, strict=False)

    def router_facts(self) -> RouterFacts:
        """What makes a source impossible on the WAN (natlab.core.martians)."""
        return RouterFacts(
            own_addresses=(*self.external_addresses, *self.router_addresses),
            lan_networks=self.internal_networks,
            wan_broadcasts=self.wan_broadcasts,
        )


class NatEngine:
    """One NAT router's translation state. See the module docstring for the rules."""

    def __init__(self, config: NatConfig) -> None:
        self._config = config
        self._external = frozenset(config.external_addresses)
        self._first_external = config.external_addresses[0]
        self._networks = tuple(IPv4Network(n, strict=False) for n in config.internal_networks)
        self._internal_cache: dict[str, bool] = {}
        self._martians = MartianSources(config.router_facts())
        self._local_udp = frozenset(config.local_udp_ports)
        self._static_in: dict[tuple[int, int], tuple[int, Endpoint]] = {}
        self._static_out: dict[tuple[int, str, int], tuple[int, Endpoint]] = {}
        self._index_static_maps(config.static_maps)
        reserved: dict[tuple[int, str], set[int]] = {
            (_UDP, address): set(self._local_udp) for address in config.external_addresses
        }
        for proto, port in self._static_in:
            reserved.setdefault((proto, self._first_external), set()).add(port)
        self._reserved = {pool: frozenset(ports) for pool, ports in reserved.items()}
        self._events: deque[Event] = deque(maxlen=EVENT_BACKLOG)
        self._static_event_at: dict[tuple[int | None, str], float] = {}
        self._now = 0.0
        self.last_flow: Replay | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "translated_out",
                "translated_in",
                "hairpinned",
                "local",
                "passed",
                "mappings_created",
                "mappings_expired",
                "mappings_flushed",
                "events_discarded",
                "syn_held",
                "syn_answered",
                "syn_withdrawn",
                "syn_hold_full",
                *(reason.counter for reason in DropReason),
            ),
            0,
        )
        self._apply(config.behaviour)
        self._replay_pass = self._pass_replay()

    def _index_static_maps(self, static_maps: tuple[StaticMap, ...]) -> None:
        for index, static in enumerate(static_maps):
            proto = int(static.proto)
            low = static.external_ports[0]
            offset = static.internal_ports[0] - low
            for port in range(low, static.external_ports[1] + 1):
                if (proto, port) in self._static_in:
                    raise ValueError(f"static maps overlap on {static.proto} port {port}")
                if proto == _UDP and port in self._local_udp:
                    raise ValueError(f"static map on udp port {port}, which the router serves")
                internal = Endpoint(static.internal_address, port + offset)
                self._static_in[(proto, port)] = (index, internal)
                self._static_out[(proto, internal.address, internal.port)] = (
                    index,
                    Endpoint(self._first_external, port),
                )

    def _apply(self, behaviour: Behaviour) -> None:
        """Take `behaviour` with an empty mapping table (nothing changes if it cannot be)."""
        rng = random.Random(behaviour.seed)
        blocks = None
        if self._config.cgnat is not None:
            blocks = PortBlocks(
                self._config.cgnat,
                self._config.external_addresses,
                behaviour.port_range,
                mode=behaviour.ports,
                parity=behaviour.parity,
                rng=rng,
                reserved=self._reserved,
                emit=self._emit,
            )
        self._blocks = blocks
        self._behaviour = behaviour
        self._translate = behaviour.translate
        self._hairpin = behaviour.hairpin is not Hairpin.OFF
        self._hairpin_unfiltered = behaviour.hairpin is Hairpin.UNFILTERED
        self._unsolicited = behaviour.tcp_unsolicited
        self._syns = SynHold()
        self._mapping_trim = trim_for(behaviour.mapping)
        self._filter_trim = trim_for(behaviour.filtering)
        self._refresh_inbound = behaviour.refresh.inbound
        self._refresh_outbound = behaviour.refresh.outbound
        self._max_per_host = behaviour.max_mappings_per_host
        self._ports = PortAllocator(
            behaviour.ports,
            behaviour.port_range,
            parity=behaviour.parity,
            rng=rng,
            reserved=self._reserved,
        )
        self._identifiers = PortAllocator(
            behaviour.ports, (0, 65535), parity=False, rng=rng, reserved={}
        )
        self._by_internal: dict[tuple, Binding] = {}
        self._by_external: dict[tuple[int, str, int], Binding] = {}
        self._per_host: dict[str, int] = {}
        self._pairing: dict[str, str] = {}
        self._tombstones: dict[tuple[int, str, int], tuple[Endpoint, float]] = {}
        # (deadline, tiebreak, binding), deadline never later than the binding's expiry:
        # refreshes only push expiry later, a shorter TCP timeout pushes a new entry
        self._deadlines: list[tuple[float, int, Binding]] = []
        self._tiebreak = itertools.count()

    # -- the API the router daemon calls -------------------------------------------------

    @property
    def config(self) -> NatConfig:
        """The configuration, with the behaviour currently in force."""
        return self._config

    def outbound(self, packet: Packet, now: float) -> Verdict:
        """A packet from the LAN to a destination outside the internal networks."""
        if now > self._now:
            self._now = now
        self.last_flow = None
        if not self._translate:
            self.counters["passed"] += 1
            self.last_flow = self._replay_pass
            return _PASS
        src = packet.src
        if not self.is_internal(src.address):
            return self._drop(
                DropReason.NOT_INTERNAL,
                "outbound",
                packet,
                now,
                f"source {src.address} is not in the internal networks "
                f"{', '.join(self._config.internal_networks)}",
            )
        if packet.fragment:
            return self._drop(
                DropReason.FRAGMENT, "outbound", packet, now, "IP fragments are not translated"
            )
        proto = packet.proto
        if proto == _ICMP:
            if packet.icmp_type in ICMP_ERRORS:
                return self._outbound_error(packet, now)
            if packet.icmp_type != ICMP_ECHO_REQUEST:
                return self._unsupported("outbound", packet, now)
        elif proto != _UDP and proto != _TCP:
            return self._unsupported("outbound", packet, now)
        dst = packet.dst
        to_us = dst.address in self._external
        local = to_us and proto == _UDP and dst.port in self._local_udp
        if to_us and not local:
            if not self._hairpin:
                return self._drop(
                    DropReason.HAIRPIN_OFF,
                    "outbound",
                    packet,
                    now,
                    f"hairpinning is off: {src} may not reach the external address {dst}",
                )
            if proto == _ICMP:
                return self._drop(
                    DropReason.UNSUPPORTED,
                    "outbound",
                    packet,
                    now,
                    f"echo request to the router's external address {dst.address}",
                )
        static = self._static_out.get((proto, src.address, src.port)) if self._static_out else None
        binding = None
        if static is not None:
            external = static[1]
            self._static_hit(static[0], "outbound", packet.proto, src, external, dst, now)
        else:
            found = self._explicit(proto, src, now) or self._outbound_binding(packet, now)
            if type(found) is Verdict:
                return found
            binding = found
            external = found.external
        packet.set_source(external)
        if proto == _TCP and packet.tcp_flags & TCP_SYN and self._syns:
            self._withdraw_syn(src, external, dst, now)
        if not to_us:
            self.counters["translated_out"] += 1
            if binding is not None and binding.created < now and binding.remote is not OPEN:
                self.last_flow = self._outbound_replay(binding, self._filter_trim(*dst))
            return _FORWARD_OUT
        if local:
            self.counters["local"] += 1
            return _LOCAL
        return self._hairpin_back(packet, src, binding, None if static is None else static[0], now)

    def inbound(self, packet: Packet, now: float) -> Verdict:
        """A packet from the WAN addressed to one of the external addresses.

        A source no packet from the WAN can have is dropped first (martian-source).
        """
        if self.martian(packet, now):
            self.last_flow = None
            return _DROPS[DropReason.MARTIAN_SOURCE]
        return self._inbound(packet, now)

    def answer_inbound(self, packet: Packet, now: float) -> Verdict:
        """The router's own answer (its STUN responder) to a LAN host's translated request.

        It comes in through the NAT like a packet from outside, filtering and
        all; its source is the router's own address, which is no martian here.
        """
        return self._inbound(packet, now)

    def martian(self, packet: Packet, now: float) -> bool:
        """Whether a packet that arrived on the WAN has a source it cannot honestly have.

        Such a packet is counted and told as a martian-source drop; the caller
        drops it. `inbound` asks this itself; the daemon asks it for what it
        would answer without the engine (pings to the router).
        """
        why = self._martians.reason(packet.src.address)
        if why is None:
            return False
        if now > self._now:
            self._now = now
        self._drop(
            DropReason.MARTIAN_SOURCE,
            "inbound",
            packet,
            now,
            f"source {packet.src.address} is {why}: no packet from the WAN can come from there",
        )
        return True

    def _inbound(self, packet: Packet, now: float) -> Verdict:
        if now > self._now:
            self._now = now
        self.last_flow = None
        if not self._translate:
            self.counters["passed"] += 1
            self.last_flow = self._replay_pass
            return _PASS
        if packet.fragment:
            return self._drop(
                DropReason.FRAGMENT, "inbound", packet, now, "IP fragments are not translated"
            )
        dst = packet.dst
        if dst.address not in self._external:
            return self._drop(
                DropReason.NO_MAPPING,
                "inbound",
                packet,
                now,
                f"{dst.address} is not an external address of this router",
            )
        proto = packet.proto
        if proto == _UDP:
            if dst.port in self._local_udp:
                self.counters["local"] += 1
                return _LOCAL
        elif proto == _ICMP:
            if packet.icmp_type in ICMP_ERRORS:
                target = self._error_target(packet, now, "inbound")
                if type(target) is Verdict:
                    return target
                self.counters["translated_in"] += 1
                return _FORWARD_IN
            if packet.icmp_type != ICMP_ECHO_REPLY:
                return self._unsupported("inbound", packet, now)
        elif proto != _TCP:
            return self._unsupported("inbound", packet, now)
        where = (proto, dst.address, dst.port)
        internal = self._inbound_target(packet, now, "inbound")
        if type(internal) is Verdict:
            if proto == _TCP and self._unsolicited is not TcpUnsolicited.DROP:
                self._hold_syn(packet, internal, now)
            return internal
        packet.set_destination(internal)
        self.counters["translated_in"] += 1
        binding = self._by_external.get(where)  # None for a static map (its ports are reserved)
        if binding is not None and binding.remote is not OPEN:
            self.last_flow = self._inbound_replay(binding)
        return _FORWARD_IN

    def open_pinhole(self, internal: Endpoint, remote: Endpoint, now: float) -> Endpoint | None:
        """The external endpoint of a LAN host's UDP media port, opened to any remote: a SIP ALG's
        pinhole for the media it saw in an SDP the host sent to `remote`.

        The mapping is the one the host's first packet to `remote` would make,
        made now (or the one it has, or its static map); from now until it
        expires, inbound packets from anyone reach the host through it. None
        when the router does not translate or has no port left (an exhausted
        event says so).
        """
        if now > self._now:
            self._now = now
        if not self._translate or not self.is_internal(internal.address):
            return None
        forwarded = self.forwarded(Proto.UDP, internal)
        if forwarded is not None:
            return forwarded
        key = (_UDP, internal.address, internal.port, self._mapping_trim(*remote))
        binding = self._by_internal.get(key)
        if binding is not None and now >= binding.refreshed_at + binding.timeout:
            self._expire_binding(binding, now)
            binding = None
        if binding is None:
            made = self._create(key, Packet(bytearray(), _UDP, internal, remote), now)
            if type(made) is Verdict:
                return None
            binding = made
        binding.pinhole = True
        return binding.external

    def forwarded(self, proto: Proto, internal: Endpoint) -> Endpoint | None:
        """The external endpoint a static map (port forward) gives `internal`, if one does."""
        static = self._static_out.get((int(proto), internal.address, internal.port))
        return None if static is None else static[1]

    def expire(self, now: float) -> int:
        """Remove the mappings that have expired by `now`; return how many."""
        if now > self._now:
            self._now = now
        deadlines, count = self._deadlines, 0
        while deadlines and deadlines[0][0] <= now:
            _, _, binding = heapq.heappop(deadlines)
            if self._by_internal.get(binding.key) is not binding:
                continue  # already expired lazily, or flushed
            if now >= binding.expires_at:
                self._expire_binding(binding, now)
                count += 1
            else:
                self._schedule(binding)
        return count

    def syn_answers(self, now: float) -> list[bytearray]:
        """The answers due by `now` to unsolicited SYNs, to send out of the WAN, oldest first."""
        if not self._syns:
            return []
        if now > self._now:
            self._now = now
        answers = []
        for held in self._syns.due(now):
            self.counters["syn_answered"] += 1
            self._emit(SynAnswered(now, held.remote, held.external, self._unsolicited.value))
            answers.append(held.answer(self._unsolicited))
        return answers

    def drain_events(self) -> list[Event]:
        """The events since the last drain, oldest first."""
        events = list(self._events)
        self._events.clear()
        return events

    def mappings(self, now: float) -> list[MappingView]:
        """The live dynamic mappings, oldest first (static maps are in `config`)."""
        return [b.view() for b in self._by_internal.values() if now < b.expires_at]

    def live_mappings(self, now: float) -> tuple[int, Iterator[MappingView]]:
        """How many dynamic mappings live at `now`, and their views made as the caller goes.

        The table as it is at the call: packets may change it while a caller
        reads the views a slice at a time, between them.
        """
        bindings = [b for b in self._by_internal.values() if now < b.expires_at]
        return len(bindings), (b.view() for b in bindings)

    @property
    def port_blocks(self) -> PortBlocks | None:
        """A carrier-grade NAT's port blocks and subscribers; None for any other NAT."""
        return self._blocks

    def flush(self, now: float | None = None) -> int:
        """Drop every dynamic mapping (static maps stay); return how many there were."""
        count = self._reset(self._behaviour, now)
        self._emit(Flushed(self._now if now is None else now, count))
        return count

    def reconfigure(self, behaviour: Behaviour, now: float | None = None) -> int:
        """Take a new behaviour on a live router; every dynamic mapping is flushed."""
        count = self._reset(behaviour, now)
        self._config = replace(self._config, behaviour=behaviour)
        self._emit(Reconfigured(self._now if now is None else now, _describe(behaviour), count))
        return count

    # -- port control: explicit mappings (natlab.core.portcontrol asks for them) -------------

    def external_address_of(self, host: str) -> str:
        """The external address `host` is paired with; it gets one on its first mapping."""
        address = self._pairing.get(host)
        if address is None:
            addresses = self._config.external_addresses
            address = self._pairing[host] = addresses[len(self._pairing) % len(addresses)]
        return address

    def map_port(
        self,
        proto: Proto,
        internal: Endpoint,
        lifetime: float,
        origin: str,
        now: float,
        *,
        suggested: int | None = None,
        exact: bool = False,
        admits: str | None = None,
    ) -> MappingView | MapRefusal:
        """Make or renew the explicit mapping of `internal` to live `lifetime` seconds from now.

        Like a port forward it admits every remote (or only the address `admits`:
        a SIP ALG's pinhole for a registrar) and carries the internal endpoint's
        outbound traffic; traffic neither refreshes nor shortens it.
        A new one takes the `suggested` external port if it is free, else
        (unless `exact`) one the allocator picks; a renewal keeps its port.
        """
        if now > self._now:
            self._now = now
        if not self._translate:
            return MapRefusal.NOT_TRANSLATING
        if self._blocks is not None:
            return MapRefusal.CARRIER_GRADE
        binding = self._explicit(int(proto), internal, now)
        if binding is None:
            made = self._new_explicit(int(proto), internal, lifetime, origin, now, suggested, exact)
            if type(made) is MapRefusal:
                return made
            binding = made
        else:
            shorter = now + lifetime < binding.expires_at
            binding.refreshed_at, binding.timeout, binding.origin = now, lifetime, origin
            if shorter:
                self._schedule(binding)
        binding.permissions = {OPEN if admits is None else admits: now}
        self._emit(
            MappingRequested(now, proto, internal, binding.external, binding.expires_at, origin)
        )
        return binding.view()

    def unmap_port(
        self, proto: Proto, internal: Endpoint, origin: str, now: float
    ) -> MappingView | None:
        """Delete the explicit mapping of `internal`; what it was, or None if there was none."""
        binding = self._explicit(int(proto), internal, now)
        if binding is None:
            return None
        view = binding.view()
        self._emit(MappingRequested(now, proto, internal, binding.external, now, origin))
        binding.refreshed_at, binding.timeout = now, 0.0
        self._expire_binding(binding, now)
        return view

    def explicit_mapping(self, proto: Proto, internal: Endpoint, now: float) -> MappingView | None:
        """The live explicit mapping of an internal endpoint, if there is one."""
        binding = self._explicit(int(proto), internal, now)
        return None if binding is None else binding.view()

    def mapping_at(self, proto: Proto, external: Endpoint, now: float) -> MappingView | None:
        """The live dynamic or explicit mapping on an external endpoint, if there is one."""
        binding = self._by_external.get((int(proto), external.address, external.port))
        if binding is None or now >= binding.expires_at:
            return None
        return binding.view()

    def peer(
        self, proto: Proto, internal: Endpoint, remote: Endpoint, lifetime: float, now: float
    ) -> MappingView | MapRefusal:
        """PCP PEER: the mapping a packet from `internal` to `remote` would make or refresh.

        It then lives at least `lifetime` seconds without traffic; an explicit
        mapping of `internal`, if there is one, is what that packet would use.
        """
        if now > self._now:
            self._now = now
        if not self._translate:
            return MapRefusal.NOT_TRANSLATING
        explicit = self._explicit(int(proto), internal, now)
        if explicit is not None:
            return explicit.view()
        packet = Packet(bytearray(), int(proto), internal, remote, tcp_flags=TCP_SYN)
        found = self._outbound_binding(packet, now)
        if type(found) is Verdict:
            return MapRefusal.NO_PORTS
        found.timeout = max(found.timeout, lifetime)
        found.origin = "pcp"
        return found.view()

    def _explicit(self, proto: int, internal: Endpoint, now: float) -> Binding | None:
        binding = self._by_internal.get((proto, internal.address, internal.port, OPEN))
        if binding is not None and now >= binding.expires_at:
            self._expire_binding(binding, now)
            return None
        return binding

    def _new_explicit(
        self,
        proto: int,
        internal: Endpoint,
        lifetime: float,
        origin: str,
        now: float,
        suggested: int | None,
        exact: bool,
    ) -> Binding | MapRefusal:
        self.expire(now)
        host = internal.address
        implicit = self._by_internal.get((proto, host, internal.port, None))
        if implicit is not None and suggested in (None, implicit.external.port):
            # The endpoint-independent mapping its traffic made becomes explicit:
            # the port a peer already saw stays. Its replayed flows ask afresh.
            implicit.removed = True
            del self._by_internal[implicit.key]
            self._per_host[host] -= 1
            address, port = implicit.external
        else:
            if self._max_per_host is not None and self._per_host.get(host, 0) >= self._max_per_host:
                return MapRefusal.QUOTA
            address = self.external_address_of(host)
            if suggested and self._ports.claim(proto, address, suggested):
                port = suggested
            elif exact and suggested:
                return MapRefusal.PORT_TAKEN
            else:
                found = self._ports.allocate(proto, address, suggested or internal.port)
                if found is None:
                    return MapRefusal.NO_PORTS
                port = found
        key = (proto, host, internal.port, OPEN)
        external = Endpoint(address, port)
        binding = Binding(key, proto, internal, external, OPEN, now, lifetime, None, origin)
        self._by_internal[key] = binding
        self._by_external[(proto, address, port)] = binding
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self._schedule(binding)
        self.counters["mappings_created"] += 1
        return binding

    # -- replaying a decision (see the module docstring) ------------------------------------

    def _outbound_replay(self, binding: Binding, permission: RemoteKey) -> Replay:
        counters, refresh = self.counters, self._refresh_outbound

        def replay(now: float) -> bool:
            if (
                binding.removed
                or now >= binding.refreshed_at + binding.timeout
                or (refresh and now - binding.event_at >= EVENT_INTERVAL)
            ):
                return False
            if now > self._now:
                self._now = now
            binding.last_outbound = now
            if refresh:
                binding.refreshed_at = now
            binding.permissions[permission] = now
            counters["translated_out"] += 1
            return True

        return replay

    def _inbound_replay(self, binding: Binding) -> Replay:
        counters, refresh = self.counters, self._refresh_inbound

        def replay(now: float) -> bool:
            if (
                binding.removed
                or now >= binding.refreshed_at + binding.timeout
                or binding.tcp is TcpState.OPENING
            ):
                return False
            if refresh:
                if now - binding.event_at >= EVENT_INTERVAL:
                    return False
                binding.refreshed_at = now
            if now > self._now:
                self._now = now
            binding.last_inbound = now
            counters["translated_in"] += 1
            return True

        return replay

    def _pass_replay(self) -> Replay:
        counters = self.counters

        def replay(now: float) -> bool:
            if now > self._now:
                self._now = now
            counters["passed"] += 1
            return True

        return replay

    # -- mappings ------------------------------------------------------------------------

    def _outbound_binding(self, packet: Packet, now: float) -> Binding | Verdict:
        """The mapping an outbound packet leaves through, refreshed or made for it."""
        src, dst, proto = packet.src, packet.dst, packet.proto
        key = (proto, src.address, src.port, self._mapping_trim(dst.address, dst.port))
        binding = self._by_internal.get(key)
        if binding is not None and now >= binding.refreshed_at + binding.timeout:
            self._expire_binding(binding, now)
            binding = None
        if binding is None:
            if proto == _TCP and not packet.tcp_flags & TCP_SYN:
                return self._drop(
                    DropReason.NOT_SYN,
                    "outbound",
                    packet,
                    now,
                    f"tcp {src} -> {dst}: no mapping, and only a SYN makes one",
                )
            return self._create(key, packet, now)
        binding.last_outbound = now
        if self._refresh_outbound:
            binding.refreshed_at = now
        binding.permissions[self._filter_trim(dst.address, dst.port)] = now
        if proto == _TCP:
            self._tcp_outbound(binding, packet.tcp_flags)
        if self._refresh_outbound and now - binding.event_at >= EVENT_INTERVAL:
            binding.event_at = now
            self._refreshed(binding, "outbound", now)
        return binding

    def _create(self, key: tuple, packet: Packet, now: float) -> Binding | Verdict:
        src, dst, proto = packet.src, packet.dst, packet.proto
        host = src.address
        self.expire(now)  # what has lapsed frees its port and its place in the host's limit
        limit = self._max_per_host
        if limit is not None and self._per_host.get(host, 0) >= limit:
            return self._exhausted(
                packet, now, f"{host} already has {limit} mapping(s), its max_mappings_per_host"
            )
        if self._blocks is not None:  # a carrier-grade NAT: ports from the subscriber's blocks
            taken = self._blocks.allocate(proto, host, src.port, now)
            if isinstance(taken, str):
                return self._exhausted(packet, now, taken, subscriber=host)
            address, port = taken
        else:
            address, port = self._pooled(proto, host, src.port)
        if port is None:
            if proto == _ICMP:
                what = f"no free icmp identifier left on {address}"
            else:
                low, high = self._behaviour.port_range
                what = f"no free {proto_name(proto)} port left on {address} in {low}-{high}"
                if self._behaviour.parity:
                    what += f" with the parity of {src.port}"
            return self._exhausted(packet, now, what)
        tcp = TcpState.OPENING if proto == _TCP else None
        binding = Binding(
            key, proto, src, Endpoint(address, port), key[3], now, self._timeout(proto, tcp), tcp
        )
        binding.permissions[self._filter_trim(dst.address, dst.port)] = now
        self._by_internal[key] = binding
        self._by_external[(proto, address, port)] = binding
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self._schedule(binding)
        self.counters["mappings_created"] += 1
        self._emit(MappingCreated(now, Proto(proto), src, binding.external, dst))
        return binding

    def _pooled(self, proto: int, host: str, internal_port: int) -> tuple[str, int | None]:
        """The host's paired external address and a port on it (None if none is left)."""
        address = self.external_address_of(host)
        allocator = self._identifiers if proto == _ICMP else self._ports
        return address, allocator.allocate(proto, address, internal_port)

    def _inbound_target(self, packet: Packet, now: float, direction: str) -> Endpoint | Verdict:
        """Where a packet coming in (or hairpinned) goes: a static map first, else a binding."""
        dst, proto = packet.dst, packet.proto
        static = (
            self._static_in.get((proto, dst.port)) if dst.address == self._first_external else None
        )
        if static is not None:
            self._static_hit(static[0], "inbound", proto, static[1], dst, packet.src, now)
            return static[1]
        found = self._admit(packet, now, direction)
        return found if type(found) is Verdict else found.internal

    def _admit(self, packet: Packet, now: float, direction: str) -> Binding | Verdict:
        """The live mapping of an inbound packet's destination, if filtering lets it in."""
        dst, proto = packet.dst, packet.proto
        binding = self._by_external.get((proto, dst.address, dst.port))
        if binding is None or now >= binding.expires_at:
            return self._missing(packet, (proto, dst.address, dst.port), binding, now, direction)
        if binding.remote is OPEN:  # port control: open to every remote (or one) for its lifetime
            if OPEN not in binding.permissions and packet.src.address not in binding.permissions:
                return self._drop(
                    DropReason.FILTERED_ADDRESS,
                    direction,
                    packet,
                    now,
                    f"{binding.origin} mapping {binding.internal} -> {binding.external} lets in "
                    f"only {', '.join(describe_key(k) for k in binding.permissions)}",
                )
            binding.last_inbound = now
            return binding
        src = packet.src
        if self._filter_trim(src.address, src.port) not in binding.permissions and not (
            binding.pinhole or (self._hairpin_unfiltered and direction == "hairpin")
        ):
            return self._filtered(binding, packet, src, now, direction)
        binding.last_inbound = now
        if proto == _TCP:
            self._tcp_inbound(binding, packet.tcp_flags)
        if self._refresh_inbound:
            binding.refreshed_at = now
            if now - binding.event_at >= EVENT_INTERVAL:
                binding.event_at = now
                self._refreshed(binding, "inbound", now)
        return binding

    def _missing(
        self,
        packet: Packet,
        external: tuple[int, str, int],
        stale: Binding | None,
        now: float,
        direction: str,
    ) -> Verdict:
        """Drop for a mapping that is not there: expired (stale, or remembered) or never made."""
        proto, address, port = external
        if stale is not None:
            self._expire_binding(stale, now)
        tombstone = self._tombstones.get(external)
        if tombstone is None:
            return self._drop(
                DropReason.NO_MAPPING,
                direction,
                packet,
                now,
                f"no {proto_name(proto)} mapping on {address}:{port}",
            )
        internal, expired_at = tombstone
        return self._drop(
            DropReason.EXPIRED,
            direction,
            packet,
            now,
            f"mapping {internal} -> {address}:{port} expired at {format_time(expired_at)}",
        )

    def _filtered(
        self, binding: Binding, packet: Packet, remote: Endpoint, now: float, direction: str
    ) -> Verdict:
        """Drop for a remote the mapping never sent to: by address, or only by port."""
        known = ", ".join(describe_key(k) for k in list(binding.permissions)[:4])
        if len(binding.permissions) > 4:
            known += ", ..."
        mapping = f"mapping {binding.internal} -> {binding.external}"
        if self._behaviour.filtering is Filtering.ADDRESS_AND_PORT_DEPENDENT and any(
            k[0] == remote.address for k in binding.permissions
        ):
            return self._drop(
                DropReason.FILTERED_PORT,
                direction,
                packet,
                now,
                f"{mapping} has not sent to {remote} (address-and-port-dependent "
                f"filtering; it sent to {known})",
            )
        return self._drop(
            DropReason.FILTERED_ADDRESS,
            direction,
            packet,
            now,
            f"{mapping} has not sent to {remote.address} "
            f"({self._behaviour.filtering.value} filtering; it sent to {known})",
        )

    def _hairpin_back(
        self,
        packet: Packet,
        sender: Endpoint,
        binding: Binding | None,
        static_index: int | None,
        now: float,
    ) -> Verdict:
        """Second half of a hairpin: the source is already external; admit it like inbound.

        The sender left through `binding`, or through static map `static_index`.
        """
        dst, proto = packet.dst, packet.proto
        internal = self._inbound_target(packet, now, "hairpin")
        if type(internal) is Verdict:
            return internal
        src_external = packet.src
        packet.set_destination(internal)
        self.counters["hairpinned"] += 1
        if binding is None:
            due = self._throttle((static_index, "hairpin"), now)
        else:
            due = now - binding.hairpin_event_at >= EVENT_INTERVAL
            if due:
                binding.hairpin_event_at = now
        if due:
            self._emit(Hairpinned(now, Proto(proto), sender, src_external, dst, internal))
        return _HAIRPIN

    def _schedule(self, binding: Binding) -> None:
        heapq.heappush(self._deadlines, (binding.expires_at, next(self._tiebreak), binding))

    def _expire_binding(self, binding: Binding, now: float) -> None:
        binding.removed = True
        proto, (address, port) = binding.proto, binding.external
        del self._by_internal[binding.key]
        del self._by_external[(proto, address, port)]
        if self._blocks is not None:
            self._blocks.release(proto, address, port, now)
        else:
            (self._identifiers if proto == _ICMP else self._ports).release(proto, address, port)
        host = binding.internal.address
        self._per_host[host] -= 1
        if not self._per_host[host]:
            del self._per_host[host]
        # newest last, so the oldest is the first to go when the record is full
        self._tombstones.pop((proto, address, port), None)
        if len(self._tombstones) >= TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]
        self._tombstones[(proto, address, port)] = (binding.internal, binding.expires_at)
        self.counters["mappings_expired"] += 1
        self._emit(
            MappingExpired(
                now, Proto(proto), binding.internal, binding.external, binding.expires_at
            )
        )

    def _reset(self, behaviour: Behaviour, now: float | None) -> int:
        bindings, blocks = self._by_internal, self._blocks
        count = len(bindings)
        self._apply(behaviour)
        for binding in bindings.values():
            binding.removed = True
        if blocks is not None:
            blocks.release_all(self._now if now is None else now)
        self.counters["mappings_flushed"] += count
        return count

    # -- TCP: state only to pick the timeout -----------------------------------------------

    def _timeout(self, proto: int, tcp: TcpState | None) -> float:
        b = self._behaviour
        if proto == _UDP:
            return b.udp_timeout
        if proto == _ICMP:
            return b.icmp_timeout
        if tcp is TcpState.ESTABLISHED:
            return b.tcp_established_timeout
        return b.tcp_transitory_timeout

    def _tcp_outbound(self, binding: Binding, flags: int) -> None:
        if flags & (TCP_FIN | TCP_RST):
            self._tcp_state(binding, TcpState.CLOSING)
        elif flags & TCP_SYN and binding.tcp is TcpState.CLOSING:
            self._tcp_state(binding, TcpState.OPENING)

    def _tcp_inbound(self, binding: Binding, flags: int) -> None:
        if flags & (TCP_FIN | TCP_RST):
            self._tcp_state(binding, TcpState.CLOSING)
        elif binding.tcp is TcpState.OPENING:
            self._tcp_state(binding, TcpState.ESTABLISHED)
        elif flags & TCP_SYN and binding.tcp is TcpState.CLOSING:
            self._tcp_state(binding, TcpState.OPENING)

    def _tcp_state(self, binding: Binding, state: TcpState) -> None:
        if binding.tcp is not state:
            binding.tcp = state
            timeout = self._timeout(_TCP, state)
            shorter = timeout < binding.timeout
            binding.timeout = timeout
            if shorter:
                self._schedule(binding)

    # -- unsolicited SYNs (RFC 5382 REQ-4, natlab.core.syn_hold) -----------------------------

    def _hold_syn(self, packet: Packet, verdict: Verdict, now: float) -> None:
        """Hold a SYN that no mapping let in, to answer it once it cannot be a simultaneous open."""
        if packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) != TCP_SYN or not (
            verdict.reason is not None and verdict.reason.filtered
        ):
            return
        held = self._syns.hold(packet, now)
        if held is None:  # a retransmission of a held SYN, or the hold is full
            if self._syns.full:
                self.counters["syn_hold_full"] += 1
            return
        self.counters["syn_held"] += 1
        self._emit(SynHeld(now, held.remote, held.external, self._unsolicited.value, held.due))

    def _withdraw_syn(self, src: Endpoint, external: Endpoint, dst: Endpoint, now: float) -> None:
        if self._syns.withdraw(external, dst) is not None:
            self.counters["syn_withdrawn"] += 1
            self._emit(SynWithdrawn(now, src, external, dst))

    # -- ICMP errors -------------------------------------------------------------------------

    def _outbound_error(self, packet: Packet, now: float) -> Verdict:
        """An internal host's ICMP error about an inbound flow: show the external side."""
        inner = packet.embedded
        if inner is None or inner.fragment or inner.proto not in (_UDP, _TCP, _ICMP):
            return self._unsupported("outbound", packet, now)
        internal, remote, proto = inner.dst, inner.src, inner.proto
        static = self._static_out.get((proto, internal.address, internal.port))
        if static is not None:
            external = static[1]
        else:
            key = (proto, internal.address, internal.port, self._mapping_trim(*remote))
            binding = self._by_internal.get(key)
            if binding is None or now >= binding.expires_at:
                if binding is not None:
                    self._expire_binding(binding, now)
                return self._drop(
                    DropReason.NO_MAPPING,
                    "outbound",
                    packet,
                    now,
                    f"ICMP error about {remote} -> {internal}: "
                    f"{internal} has no {proto_name(proto)} mapping for {remote}",
                )
            external = binding.external
        inner.set_destination(external)
        packet.set_source(Endpoint(external.address, 0))
        if packet.dst.address not in self._external:
            self.counters["translated_out"] += 1
            return _FORWARD_OUT
        if not self._hairpin:
            return self._drop(
                DropReason.HAIRPIN_OFF,
                "outbound",
                packet,
                now,
                f"hairpinning is off: ICMP error to the external address {packet.dst.address}",
            )
        target = self._error_target(packet, now, "hairpin")
        if type(target) is Verdict:
            return target
        self.counters["hairpinned"] += 1
        return _HAIRPIN

    def _error_target(self, packet: Packet, now: float, direction: str) -> Endpoint | Verdict:
        """Rewrite an ICMP error from outside back to the internal endpoint it is about."""
        inner = packet.embedded
        if inner is None or inner.fragment or inner.proto not in (_UDP, _TCP, _ICMP):
            return self._unsupported(direction, packet, now)
        external, remote, proto = inner.src, inner.dst, inner.proto
        static = (
            self._static_in.get((proto, external.port))
            if external.address == self._first_external
            else None
        )
        if static is not None:
            internal = static[1]
        else:
            where = (proto, external.address, external.port)
            binding = self._by_external.get(where)
            if binding is None or now >= binding.expires_at:
                return self._missing(packet, where, binding, now, direction)
            if self._filter_trim(*remote) not in binding.permissions and not (
                self._hairpin_unfiltered and direction == "hairpin"
            ):
                return self._filtered(binding, packet, remote, now, direction)
            internal = binding.internal
        inner.set_source(internal)
        packet.set_destination(Endpoint(internal.address, 0))
        return internal

    # -- small helpers -------------------------------------------------------------------------

    def is_internal(self, address: str) -> bool:
        """Is address in one of the router's internal networks (its LANs and what is behind)?"""
        known = self._internal_cache.get(address)
        if known is None:
            ip = IPv4Address(address)
            known = any(ip in network for network in self._networks)
            if len(self._internal_cache) < 4096:  # LAN hosts; a spoofing flood stays bounded
                self._internal_cache[address] = known
        return known

    def _static_hit(
        self,
        index: int,
        direction: str,
        proto: int,
        internal: Endpoint,
        external: Endpoint,
        remote: Endpoint,
        now: float,
    ) -> None:
        if self._throttle((index, direction), now):
            self._emit(StaticMapHit(now, Proto(proto), direction, internal, external, remote))

    def _throttle(self, key: tuple[int | None, str], now: float) -> bool:
        """Whether a static map's event of this kind is due (at most one per EVENT_INTERVAL)."""
        last = self._static_event_at.get(key)
        if last is not None and now - last < EVENT_INTERVAL:
            return False
        self._static_event_at[key] = now
        return True

    def _refreshed(self, binding: Binding, direction: str, now: float) -> None:
        self._emit(
            MappingRefreshed(
                now,
                Proto(binding.proto),
                binding.internal,
                binding.external,
                direction,
                binding.expires_at,
            )
        )

    def _unsupported(self, direction: str, packet: Packet, now: float) -> Verdict:
        if packet.proto == _ICMP:
            what = f"ICMP type {packet.icmp_type}"
            if packet.embedded is not None:
                what += f" quoting {proto_name(packet.embedded.proto)}"
        else:
            what = f"IP protocol {proto_name(packet.proto)}"
        return self._drop(
            DropReason.UNSUPPORTED, direction, packet, now, f"{direction} {what} is not translated"
        )

    def _exhausted(
        self, packet: Packet, now: float, detail: str, subscriber: str | None = None
    ) -> Verdict:
        self.counters[DropReason.EXHAUSTED.counter] += 1
        self._emit(
            Exhausted(
                now,
                DropReason.EXHAUSTED,
                "outbound",
                packet.proto,
                packet.src,
                packet.dst,
                detail,
                subscriber,
            )
        )
        return _DROPS[DropReason.EXHAUSTED]

    def _drop(
        self, reason: DropReason, direction: str, packet: Packet, now: float, detail: str
    ) -> Verdict:
        self.counters[reason.counter] += 1
        self._emit(Dropped(now, reason, direction, packet.proto, packet.src, packet.dst, detail))
        return _DROPS[reason]

    def _emit(self, event: Event) -> None:
        if len(self._events) == EVENT_BACKLOG:
            self.counters["events_discarded"] += 1
        self._events.append(event)


def _describe(behaviour: Behaviour) -> str:
    """A behaviour for humans: its preset name, with what differs from that preset."""
    name = behaviour.preset_name()
    base = (PRESETS[name] if name else Behaviour()).as_json()
    changed = {key: value for key, value in behaviour.as_json().items() if value != base[key]}
    if not changed:
        return name or "custom"
    settings = ", ".join(f"{key}={_setting(value)}" for key, value in changed.items())
    return f"{name or 'custom'} with {settings}"


def _setting(value: object) -> str:
    if isinstance(value, list):  # the port range
        return "-".join(str(v) for v in value)
    return str(value)
