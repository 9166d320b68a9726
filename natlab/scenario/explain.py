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
from dataclasses import dataclass

from natlab.core.events import DropReason
from natlab.records import SIP_ALG_KINDS, CallReport, RouterEvent
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


def explain_call(report: CallReport, events: Mapping[str, Sequence[RouterEvent]]) -> list[str]:
    """Lines for people: media counts, the ICE checks, then each router's drops and mappings."""
    lines = [rtp_line(report)]
    if report.error:
        lines.append(f"call error: {report.error}")
    lines.append(f"selected pair: {describe_pair(report.selected_pair)}")
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
    lines += [group.describe() for group in groups[:LIMIT]]
    lines += _more(len(groups), "kind of drop", "kinds of drop")
    for router in dict.fromkeys(group.router for group in groups):
        made = [e for e in events[router] if e.kind == "mapping-created"]
        lines += [f"{router}: {e.detail}" for e in made[:LIMIT]]
        lines += _more(len(made), "mapping")
    for router, told in events.items():
        alg = [e for e in told if media_alg(e)]
        lines += [f"{router}: {e.detail}" for e in alg[:LIMIT]]
        lines += _more(len(alg), "SIP ALG event")
    return lines


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
