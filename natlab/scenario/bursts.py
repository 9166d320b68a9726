"""A burst of routine router events told in a few lines: counts, port ranges, port blocks.

A host that opens 40 flows at once makes 40 new mappings on each router on
the way, and a carrier-grade NAT that runs out refuses the rest one by one:
told event by event that is pages a trainer scrolls past. Here such a run is
told per router and per sender: how many new flows, how many got a mapping
(and which external ports), how many were refused and why, which mappings
expired, which port blocks were given or taken back. Every event stays in
the trace and in `natlab nat events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from natlab.records import NatRecord

# The router events a burst is made of; any other scene (a hairpin, a flush, the SIP ALG,
# a step, a call) ends the burst and is told as it is.
ROUTINE_KINDS = frozenset(
    {"mapping-created", "mapping-expired", "port-block-allocated", "port-block-released"}
)


SPANS = 4  # port ranges shown for one address; past that, a count, the lowest and the highest


def is_routine(record: NatRecord) -> bool:
    return record.kind in ROUTINE_KINDS or record.is_drop


def port_ranges(endpoints: Iterable[str]) -> str:
    """ "203.0.113.10:1024-1055" for 32 endpoints: each address once, its ports as ranges,
    or "100.64.0.2: 40 ports from 33345 to 60945" when they are scattered."""
    ports: dict[str, set[int]] = {}
    for endpoint in endpoints:
        address, _, port = endpoint.rpartition(":")
        if address and port.isdigit():
            ports.setdefault(address, set()).add(int(port))
    return ", ".join(_ranges(address, sorted(found)) for address, found in ports.items())


def _ranges(address: str, ports: list[int]) -> str:
    spans: list[list[int]] = []
    for port in ports:
        if spans and port == spans[-1][1] + 1:
            spans[-1][1] = port
        else:
            spans.append([port, port])
    if len(spans) > SPANS:
        return f"{address}: {len(ports)} ports from {ports[0]} to {ports[-1]}"
    return f"{address}:" + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Flows:
    """One router's new flows from one sender: those it mapped, those it refused, by reason."""

    def __init__(self) -> None:
        self.mapped: list[str] = []  # external endpoints
        self.refused: dict[str, set[tuple]] = {}  # reason -> (src, dst) flows
        self.packets: dict[str, int] = {}  # reason -> packets refused
        self.detail: dict[str, str] = {}  # reason -> the first refusal's detail

    def add(self, event: NatRecord) -> None:
        if event.kind == "mapping-created":
            self.mapped.append(event.external or "")
            return
        reason = str(event.reason)
        self.refused.setdefault(reason, set()).add((event.src, event.dst))
        self.packets[reason] = self.packets.get(reason, 0) + 1
        self.detail.setdefault(reason, event.detail)

    def line(self, router: str, sender: str) -> str:
        refused = sum(len(flows) for flows in self.refused.values())
        told = [f"{len(self.mapped)} mapped to {port_ranges(self.mapped)}"] if self.mapped else []
        for reason, flows in self.refused.items():
            packets = self.packets[reason]
            extra = f" ({packets} packets)" if packets != len(flows) else ""
            told.append(f"{len(flows)} refused{extra}, {reason}: {self.detail[reason]}")
        return f"{router}: {_plural(len(self.mapped) + refused, 'new flow')} from {sender}: " + (
            "; ".join(told)
        )


def burst_lines(
    events: list[NatRecord], host_of: Callable[[str], str], sender_of: Callable[[str], str]
) -> list[str]:
    """What a burst did, one line per router and sender (and per port block change), in the
    order each first happened. host_of names an inside endpoint's host, sender_of an outside
    endpoint's (the host whose mapping or candidate it is)."""
    flows: dict[tuple, _Flows] = {}
    others: dict[tuple, list[NatRecord]] = {}
    order: dict[tuple, None] = {}  # every group's key, in the order it first happened
    for event in events:
        if event.kind == "mapping-created" or (event.is_drop and event.direction == "outbound"):
            inside = event.internal if event.kind == "mapping-created" else event.src
            key = ("flows", event.router, host_of(inside or "") or "?")
            flows.setdefault(key, _Flows()).add(event)
        elif event.is_drop:
            sender = sender_of(event.src or "") or host_of(event.src or "")
            key = ("drops", event.router, sender, event.reason, event.direction)
        elif event.kind == "mapping-expired":
            whose = host_of(event.internal or "") or sender_of(event.external or "")
            key = ("expired", event.router, whose)
        else:  # a port block given or taken back
            key = (event.kind, event.router, event.subscriber or "?")
        if key[0] != "flows":
            others.setdefault(key, []).append(event)
        order[key] = None
    return [
        flows[key].line(key[1], key[2]) if key in flows else _line(key, others[key], host_of)
        for key in order
    ]


def _line(key: tuple, found: list[NatRecord], host_of: Callable[[str], str]) -> str:
    what, router = key[0], key[1]
    if what == "drops":
        sender, reason, direction = key[2], key[3], key[4]
        sources = port_ranges(event.src for event in found if event.src)
        whose = f" from {sender}" if sender else ""
        return (
            f"{router} dropped {_plural(len(found), 'packet')}{whose} "
            f"({direction}, {reason}; from {sources}): {found[0].detail}"
        )
    if what == "expired":
        mappings = _plural(len(found), "mapping")
        if key[2]:
            mappings = (
                f"{len(found)} of {key[2]}'s mappings"
                if len(found) > 1
                else f"a mapping of {key[2]}'s"
            )
        expired = port_ranges(event.external for event in found if event.external)
        return f"{router}: {mappings} expired ({expired})"
    subscriber = key[2]
    whose = host_of(subscriber) or subscriber
    blocks = ", ".join(f"{e.public}:{e.first_port}-{e.last_port}" for e in found)
    count = _plural(len(found), "port block")
    if what == "port-block-allocated":
        return f"{router} gave {whose} (subscriber {subscriber}) {count}: {blocks}"
    return f"{router} took back {whose}'s {count} (subscriber {subscriber}): {blocks}"
