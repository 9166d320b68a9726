"""Why a call did what it did, from what the phones saw and what the routers decided.

The phones tell what reached them (the CallReport: the ICE checks tried and
how each ended, RTP sent and received each way); the routers tell what they
dropped and why (their events, records.RouterEvent: every drop with its
DropReason, the packet's addresses and the mapping or permission that was
missing). Together they answer the question users bring: which packets
were dropped where, and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from natlab.core.events import DropReason
from natlab.records import SIP_ALG_KINDS, CallReport, RouterEvent
from natlab.scenario.bursts import port_ranges
from natlab.scenario.expectations import describe_pair

LIMIT = 8  # lines of each kind; the JSON report keeps everything


@dataclass(frozen=True)
class DropGroup:
    """Packets one router dropped for one reason between one source and destination."""

    router: str
    reason: DropReason
    direction: str
    proto: str
    src: str
    dst: str
    detail: str  # the first such drop's: which mapping or permission was missing
    count: int

    def describe(self) -> str:
        packets = " ".join(filter(None, (self.proto, "packet" if self.count == 1 else "packets")))
        why = ", ".join(filter(None, (self.direction, self.reason)))
        return (
            f"{self.router} dropped {self.count} {packets} {self.src} -> {self.dst} ({why}): "
            f"{self.detail or self.reason.meaning}"
        )

    def as_json(self) -> dict:
        return {**vars(self), "reason": self.reason.value}


def drop_groups(events: Mapping[str, Sequence[RouterEvent]]) -> list[DropGroup]:
    """Every router's drops grouped by router, reason, direction and addresses; oldest first."""
    counts: Counter[tuple] = Counter()
    first: dict[tuple, RouterEvent] = {}
    for router, found in events.items():
        for event in found:
            if not event.is_drop or event.reason is None:
                continue
            key = (
                router,
                event.reason,
                event.direction or "",
                event.proto or "",
                event.src or "?",
                event.dst or "?",
            )
            counts[key] += 1
            first.setdefault(key, event)
    return [DropGroup(*key, detail=first[key].detail, count=counts[key]) for key in first]


def rtp_line(report: CallReport) -> str:
    """Both directions' RTP counts; a count the callee never sent back is "?"."""
    caller, callee = report.caller, report.callee
    mine, peer = report.rtp, report.peer_rtp
    peer_sent, peer_received = ("?", "?") if peer is None else (peer.sent, peer.received)
    peer_quality = "" if peer is None else peer.quality()
    return (
        f"RTP {caller} -> {callee}: {mine.sent} sent, {peer_received} received{peer_quality}; "
        f"{callee} -> {caller}: {peer_sent} sent, {mine.received} received{mine.quality()}"
    )


def gathering_line(report: CallReport) -> str | None:
    """How long the caller took to gather its candidates (its STUN servers asked at once)."""
    if report.gathering is None:
        return None
    return f"{report.caller} gathered its candidates in {report.gathering * 1000:.0f} ms"


def explain_call(report: CallReport, events: Mapping[str, Sequence[RouterEvent]]) -> list[str]:
    """Lines for people: media counts, the ICE checks, then each router's drops and mappings."""
    lines = [rtp_line(report)]
    if report.error:
        lines.append(f"call error: {report.error}")
    lines.append(f"selected pair: {describe_pair(report.selected_pair)}")
    gathered = gathering_line(report)
    if gathered is not None:
        lines.append(gathered)
    checks = report.checks
    if checks:
        states = Counter(check.state for check in checks)
        summary = ", ".join(f"{n} {state}" for state, n in states.most_common())
        lines.append(f"ICE checks: {len(checks)} candidate pair(s) tried: {summary}")
        lines += [
            f"  {c.local_type} {c.local} -> {c.remote_type} {c.remote}: {c.state}"
            for c in checks[:LIMIT]
        ]
        lines += _more(len(checks), "pair")
    groups = drop_groups(events)
    if not groups:
        lines.append("no router dropped a packet during the call")
    lines += drop_lines(groups)
    for router in dict.fromkeys(group.router for group in groups):
        made = [e for e in events[router] if e.kind == "mapping-created"]
        lines += [f"{router}: {e.detail}" for e in made[:LIMIT]]
        lines += _more(len(made), "mapping")
    for router, told in events.items():
        alg = [e for e in told if media_alg(e)]
        lines += [f"{router}: {e.detail}" for e in alg[:LIMIT]]
        lines += _more(len(alg), "SIP ALG event")
    return lines


def drop_lines(groups: list[DropGroup], *, merge_sources: bool = False) -> list[str]:
    """The drop groups described, the first LIMIT, then how many more (the JSON report has
    all); with merge_sources, past LIMIT, drops that differ only in their source are one line
    with a port range (a burst of new flows a router refused)."""
    if merge_sources and len(groups) > LIMIT:
        groups = _same_but_source(groups)
    return [group.describe() for group in groups[:LIMIT]] + _more(
        len(groups), "kind of drop", "kinds of drop"
    )


def _same_but_source(groups: list[DropGroup]) -> list[DropGroup]:
    merged: dict[tuple, list[DropGroup]] = {}
    for group in groups:
        key = (group.router, group.reason, group.direction, group.proto, group.dst, group.detail)
        merged.setdefault(key, []).append(group)
    return [
        found[0]
        if len(found) == 1
        else replace(
            found[0],
            src=port_ranges(group.src for group in found),
            count=sum(group.count for group in found),
        )
        for found in merged.values()
    ]


def media_alg(event: RouterEvent) -> bool:
    """A SIP ALG event about the media (SDP rewrites, pinholes): what a call's media turns on.
    Its Via and Contact rewrites are in `nat events` and the trace's story."""
    return event.kind in SIP_ALG_KINDS and (
        event.kind == "sip-pinhole" or (event.header or "").startswith("SDP")
    )


def _more(total: int, one: str, many: str | None = None) -> list[str]:
    hidden = total - LIMIT
    if hidden <= 0:
        return []
    return [f"  ... and {hidden} more {one if hidden == 1 else many or one + 's'}"]
