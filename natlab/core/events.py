"""What the NAT engine decides and tells: verdicts, drop reasons, events.

A verdict is the answer for one packet (what to do with it and, for a drop,
why). Events are the engine's account of its decisions, frozen dataclasses
compared with `==` in tests and turned into flat JSON-friendly dicts with
`as_json()` for `natlab nat events`. A drop is a typed reason, never a log
string; the human `detail` names the mapping or permission that was missing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Any, ClassVar

from natlab.core.packets import Endpoint, Proto


class Action(StrEnum):
    """What the caller does with the packet (rewritten in place unless DROP or PASS)."""

    FORWARD_OUT = "forward-out"  # source is now external: send on the WAN
    FORWARD_IN = "forward-in"  # destination is now internal: send towards the LAN
    HAIRPIN = "hairpin"  # LAN -> own external address -> LAN, both ends rewritten
    LOCAL = "local"  # for the router itself (its STUN responder)
    DROP = "drop"
    PASS = "pass"  # no translation configured: route it unchanged


class DropReason(StrEnum):
    """Why a packet was dropped; `dropped_<value>` is its counter, `meaning` says it for people.

    The engine's reasons come with a `detail` naming the mapping or permission
    that was missing; the daemon's own (after the engine, or before it could
    parse the packet) carry little more than the reason, so `meaning` is
    what explains them.
    """

    NO_MAPPING = "no-mapping"
    FILTERED_ADDRESS = "filtered-address"
    FILTERED_PORT = "filtered-port"
    EXPIRED = "expired"
    HAIRPIN_OFF = "hairpin-off"
    EXHAUSTED = "exhausted"
    UNSUPPORTED = "unsupported"
    FRAGMENT = "fragment"
    NOT_SYN = "not-syn"
    NOT_INTERNAL = "not-internal"  # from the LAN with a source outside internal_networks
    MARTIAN_SOURCE = "martian-source"  # from the WAN with a source it cannot have (core.martians)
    # the router daemon's own drops
    NO_ROUTE = "no-route"
    TTL_EXPIRED = "ttl-expired"
    MALFORMED = "malformed"
    SEND_ERROR = "send-error"
    RECEIVE_OVERFLOW = "receive-overflow"
    # a link impairment's (core/impair.py: its Drop, same values)
    IMPAIRMENT_LOSS = "impairment-loss"
    IMPAIRMENT_QUEUE = "impairment-queue"

    @property
    def counter(self) -> str:
        return "dropped_" + self.name.lower()

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @property
    def filtered(self) -> bool:
        """Did the NAT refuse an inbound packet its mappings do not let in (its sender's
        mapping is then what explains it)?"""
        return self in _FILTERING


_MEANINGS = {
    DropReason.NO_MAPPING: "no mapping has that external address and port",
    DropReason.FILTERED_ADDRESS: "the mapping has not sent to that address (address filtering)",
    DropReason.FILTERED_PORT: "the mapping has not sent to that address and port "
    "(address-and-port filtering)",
    DropReason.EXPIRED: "the mapping it was for had expired",
    DropReason.HAIRPIN_OFF: "a LAN host sent to the router's own external address, and "
    "hairpinning is off",
    DropReason.EXHAUSTED: "no external port (or no more mappings for the host) was left",
    DropReason.UNSUPPORTED: "a protocol the NAT does not translate",
    DropReason.FRAGMENT: "a fragment, which the NAT does not reassemble",
    DropReason.NOT_SYN: "a TCP packet with no connection, and not a SYN",
    DropReason.NOT_INTERNAL: "from the LAN with a source outside the router's internal networks",
    DropReason.MARTIAN_SOURCE: "from the internet with a source it cannot have: forged or "
    "misrouted, never let in",
    DropReason.NO_ROUTE: "the router has no route to that destination: a private address, "
    "which the internet does not route (a host candidate of a phone in another LAN)",
    DropReason.TTL_EXPIRED: "the packet's TTL ran out",
    DropReason.MALFORMED: "the frame is no IPv4 packet the router can read",
    DropReason.SEND_ERROR: "the router could not send it (a full socket buffer, or larger "
    "than the MTU)",
    DropReason.RECEIVE_OVERFLOW: "frames came in faster than the daemon could read them",
    DropReason.IMPAIRMENT_LOSS: "impairment: loss; the link's configured loss dropped it "
    "(natlab link show)",
    DropReason.IMPAIRMENT_QUEUE: "impairment: queue; the link's rate limit had a full queue "
    "(natlab link show)",
}
_FILTERING = frozenset(
    {
        DropReason.FILTERED_ADDRESS,
        DropReason.FILTERED_PORT,
        DropReason.NO_MAPPING,
        DropReason.EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The engine's answer for one packet. The engine hands out shared instances."""

    action: Action
    reason: DropReason | None = None


def format_time(seconds: float) -> str:
    """Engine time for humans: 11.5, 12, 7440.25 (no float noise)."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def proto_name(proto: int) -> str:
    """ "udp", "tcp", "icmp", or the protocol number of anything else."""
    return str(Proto(proto)) if proto in Proto._value2member_map_ else str(proto)


def _json_value(value: Any) -> Any:
    if isinstance(value, Endpoint):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """Something the engine decided, at engine time `at`."""

    kind: ClassVar[str] = "event"
    at: float

    def describe(self) -> str:
        """One line for humans; each event says what happened to what."""
        raise NotImplementedError

    def as_json(self) -> dict[str, Any]:
        """A flat dict: at, kind, every field (endpoints as "a.b.c.d:port"), detail."""
        out: dict[str, Any] = {"at": self.at, "kind": self.kind}
        for f in fields(self):
            if f.name == "proto":
                out["proto"] = proto_name(self.proto)  # type: ignore[attr-defined]
            elif f.name != "at":
                out[f.name] = _json_value(getattr(self, f.name))
        out.setdefault("detail", self.describe())
        return out


@dataclass(frozen=True, slots=True)
class MappingCreated(Event):
    """An outbound packet made a new mapping; `remote` is the destination it went to."""

    kind: ClassVar[str] = "mapping-created"
    proto: Proto
    internal: Endpoint
    external: Endpoint
    remote: Endpoint

    def describe(self) -> str:
        return (
            f"{self.proto} mapping {self.internal} -> {self.external} (first sent to {self.remote})"
        )


@dataclass(frozen=True, slots=True)
class MappingRefreshed(Event):
    """A packet kept a mapping alive. Emitted at most once per mapping per second."""

    kind: ClassVar[str] = "mapping-refreshed"
    proto: Proto
    internal: Endpoint
    external: Endpoint
    direction: str  # "outbound" | "inbound"
    expires_at: float

    def describe(self) -> str:
        return (
            f"{self.proto} mapping {self.internal} -> {self.external} refreshed by an "
            f"{self.direction} packet, expires at {format_time(self.expires_at)}"
        )


@dataclass(frozen=True, slots=True)
class MappingRequested(Event):
    """A port control protocol or the SIP ALG (`origin`) made, renewed or deleted an explicit
    mapping.

    Deleted: `expires_at` is `at`. Lifetime expiry is a MappingExpired like any other.
    """

    kind: ClassVar[str] = "mapping-requested"
    proto: Proto
    internal: Endpoint
    external: Endpoint
    expires_at: float
    origin: str

    def describe(self) -> str:
        what = "deleted" if self.expires_at <= self.at else f"until {format_time(self.expires_at)}"
        return f"{self.origin}: {self.proto} mapping {self.internal} -> {self.external} {what}"


@dataclass(frozen=True, slots=True)
class MappingExpired(Event):
    """A mapping timed out at `expired_at`; the engine noticed at `at`."""

    kind: ClassVar[str] = "mapping-expired"
    proto: Proto
    internal: Endpoint
    external: Endpoint
    expired_at: float

    def describe(self) -> str:
        return (
            f"{self.proto} mapping {self.internal} -> {self.external} "
            f"expired at {format_time(self.expired_at)}"
        )


@dataclass(frozen=True, slots=True)
class StaticMapHit(Event):
    """A packet used a static map. At most once per static map and direction per second."""

    kind: ClassVar[str] = "static-map-hit"
    proto: Proto
    direction: str
    internal: Endpoint
    external: Endpoint
    remote: Endpoint

    def describe(self) -> str:
        arrow = "<-" if self.direction == "inbound" else "->"
        return (
            f"static {self.proto} map {self.external} = {self.internal}: "
            f"{self.direction} packet {arrow} {self.remote}"
        )


@dataclass(frozen=True, slots=True)
class Hairpinned(Event):
    """A LAN host reached another (or itself) through the external address.

    At most once per sending mapping per second.
    """

    kind: ClassVar[str] = "hairpinned"
    proto: Proto
    src: Endpoint  # the sender's internal endpoint
    src_external: Endpoint  # what the target sees as source (RFC 4787 REQ-9)
    dst_external: Endpoint
    dst: Endpoint  # the target's internal endpoint

    def describe(self) -> str:
        return (
            f"{self.proto} {self.src} -> {self.dst_external} hairpinned to {self.dst}, "
            f"source shown as {self.src_external}"
        )


@dataclass(frozen=True, slots=True)
class SynHeld(Event):
    """An unsolicited SYN was dropped and will be answered with `answer` ("rst" or "icmp")
    at `answer_at`, unless an outbound SYN makes it a simultaneous open (RFC 5382 REQ-4)."""

    kind: ClassVar[str] = "syn-held"
    remote: Endpoint
    external: Endpoint
    answer: str
    answer_at: float

    def describe(self) -> str:
        return (
            f"unsolicited tcp SYN {self.remote} -> {self.external}: answered with "
            f"{_ANSWERS[self.answer]} at {format_time(self.answer_at)} unless "
            f"{self.external} sends a SYN to {self.remote} before"
        )


@dataclass(frozen=True, slots=True)
class SynAnswered(Event):
    """A held SYN's time ran out: the router sent the answer out of its WAN."""

    kind: ClassVar[str] = "syn-answered"
    remote: Endpoint
    external: Endpoint
    answer: str

    def describe(self) -> str:
        return (
            f"answered the unsolicited tcp SYN {self.remote} -> {self.external} with "
            + (_ANSWERS[self.answer])
        )


@dataclass(frozen=True, slots=True)
class SynWithdrawn(Event):
    """An outbound SYN made a held SYN a simultaneous open: it goes unanswered."""

    kind: ClassVar[str] = "syn-withdrawn"
    internal: Endpoint
    external: Endpoint
    remote: Endpoint

    def describe(self) -> str:
        return (
            f"{self.internal} (as {self.external}) sent a SYN to {self.remote}: a simultaneous "
            f"open, so {self.remote}'s earlier SYN stays unanswered"
        )


_ANSWERS = {"rst": "a TCP RST", "icmp": "ICMP port unreachable"}


@dataclass(frozen=True, slots=True)
class Dropped(Event):
    """A packet was dropped; `src`/`dst` are as the packet carried them at that point."""

    kind: ClassVar[str] = "drop"
    reason: DropReason
    direction: str
    proto: int
    src: Endpoint
    dst: Endpoint
    detail: str

    def describe(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Exhausted(Dropped):
    """A drop because no external port (or no more mappings for the host) was left.

    A carrier-grade NAT names the subscriber whose blocks or quota ran out.
    """

    kind: ClassVar[str] = "exhausted"
    subscriber: str | None = None


@dataclass(frozen=True, slots=True)
class Flushed(Event):
    """Every dynamic mapping was removed (`natlab nat flush`); static maps stay."""

    kind: ClassVar[str] = "flushed"
    count: int

    def describe(self) -> str:
        return f"flushed {self.count} dynamic mapping(s)"


@dataclass(frozen=True, slots=True)
class Reconfigured(Event):
    """The behaviour changed on a live router; every dynamic mapping was flushed."""

    kind: ClassVar[str] = "reconfigured"
    behaviour: str
    flushed: int

    def describe(self) -> str:
        return f"behaviour is now {self.behaviour}; flushed {self.flushed} dynamic mapping(s)"


# -- the SIP ALG's account (natlab.router.sip_alg), told like the engine's -------------------


@dataclass(frozen=True, slots=True)
class SipMessageEvent(Event):
    """What the SIP ALG did with one SIP message; `src`/`dst` as the packet left the router."""

    direction: str  # "outbound" | "inbound"
    proto: int
    src: Endpoint
    dst: Endpoint


@dataclass(frozen=True, slots=True)
class SipRewritten(SipMessageEvent):
    """The router's SIP ALG changed one field of a SIP message passing it: `header` old -> new.

    `header` names the place ("Via", "Contact", "Request-URI", "SDP c=",
    "SDP m=audio", "SDP a=candidate", "SDP a=rtcp", "Content-Length").
    """

    kind: ClassVar[str] = "sip-rewritten"
    header: str
    old: str
    new: str

    def describe(self) -> str:
        return f"SIP ALG rewrote {self.header} ({self.direction}): {self.old} -> {self.new}"


@dataclass(frozen=True, slots=True)
class SipPinhole(Event):
    """The SIP ALG opened a UDP mapping for a media port it saw in an SDP the host sent.

    Until the mapping expires, anyone may send to `external` and reach `internal`.
    """

    kind: ClassVar[str] = "sip-pinhole"
    proto: Proto
    internal: Endpoint
    external: Endpoint
    remote: Endpoint  # where the SDP went

    def describe(self) -> str:
        return (
            f"SIP ALG opened a {self.proto} pinhole {self.external} -> {self.internal} for the "
            f"media in an SDP sent to {self.remote}"
        )


@dataclass(frozen=True, slots=True)
class SipUntouched(SipMessageEvent):
    """A SIP port's payload the ALG passed unchanged: not SIP it can read, nothing to rewrite,
    a TCP segment that does not hold whole messages, or a rewrite its sequence shift refused."""

    kind: ClassVar[str] = "sip-untouched"
    detail: str

    def describe(self) -> str:
        return f"SIP ALG passed a message unchanged: {self.detail}"
