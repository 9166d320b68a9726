"""Why a call did what it did, from what the phones saw and what the routers decided.

The phones tell what reached them (the CallReport: the ICE checks tried and
how each ended, RTP sent and received each way); the routers tell what they
dropped and why (`lab.nat_events`: every drop with its reason, the packet's
addresses and the mapping or permission that was missing). Together they
answer the question users bring: which packets were dropped where, and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from natlab.scenario.expectations import describe_pair

DROPS = ("drop", "exhausted")
LOST_COUNTS = {"sent": "?", "received": "?"}  # the callee's counts, when they never came back
LIMIT = 8  # lines of each kind; the JSON report keeps everything


@dataclass(frozen=True)
class DropGroup:
    """Packets one router dropped for one reason between one source and destination."""

    router: str
    reason: str
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
            f"{self.detail or _DAEMON_DETAIL.get(self.reason, self.reason)}"
        )


# Drops the router daemon itself makes (after the NAT engine let the packet through) carry no
# detail: say what each reason means.
_DAEMON_DETAIL = {
    "no-route": "the router has no route to that destination",
    "ttl-expired": "the packet's TTL ran out",
}


def drop_groups(events: dict[str, list[dict]]) -> list[DropGroup]:
    """Every router's drops grouped by router, reason, direction and addresses; oldest first."""
    counts: Counter[tuple] = Counter()
    first: dict[tuple, dict] = {}
    for router, found in events.items():
        for event in found:
            if event["kind"] not in DROPS:
                continue
            key = (
                router,
                event.get("reason", ""),
                event.get("direction", ""),
                str(event.get("proto", "")),
                event.get("src", "?"),
                event.get("dst", "?"),
            )
            counts[key] += 1
            first.setdefault(key, event)
    return [
        DropGroup(*key, detail=first[key].get("detail", ""), count=counts[key]) for key in first
    ]


def explain_call(report: dict, events: dict[str, list[dict]]) -> list[str]:
    """Lines for people: media counts, the ICE checks, then each router's drops and mappings."""
    caller, callee = report.get("caller", "caller"), report.get("callee", "callee")
    mine, peer = report.get("rtp") or {}, report.get("peer_rtp") or LOST_COUNTS
    lines = [
        f"RTP {caller} -> {callee}: {mine.get('sent', 0)} sent, {peer.get('received', 0)} "
        f"received; {callee} -> {caller}: {peer.get('sent', 0)} sent, "
        f"{mine.get('received', 0)} received"
    ]
    if report.get("error"):
        lines.append(f"call error: {report['error']}")
    lines.append(f"selected pair: {describe_pair(report.get('selected_pair'))}")
    checks = report.get("checks") or []
    if checks:
        states = Counter(check["state"] for check in checks)
        summary = ", ".join(f"{n} {state}" for state, n in states.most_common())
        lines.append(f"ICE checks: {len(checks)} candidate pair(s) tried: {summary}")
        lines += [
            f"  {c['local_type']} {c['local']} -> {c['remote_type']} {c['remote']}: {c['state']}"
            for c in checks[:LIMIT]
        ]
        lines += _more(len(checks), "pair")
    groups = drop_groups(events)
    if not groups:
        lines.append("no router dropped a packet during the call")
    lines += [group.describe() for group in groups[:LIMIT]]
    lines += _more(len(groups), "kind of drop", "kinds of drop")
    for router in dict.fromkeys(group.router for group in groups):
        made = [e for e in events[router] if e["kind"] == "mapping-created"]
        lines += [f"{router}: {e['detail']}" for e in made[:LIMIT]]
        lines += _more(len(made), "mapping")
    return lines


def _more(total: int, one: str, many: str | None = None) -> list[str]:
    hidden = total - LIMIT
    if hidden <= 0:
        return []
    return [f"  ... and {hidden} more {one if hidden == 1 else many or one + 's'}"]
