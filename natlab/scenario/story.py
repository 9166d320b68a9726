"""A trace told as a story: who sent what to whom, what each router made of it, and why.

`tell(records)` turns a trace (trace.py) into scenes, each a few sentences
and each router's mapping table as it stood right after: tables are
rebuilt from the events alone (created, expired, flushed). Addresses get
names (a host, a phone's candidate, a router's mapping) so a reader sees
"phone-b's packet from branch1's mapping for 203.0.113.3:34460", not a
list of ports. A call ends with why: each packet a router filtered is
traced back to the mapping its sender's router used, and that mapping's
remote, which is what made it fail.

Noise is left out of the story (it stays in the trace): keepalive
refreshes, port-forward hits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from natlab.core.behaviour import PRESETS, Mapping
from natlab.core.events import DropReason
from natlab.records import (
    SIP_ALG_KINDS,
    CallRecord,
    CandidatesRecord,
    IceCheckRecord,
    LabRecord,
    NatRecord,
    OtherRecord,
    RtpRecord,
    SipRecord,
    StepEnded,
    StepStarted,
    StunRecord,
    TraceRecord,
)
from natlab.scenario.explain import DropGroup, drop_groups, media_alg
from natlab.scenario.verdict import NOT_NAT

# Drops the story's "why" tells besides the filtered ones (DropReason.filtered, which it
# traces back to the sender's mapping): these two, with what their reason means.
_GLOSSED = (DropReason.NO_ROUTE, DropReason.MARTIAN_SOURCE)


@dataclass
class Row:
    """One mapping of a router's table."""

    proto: str
    internal: str
    external: str
    remote: str  # the destination that made it
    only_remote: bool  # address-and-port-dependent mapping: for that remote only
    created: float  # router clock
    host: str  # whose mapping it is

    @property
    def for_remote(self) -> str:
        return self.remote if self.only_remote else f"any (first {self.remote})"


@dataclass
class Scene:
    """One step of the story; `tables` is each router's mapping table right after it."""

    title: str
    lines: list[str]
    kind: str = "info"  # info | mapping | drop | result | why | step | fault
    clock: float | None = None
    tables: dict[str, list[Row]] = field(default_factory=dict)


class _World:
    """What the story knows so far: names of addresses, routers' behaviours, their tables."""

    def __init__(self, lab: LabRecord) -> None:
        self.lab = lab
        self.nat = {name: router.nat for name, router in lab.routers.items()}
        self.dependent = {
            name: router.mapping == Mapping.ADDRESS_AND_PORT_DEPENDENT.value
            for name, router in lab.routers.items()
        }
        self.tables: dict[str, dict[tuple[str, str], Row]] = {r: {} for r in lab.routers}
        self.history: dict[str, Row] = {}  # every mapping ever made, by external address
        self.names = {host.address: name for name, host in lab.hosts.items()}
        self.names.update({router.wan: name for name, router in lab.routers.items()})
        self.candidates: dict[str, str] = {}  # address -> "phone-b's srflx candidate"
        self.stun: dict[str, str] = {}  # internal -> the first mapped address STUN told it

    def host_of(self, endpoint: str) -> str:
        return self.names.get(endpoint.rsplit(":", 1)[0], "")

    def name(self, endpoint: str) -> str:
        """An endpoint as the reader knows it: whose address, candidate or mapping it is."""
        if endpoint in self.candidates:
            return f"{endpoint} ({self.candidates[endpoint]})"
        if endpoint in self.history:
            row = self.history[endpoint]
            return f"{endpoint} ({row.host}'s mapping on {_router_of(self, row)})"
        if endpoint in self.lab.stun_servers:
            return f"{endpoint} (STUN server {self.host_of(endpoint)})"
        owner = self.host_of(endpoint)
        return f"{endpoint} ({owner})" if owner else endpoint

    def snapshot(self) -> dict[str, list[Row]]:
        return {router: list(rows.values()) for router, rows in self.tables.items() if rows}

    def reconfigure(self, router: str, behaviour: str) -> None:
        self.nat[router] = behaviour
        preset = PRESETS.get(behaviour.split(" ")[0])
        if preset is not None:
            self.dependent[router] = preset.mapping is Mapping.ADDRESS_AND_PORT_DEPENDENT
        self.tables[router].clear()


@dataclass
class _Call:
    """A call being told: its record, then its checks and RTP as they come."""

    record: CallRecord
    checks: list[IceCheckRecord] = field(default_factory=list)
    rtp: list[RtpRecord] = field(default_factory=list)


def tell(records: Iterable[TraceRecord | OtherRecord]) -> list[Scene]:
    """The scenes of a trace, in order."""
    records = list(records)
    if not records or not isinstance(records[0], LabRecord):
        return [Scene("not a trace", ["the first record of a trace describes its lab"], "why")]
    world = _World(records[0])
    scenes = [_lab_scene(world)]
    call: _Call | None = None
    call_events: list[NatRecord] = []
    pending_candidates: list[CandidatesRecord] = []
    seen_drops: set[tuple] = set()
    stun_at = {(r.router, r.mapped): r for r in records if isinstance(r, StunRecord)}
    for record in records[1:]:
        if isinstance(record, StunRecord):
            world.stun.setdefault(record.internal, record.mapped)
        elif isinstance(record, StepStarted):
            scenes.append(Scene(f"step {record.index + 1}: {record.text}", [], "step"))
        elif isinstance(record, StepEnded):
            scenes.append(_step_end(record))
        elif isinstance(record, CallRecord):
            call, call_events, seen_drops = _Call(record), [], set()
            scenes.append(_call_scene(record))
        elif isinstance(record, CandidatesRecord):
            pending_candidates.append(record)
            for candidate in record.candidates:
                world.candidates[candidate.address] = f"{record.phone}'s {candidate.type} candidate"
        elif isinstance(record, SipRecord):
            scenes.append(_sip_scene(world, record))
        elif isinstance(record, IceCheckRecord) and call is not None:
            call.checks.append(record)
        elif isinstance(record, RtpRecord) and call is not None:
            call.rtp.append(record)
            if len(call.rtp) == 2:
                scenes += _result_scenes(world, call, call_events)
                call = None
        elif isinstance(record, NatRecord):
            if pending_candidates and _is_check(world, record):
                scenes.append(_candidates_scene(world, pending_candidates))
                pending_candidates = []
            if call is not None:
                call_events.append(record)
            scene = _nat_scene(world, record, stun_at, seen_drops)
            if scene is not None:
                scene.clock = record.clock
                scene.tables = world.snapshot()
                scenes.append(scene)
    return scenes


def _lab_scene(world: _World) -> Scene:
    lab = world.lab
    lines = [f"scenario {lab.scenario}" + (f": {lab.about}" if lab.about else "")]
    for name, router in lab.routers.items():
        lines.append(
            f"router {name}: {router.nat} NAT (mapping {router.mapping}, filtering "
            f"{router.filtering}); outside {router.wan}, inside {', '.join(router.lans)}"
        )
    for name, host in lab.hosts.items():
        where = f"behind {host.router}" if host.router else "on the internet"
        lines.append(f"{host.role} {name}: {host.address}, {where}")
    return Scene(f"the lab {lab.lab}", lines, "info")


def _step_end(record: StepEnded) -> Scene:
    verdict = record.verdict or ("passed" if record.passed else "failed")
    mark = verdict if verdict == "passed" else verdict.upper()
    lines = [f"{record.fault}: {NOT_NAT}"] if record.fault else []
    lines += [
        f"{check.what}: expected {check.expected}, observed {check.observed}"
        for check in record.checks
    ]
    if record.error:
        lines.append(f"could not run: {record.error}")
    lines += record.explanation  # a program step's state, output and drops
    kind = "fault" if record.fault else "result"
    return Scene(f"step {record.index + 1} {mark}: {record.text}", lines, kind)


def _call_scene(record: CallRecord) -> Scene:
    return Scene(
        f"{record.caller} calls {record.callee} ({record.mode})",
        [
            "each phone asks STUN servers how it is seen from outside, offers those "
            "addresses as candidates, and both try every pair (ICE checks)"
        ],
        "info",
    )


def _sip_scene(world: _World, record: SipRecord) -> Scene:
    """A SIP message as its phone saw it: what, and the addresses it carried."""
    pbx = next((name for name, host in world.lab.hosts.items() if host.role == "pbx"), "the PBX")
    route = f"{record.phone} -> {pbx}" if record.direction == "sent" else f"{pbx} -> {record.phone}"
    lines = [f"Call-ID {record.call}"]
    lines += [f"{name} {value}" for name, value in sip_fields(record) if value]
    return Scene(f"SIP {route}: {record.summary}", lines, "info")


def sip_fields(record: SipRecord) -> list[tuple[str, str | None]]:
    return [("Via", record.via), ("Contact", record.contact), ("SDP", record.sdp)]


def _is_check(world: _World, record: NatRecord) -> bool:
    """A packet between the phones (an ICE check or RTP), not to a STUN server or the PBX."""
    target = record.remote or record.dst or ""
    return (
        record.proto in ("udp", None)
        and target not in world.lab.stun_servers
        and (record.is_drop or record.kind == "mapping-created")
    )


def _candidates_scene(world: _World, found: list[CandidatesRecord]) -> Scene:
    lines = []
    for record in found:
        offered = ", ".join(f"{c.type} {c.address}" for c in record.candidates)
        lines.append(f"{record.phone} offers {offered or 'nothing'}")
    return Scene("candidates offered", lines, "info", tables=world.snapshot())


def _nat_scene(
    world: _World, record: NatRecord, stun_at: dict[tuple, StunRecord], seen_drops: set[tuple]
) -> Scene | None:
    router, kind = record.router, record.kind
    if kind == "mapping-created":
        internal, external, remote = record.internal or "", record.external or "", record.remote
        row = Row(
            record.proto or "",
            internal,
            external,
            remote or "",
            world.dependent.get(router, False),
            record.clock,
            world.host_of(internal) or internal,
        )
        world.tables[router][(row.proto, row.external)] = row
        world.history[row.external] = row
        scope = (
            f"for {remote} only ({world.nat[router]}: a new port for each destination)"
            if row.only_remote
            else f"for any destination (first {remote})"
        )
        lines = [
            f"{row.host} sent {record.proto} from {internal} to {world.name(remote or '')}",
            f"{router} created mapping {internal} -> {external} {scope}",
        ]
        stun = stun_at.get((router, external))
        if stun is not None:
            lines.append(
                f"a STUN binding request: the server answers that it sees {stun.host} "
                f"as {stun.mapped}"
            )
        return Scene(f"{router}: new mapping for {row.host}", lines, "mapping")
    if kind == "mapping-expired":
        row = world.tables[router].pop((record.proto or "", record.external or ""), None)
        whose = f"{row.host}'s " if row else ""
        return Scene(
            f"{router}: a mapping expired",
            [f"{whose}{record.detail}: packets to {record.external} now find no mapping"],
            "mapping",
        )
    if kind in ("flushed", "reconfigured"):
        if kind == "reconfigured":
            world.reconfigure(router, record.behaviour or "")
        else:
            world.tables[router].clear()
        return Scene(f"{router}: {kind}", [record.detail], "mapping")
    if kind == "hairpinned":
        return Scene(
            f"{router}: hairpin",
            [
                f"{world.name(record.src or '')} sent to {router}'s own outside address "
                f"{record.dst_external}: {router} turned it back inside to {record.dst}, "
                f"showing the source as {record.src_external}"
            ],
            "mapping",
        )
    if kind in SIP_ALG_KINDS:  # its SDP rewrites and pinholes; Via and Contact are in nat events
        if not media_alg(record):
            return None
        return Scene(f"{router}: SIP ALG", [record.detail], "mapping")
    if record.is_drop:
        key = (router, record.reason, record.src, record.dst)
        if key in seen_drops:
            return None
        seen_drops.add(key)
        group = drop_groups({router: [record]})[0]
        sender = _sender(world, record.src or "") or world.host_of(record.src or "")
        return Scene(
            f"{router} DROPPED a packet" + (f" from {sender}" if sender else ""),
            [
                f"{world.name(record.src or '?')} -> {world.name(record.dst or '?')}",
                group.describe(),
            ],
            "drop",
        )
    return None


def _sender(world: _World, endpoint: str) -> str:
    row = world.history.get(endpoint)
    if row is not None:
        return row.host
    described = world.candidates.get(endpoint, "")
    return described.split("'", 1)[0]


def _result_scenes(world: _World, call: _Call, events: list[NatRecord]) -> list[Scene]:
    lines = []
    for flow in call.rtp:
        lines.append(
            f"RTP {flow.sender} -> {flow.receiver}: {_count(flow.sent)} sent, "
            f"{_count(flow.received)} received"
            + (
                ""
                if flow.lost is None
                else f" ({flow.lost} lost, {flow.late} late, jitter {flow.jitter_ms:g} ms)"
            )
        )
    for check in call.checks:
        chosen = " (selected)" if check.selected else ""
        lines.append(
            f"{check.phone} checked {check.local_type} {check.local} -> "
            f"{check.remote_type} {check.remote}: {check.state}{chosen}"
        )
    record = call.record
    lines.append(f"verdict: {record.verdict}" + (f" ({record.error})" if record.error else ""))
    if record.fault:  # the drops tell what a dead process left undone, not why: no "why"
        lines.append(f"{record.fault}: {NOT_NAT}")
        return [Scene(f"media: fault ({record.fault})", lines, "fault", tables=world.snapshot())]
    scenes = [Scene(f"media: {record.verdict}", lines, "result", tables=world.snapshot())]
    why = _why(world, drop_groups(_by_router(events)))
    if why:
        scenes.append(Scene("why", why, "why", tables=world.snapshot()))
    return scenes


def _count(count: int | None) -> str:
    return "?" if count is None else str(count)


def _by_router(events: list[NatRecord]) -> dict[str, list[NatRecord]]:
    grouped: dict[str, list[NatRecord]] = {}
    for event in events:
        grouped.setdefault(event.router, []).append(event)
    return grouped


def _why(world: _World, groups: list[DropGroup]) -> list[str]:
    """Each filtered packet traced back to the mapping it came from, and that mapping's remote."""
    lines = []
    for group in groups:
        if not group.reason.filtered:
            if group.reason in _GLOSSED:  # told with what the reason means, if not yet said
                gloss = f" ({group.reason.meaning})" if group.detail else ""
                lines.append(group.describe() + gloss)
            continue
        lines.append(group.describe())
        row = world.history.get(group.src)
        if row is None:
            continue
        sender_router = _router_of(world, row)
        lines.append(
            f"  the packet came from {sender_router}'s mapping {row.internal} -> "
            f"{row.external}, which {row.host} got by sending to {world.name(row.remote)}"
        )
        advertised = _offered(world, row)
        if row.only_remote and advertised and advertised != row.external:
            lines.append(
                f"  {sender_router} is {world.nat.get(sender_router)}: each destination gets a "
                f"mapping of its own, so {row.host}'s packets left from {row.external}, not from "
                f"{advertised}, the address STUN saw and {row.host} offered as its candidate"
            )
            lines.append(
                f"  {group.router} ({world.nat.get(group.router)}) lets in only the addresses "
                f"and ports its own mapping sent to, and {row.external} is not one: "
                f"{sender_router}'s mapping {row.internal} -> {row.external} for a new "
                "destination is what made the call fail"
            )
    return lines


def _offered(world: _World, row: Row) -> str | None:
    """The server-reflexive address the mapping's owner offered, else the first STUN told it."""
    mine = f"{row.host}'s srflx candidate"
    offered = [address for address, what in world.candidates.items() if what == mine]
    return offered[0] if offered else world.stun.get(row.internal)


def _router_of(world: _World, row: Row) -> str:
    """The router whose outside address a mapping's external address is on."""
    return world.names.get(row.external.rsplit(":", 1)[0], "?")
