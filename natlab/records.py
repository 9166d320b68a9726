"""Typed values that cross a process boundary, and their versioned JSON.

Every file and socket message natlab's processes exchange is one of these:
a router daemon's events (its events file), a scenario's trace records,
a phone's CallReport, the control requests and answers of router daemons,
phones and the PBX, and a probe's report. Writers build a record and call
`to_json()`; readers call `Record.from_json(data)`, which checks the shape
(strict JSON types: "12" is not 12) and raises a NatlabError naming the
field, so a file or an answer that is not what natlab wrote never gets as
far as a KeyError.

Versions: each line of a router's events file carries `"v": EVENTS_VERSION`
(a rotated file has no first line to carry it once); a trace carries
`"v": TRACE_VERSION` in its first record, the lab record. A record without
`v` is read as version 1 (files written before versions were). A version
goes up when a field changes meaning or goes away, not when one is added:
readers ignore fields they do not know, and a version newer than theirs
is refused with the fix (a newer natlab).

The engine's own types stay the source of truth: an event's kind and the
fields it must carry come from core/events.py, drop reasons are its
DropReason.
"""

from __future__ import annotations

import ipaddress
import math
import time
import types
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union, get_args, get_origin
from typing import get_type_hints as type_hints

from natlab.core.cgnat import PortBlockAllocated, PortBlockReleased
from natlab.core.events import (
    Dropped,
    DropReason,
    Event,
    Flushed,
    Hairpinned,
    MappingCreated,
    MappingExpired,
    MappingRefreshed,
    MappingRequested,
    Reconfigured,
    SipPinhole,
    SipRewritten,
    SipUntouched,
    StaticMapHit,
    SynAnswered,
    SynHeld,
    SynWithdrawn,
)
from natlab.errors import NatlabError

EVENTS_VERSION = 1
TRACE_VERSION = 1
MAX_ROUTERS = 100  # a trace's lab: the HTML topology recurses once per router behind a router


def _address(text: str) -> None:
    ipaddress.ip_address(text)


def _network(text: str) -> None:
    ipaddress.ip_network(text)


Address = Annotated[str, "an IP address", _address]
Network = Annotated[str, "an IP network", _network]
T = TypeVar("T")
R = TypeVar("R", bound="Record")


# -- reading JSON into records ----------------------------------------------------------
#
# Strict, by the fields' type hints: a str field takes a JSON string, an int field a whole
# number (not true or 12.0), a float field any finite number; a record nested in a field is
# read the same way. A field left out takes its default or is "field required"; fields a
# record does not have are ignored. Hand-written rather than pydantic's, so that the router
# daemon, which reads its control requests as records, stays as small as it is.


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message


_KINDS = {str: "a valid string", int: "a valid integer", float: "a valid number"}


def _value(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        base, what, check = get_args(hint)
        checked = _value(base, value, path)
        try:
            check(checked)
        except ValueError:
            raise _Invalid(path, f"input should be {what}, not {value!r}") from None
        return checked
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in options:
            if option is not type(None):
                try:
                    return _value(option, value, path)
                except _Invalid as problem:
                    problems.append(problem)
        raise problems[0]
    if origin is Literal:
        allowed = get_args(hint)
        if isinstance(value, str) and value in allowed:
            return value
        raise _Invalid(path, "input should be " + " or ".join(repr(a) for a in allowed))
    if origin is list:
        if not isinstance(value, list):
            raise _Invalid(path, "input should be a list")
        (item,) = get_args(hint)
        return [_value(item, element, _at(path, index)) for index, element in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(path, "input should be an object")
        item = get_args(hint)[1]
        return {key: _value(item, element, _at(path, key)) for key, element in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Invalid(path, "input should be a valid boolean")
    if isinstance(value, bool) and hint in _KINDS:
        raise _Invalid(path, f"input should be {_KINDS[hint]}")
    if hint is str or hint is int:
        if isinstance(value, hint):
            return value
        raise _Invalid(path, f"input should be {_KINDS[hint]}")
    if hint is float:
        if not isinstance(value, int | float):
            raise _Invalid(path, "input should be a valid number")
        if not math.isfinite(value):
            raise _Invalid(path, "input should be a finite number")
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = " or ".join(repr(member.value) for member in hint)
            raise _Invalid(path, f"input should be {allowed}") from None
    if isinstance(hint, type) and is_dataclass(hint):
        return _record(hint, value, path)
    raise TypeError(f"records: no reader for {hint!r}")  # a record's own mistake


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return type_hints(cls, include_extras=True)


def _record(cls: type[T], data: object, path: str) -> T:
    if not isinstance(data, dict):
        raise _Invalid(path, f"input should be an object, not {type(data).__name__}")
    hints = _hints(cls)
    given: dict[str, Any] = {}
    for item in fields(cls):  # type: ignore[arg-type]
        where = _at(path, item.name)
        if item.name in data:
            given[item.name] = _value(hints[item.name], data[item.name], where)
        elif item.default is MISSING and item.default_factory is MISSING:
            raise _Invalid(where, "field required")
    try:
        return cls(**given)
    except ValueError as error:  # what the record's __post_init__ says is wrong with it
        raise _Invalid(path, str(error)) from None


def parse(cls: type[T], data: object, what: str) -> T:
    """data as a cls, or a NatlabError "WHAT: field: what is wrong"."""
    try:
        return _record(cls, data, "")
    except _Invalid as problem:
        where = f"{problem.path}: " if problem.path else ""
        raise NatlabError(f"{what}: {where}{problem.message}") from None
    except RecursionError:
        raise NatlabError(f"{what}: nested too deep") from None


def _check_version(data: object, newest: int, what: str) -> None:
    """Refuse a record written by a newer natlab (its "v" above `newest`)."""
    version = data.get("v", 1) if isinstance(data, dict) else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise NatlabError(f"{what}: v: a version is a whole number from 1, not {version!r}")
    if version > newest:
        raise NatlabError(
            f"{what}: written in version {version}; this natlab reads up to version {newest}",
            fix="read it with the natlab that wrote it, or a newer one",
        )


def _shallow(record: object) -> dict[str, Any]:
    """A dataclass's fields, nested records as JSON; None-valued optional fields left out."""
    out: dict[str, Any] = {}
    for item in fields(record):  # type: ignore[arg-type]
        value = getattr(record, item.name)
        if value is None and item.default is None:
            continue
        out[item.name] = _json(value)
    return out


def _json(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return value


class Record:
    """A dataclass that is JSON on the wire: to_json() and from_json()."""

    noun: ClassVar[str] = "a record"  # how errors name it

    def to_json(self) -> dict[str, Any]:
        return _shallow(self)

    @classmethod
    def from_json(cls, data: object) -> Self:
        return parse(cls, data, cls.noun)


# -- router events ---------------------------------------------------------------------

# The engine's events, by kind; the daemon's own drops are "drop" events with a DropReason.
ENGINE_EVENTS: dict[str, type[Event]] = {
    kind.kind: kind
    for kind in (
        MappingCreated,
        MappingRefreshed,
        MappingExpired,
        MappingRequested,
        StaticMapHit,
        Hairpinned,
        Dropped,
        Flushed,
        Reconfigured,
        SynHeld,
        SynAnswered,
        SynWithdrawn,
        PortBlockAllocated,
        PortBlockReleased,
        SipRewritten,
        SipPinhole,
        SipUntouched,
    )
}
DROP = Dropped.kind
EXHAUSTED = "exhausted"
STUN_MALFORMED = "stun-malformed"  # the router's STUN responder could not read a request
PORT_CONTROL_REFUSED = "port-control-refused"  # a PCP, NAT-PMP or UPnP request got an error
DROP_KINDS = (DROP, EXHAUSTED)
SIP_ALG_KINDS = (SipRewritten.kind, SipPinhole.kind, SipUntouched.kind)  # router/sip_alg.py


def _required(kind: str) -> tuple[str, ...]:
    """The fields an event of `kind` carries: the engine event's, for the engine's kinds."""
    if kind in DROP_KINDS:  # the daemon's own drops carry only what it knew
        return ("reason",)
    engine = ENGINE_EVENTS.get(kind)
    return tuple(f.name for f in fields(engine) if f.name != "at") if engine else ()


@dataclass(frozen=True)
class RouterEvent(Record):
    """One line of a router daemon's events file: what the engine or the daemon decided.

    `at` is the router's clock. Which fields a kind carries is the engine's
    event of that kind (core/events.py); kinds this natlab does not know are
    kept with what they carry of these fields.
    """

    noun: ClassVar[str] = "a router event"

    at: float
    router: str
    kind: str
    reason: DropReason | None = None
    direction: str | None = None
    proto: str | None = None
    src: str | None = None
    dst: str | None = None
    internal: str | None = None
    external: str | None = None
    remote: str | None = None
    src_external: str | None = None
    dst_external: str | None = None
    expires_at: float | None = None
    expired_at: float | None = None
    behaviour: str | None = None
    count: int | None = None
    flushed: int | None = None
    port: str | None = None  # the daemon's interface, for a drop before parsing
    answer: str | None = None  # to an unsolicited SYN: "rst" or "icmp"
    answer_at: float | None = None
    origin: str | None = None  # who asked for a mapping-requested: port control, sip-alg
    # a carrier-grade NAT's log: port blocks, and whose blocks an exhaustion is about
    subscriber: str | None = None
    public: str | None = None
    first_port: int | None = None
    last_port: int | None = None
    allocated_at: float | None = None
    header: str | None = None  # what the SIP ALG rewrote, from `old` to `new`
    old: str | None = None
    new: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        for name in _required(self.kind):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: field required (every '{self.kind}' event has it)")
        if self.src is not None and self.dst is None and self.kind in DROP_KINDS:
            raise ValueError("a drop with 'src' has a 'dst' too")  # it is drawn src -> dst

    @property
    def is_drop(self) -> bool:
        return self.kind in DROP_KINDS

    def to_json(self) -> dict[str, Any]:
        return {"v": EVENTS_VERSION, **_shallow(self)}

    @classmethod
    def from_json(cls, data: object) -> Self:
        _check_version(data, EVENTS_VERSION, cls.noun)
        return parse(cls, data, cls.noun)

    @classmethod
    def of(cls, event: Event, router: str) -> RouterEvent:
        """The engine's event as its router writes it."""
        return cls.from_json({**event.as_json(), "router": router})


def event_json(event: Event, router: str) -> dict[str, Any]:
    """An engine event as a line of its router's events file, without building a record.

    The daemon's fast path: the same JSON as RouterEvent.of(event, router).to_json().
    """
    return {"v": EVENTS_VERSION, **event.as_json(), "router": router}


# -- trace records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Check(Record):
    """One expectation held against what was observed."""

    what: str
    expected: str
    observed: str
    ok: bool


@dataclass(frozen=True)
class TraceRecord(Record):
    """A line of a trace: wall time `at` and its `type` (trace.py)."""

    type: ClassVar[str] = ""
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **_shallow(self)}

    @classmethod
    def from_json(cls, data: object) -> Self:
        return parse(cls, data, f"a '{cls.type}' record")


@dataclass(frozen=True)
class RouterInfo(Record):
    wan: Address
    lans: list[Network]
    nat: str
    mapping: str
    filtering: str


@dataclass(frozen=True)
class HostInfo(Record):
    address: str
    role: str
    router: str | None = None


@dataclass(frozen=True)
class LabRecord(TraceRecord):
    """The first record of a trace: the topology as the story names things."""

    type: ClassVar[str] = "lab"
    scenario: str
    lab: str
    routers: dict[str, RouterInfo]
    hosts: dict[str, HostInfo]
    stun_servers: list[str]
    about: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if len(self.routers) > MAX_ROUTERS:
            raise ValueError(f"routers: at most {MAX_ROUTERS}")
        for name, host in self.hosts.items():
            if host.router is not None and host.router not in self.routers:
                raise ValueError(f"host {name}'s router '{host.router}' is not in routers")

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["routers"] = {name: asdict(router) for name, router in self.routers.items()}
        out["hosts"] = {name: asdict(host) for name, host in self.hosts.items()}
        return {"type": self.type, "v": TRACE_VERSION, **out}

    @classmethod
    def from_json(cls, data: object) -> Self:
        _check_version(data, TRACE_VERSION, "a trace")
        return super().from_json(data)


@dataclass(frozen=True)
class StepStarted(TraceRecord):
    type: ClassVar[str] = "step"
    index: int
    text: str
    phase: Literal["start"] = "start"


@dataclass(frozen=True)
class StepEnded(TraceRecord):
    type: ClassVar[str] = "step"
    index: int
    text: str
    phase: Literal["end"] = "end"
    verdict: str | None = None
    passed: bool | None = None
    error: str | None = None
    fault: str | None = None
    checks: list[Check] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)  # a program step's state and output


@dataclass(frozen=True)
class Candidate(Record):
    """An ICE candidate as a phone offered it (or, for the selected pair, used it)."""

    address: str
    type: str
    base: str | None = None  # a local server-reflexive candidate's host address


@dataclass(frozen=True)
class SelectedPair(Record):
    local: Candidate
    remote: Candidate

    def describe(self) -> str:
        return f"{self.local.type} {self.local.address} -> {self.remote.type} {self.remote.address}"


@dataclass(frozen=True)
class IceCheck(Record):
    """One candidate pair a phone's ICE agent kept in its check list, and the state it reached."""

    local: str
    remote: str
    local_type: str
    remote_type: str
    state: str


@dataclass(frozen=True)
class CallRecord(TraceRecord):
    type: ClassVar[str] = "call"
    call: str | None
    caller: str
    callee: str
    mode: str | None
    verdict: str | None
    error: str | None
    ice: str | None = None
    selected_pair: SelectedPair | None = None
    fault: str | None = None


@dataclass(frozen=True)
class CandidatesRecord(TraceRecord):
    type: ClassVar[str] = "candidates"
    phone: str
    candidates: list[Candidate]
    call: str | None = None


@dataclass(frozen=True)
class IceCheckRecord(TraceRecord):
    type: ClassVar[str] = "ice-check"
    phone: str
    local: str
    remote: str
    local_type: str
    remote_type: str
    state: str
    selected: bool = False
    call: str | None = None


@dataclass(frozen=True)
class RtpRecord(TraceRecord):
    """One direction's RTP; a count the phone's report never brought back is None."""

    type: ClassVar[str] = "rtp"
    sender: str
    receiver: str
    sent: int | None
    received: int | None
    call: str | None = None
    lost: int | None = None  # the receiver's RFC 3550 figures (RtpCounts)
    late: int | None = None
    jitter_ms: float | None = None


@dataclass(frozen=True)
class SipRecord(TraceRecord):
    """A SIP message between a phone and the PBX (the phone's SipSeen, in a trace)."""

    type: ClassVar[str] = "sip"
    call: str
    phone: str
    direction: str  # "sent" | "received": by the phone
    summary: str
    via: str | None = None
    contact: str | None = None
    sdp: str | None = None


@dataclass(frozen=True)
class StunRecord(TraceRecord):
    type: ClassVar[str] = "stun"
    router: str
    host: str
    internal: str
    mapped: str
    server: str


@dataclass(frozen=True)
class NatRecord(RouterEvent):
    """A router event in a trace: `at` on the wall clock, the router's own time as `clock`."""

    type: ClassVar[str] = "nat"
    clock: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **_shallow(self)}  # the trace's version is the lab record's

    @classmethod
    def from_json(cls, data: object) -> Self:
        return parse(cls, data, "a 'nat' record")

    @classmethod
    def placed(cls, event: RouterEvent, at: float) -> NatRecord:
        """event at wall time `at`, its router time kept as `clock`."""
        mine = {f.name: getattr(event, f.name) for f in fields(event)}
        return cls(**{**mine, "at": at, "clock": event.at})


@dataclass(frozen=True)
class OtherRecord(Record):
    """A record type this natlab does not know: kept with its time, skipped by the story."""

    noun: ClassVar[str] = "a record"
    type: str
    at: float


TRACE_RECORDS: dict[str, type[TraceRecord]] = {
    kind.type: kind
    for kind in (
        LabRecord,
        CallRecord,
        CandidatesRecord,
        IceCheckRecord,
        RtpRecord,
        StunRecord,
        SipRecord,
    )
}


def trace_record(data: object) -> TraceRecord | OtherRecord:
    """One line of a trace, by its type (and a step by its phase)."""
    if not isinstance(data, dict):
        raise NatlabError(f"a record is a JSON object, not {type(data).__name__}")
    kind = data.get("type")
    if kind == NatRecord.type:
        return NatRecord.from_json(data)
    if kind == "step":
        step = StepStarted if data.get("phase") == "start" else StepEnded
        return step.from_json(data)
    if isinstance(kind, str) and kind in TRACE_RECORDS:
        return TRACE_RECORDS[kind].from_json(data)
    return OtherRecord.from_json(data)


# -- a call, as a phone reports it -----------------------------------------------------

# What a call's media did (endpoints.media judges it from both sides' RTP counts).
TWO_WAY = "two-way"
CALLER_DEAF = "one-way (caller hears nothing)"
CALLEE_DEAF = "one-way (callee hears nothing)"
NO_MEDIA = "no media"


@dataclass
class RtpCounts(Record):
    """One side's RTP: packets sent, packets received from the peer, when the first came,
    and as the receiver measured them (RFC 3550 6.4.1): packets lost, packets late for
    playout, and the interarrival jitter."""

    noun: ClassVar[str] = "RTP counts"
    sent: int = 0
    received: int = 0
    first_received_at: float | None = None
    lost: int = 0  # expected (by sequence number) less received, never below 0
    late: int = 0  # came out of order, or later than the jitter buffer (endpoints.media)
    jitter_ms: float = 0.0  # RFC 3550's interarrival jitter, in milliseconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def quality(self) -> str:
        """What this side measured of what it received, " (2 lost, 1 late, jitter 3.2 ms)";
        "" when nothing came (then there is nothing to measure)."""
        if not self.received:
            return ""
        return f" ({self.lost} lost, {self.late} late, jitter {self.jitter_ms:g} ms)"


@dataclass(frozen=True)
class SipSeen(Record):
    """One SIP message a phone sent or received about a call, as the trace tells it.

    summary: the method or the status ("INVITE", "180 Ringing"); via: the top
    Via as it travelled (sent-by, received, rport); contact: the Contact URI;
    sdp: where the SDP said RTP goes (c= address, m= port).
    """

    at: float
    direction: Literal["sent", "received"]
    summary: str
    via: str | None = None
    contact: str | None = None
    sdp: str | None = None


@dataclass
class CallReport(Record):
    """One call as one of its phones saw it: filled in by the phone while the call runs."""

    noun: ClassVar[str] = "a call report"
    call: str
    caller: str
    callee: str
    mode: str
    role: Literal["caller", "callee"]
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    selected_pair: SelectedPair | None = None
    checks: list[IceCheck] = field(default_factory=list)
    ice: str | None = None  # "completed" | "failed" | "timeout"; None without ICE
    gathering: float | None = None  # seconds this phone took to gather its candidates
    rtp: RtpCounts = field(default_factory=RtpCounts)
    peer_rtp: RtpCounts | None = None  # the other phone's counts, None if they never came
    verdict: str = NO_MEDIA
    error: str | None = None
    cancelled: bool = False  # the caller hung up (CANCEL) before the callee answered
    signalling: list[SipSeen] = field(default_factory=list)  # this phone's SIP for the call

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rtp"] = self.rtp.to_json()
        out["peer_rtp"] = None if self.peer_rtp is None else self.peer_rtp.to_json()
        return out


# -- control requests and answers -------------------------------------------------------

OP = "op"  # the key that names a control request's operation


@dataclass(frozen=True)
class Request(Record):
    """A control request: its `op` under the key OP, then its fields."""

    op: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return {OP: self.op, **_shallow(self)}


def request_from_json(data: object, kinds: Sequence[type[Request]]) -> Request:
    """A request of one of `kinds` (what one process serves); anything else: NatlabError."""
    op = data.get(OP) if isinstance(data, dict) else None
    for kind in kinds:
        if kind.op == op:
            return parse(kind, data, f"a '{op}' request")
    raise NatlabError(f"unknown request {op!r}; this process serves {[k.op for k in kinds]}")


@dataclass(frozen=True)
class PingRequest(Request):
    """Is it alive and ready? (A router daemon writes out its pending events first.)"""

    op: ClassVar[str] = "ping"


@dataclass(frozen=True)
class ShowRequest(Request):
    op: ClassVar[str] = "show"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit is a number of mappings, 0 or more")


@dataclass(frozen=True)
class FlushRequest(Request):
    op: ClassVar[str] = "flush"


@dataclass(frozen=True)
class SetRequest(Request):
    op: ClassVar[str] = "set"
    behaviour: dict[str, Any]  # Behaviour.as_json(); the daemon builds the Behaviour


@dataclass(frozen=True)
class ClockRequest(Request):
    op: ClassVar[str] = "clock"


@dataclass(frozen=True)
class AdvanceRequest(Request):
    op: ClassVar[str] = "advance"
    seconds: Any  # checked by the daemon (router.control.check_advance), which says why


@dataclass(frozen=True)
class LinkSetRequest(Request):
    """A router interface's impairment, replaced live (core.impair.LinkImpairment.to_json)."""

    op: ClassVar[str] = "link-set"
    port: str
    impair: dict[str, Any]  # checked by the daemon, which says why


@dataclass(frozen=True)
class LinkShowRequest(Request):
    op: ClassVar[str] = "link-show"


ROUTER_REQUESTS: tuple[type[Request], ...] = (
    PingRequest,
    ShowRequest,
    FlushRequest,
    SetRequest,
    ClockRequest,
    AdvanceRequest,
    LinkSetRequest,
    LinkShowRequest,
)


@dataclass(frozen=True)
class LinkState(Record):
    """One router interface's impairment and what it has done since it was set."""

    noun: ClassVar[str] = "a link's state"
    port: str
    impair: dict[str, Any]  # core.impair.LinkImpairment.to_json()
    described: str  # as `natlab link set` takes it; "none" when unimpaired
    counters: dict[str, int]  # per direction: lost, queue_dropped, duplicated, delayed


@dataclass(frozen=True)
class LinksAnswer(Record):
    noun: ClassVar[str] = "a router daemon's link answer"
    router: str
    links: list[LinkState]
    late: dict[str, float] = field(default_factory=dict)  # held frames: frames, median_ms, p99_ms


@dataclass(frozen=True)
class RouterPong(Record):
    noun: ClassVar[str] = "a router daemon's ping answer"
    router: str
    pid: int


@dataclass(frozen=True)
class RouterClock(Record):
    """A router's clock: monotonic time plus `offset`, what `clock advance` added."""

    noun: ClassVar[str] = "a router daemon's clock answer"
    clock: float
    offset: float = 0.0


@dataclass(frozen=True)
class FlushAnswer(Record):
    noun: ClassVar[str] = "a router daemon's flush answer"
    flushed: int


@dataclass(frozen=True)
class BehaviourAnswer(Record):
    noun: ClassVar[str] = "a router daemon's set answer"
    behaviour: dict[str, Any]


@dataclass(frozen=True)
class ShowHead(Record):
    """The first line of a show answer: the router as it stands; its mappings follow."""

    noun: ClassVar[str] = "a router daemon's show answer"
    router: str
    clock: float
    behaviour: dict[str, Any]
    mappings_total: int
    counters: dict[str, int]
    cgnat: dict[str, Any] | None = None  # a carrier-grade NAT's pool, subscribers and blocks


@dataclass(frozen=True)
class MappingRecord(Record):
    """One dynamic mapping of a show answer (core.mapping.MappingView.as_json)."""

    noun: ClassVar[str] = "a mapping of a show answer"
    proto: str
    internal: str
    external: str
    remote: str | None
    permissions: list[str]
    created: float
    age: float
    last_outbound: float
    last_inbound: float | None
    expires_at: float
    expires_in: float
    tcp_state: str | None
    detail: str
    origin: str = "traffic"  # or what made it: pcp, natpmp, upnp (port control), sip-alg
    lifetime: float | None = None  # what that protocol granted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StatusRequest(Request):
    op: ClassVar[str] = "status"


@dataclass(frozen=True)
class RegisterRequest(Request):
    """Register again now; what is not given stays as it is (keepalive 0: none)."""

    op: ClassVar[str] = "register"
    transport: str | None = None  # "tcp", "tls" or "udp" (the phone says which it takes)
    certificate: str | None = None  # another phone's: the PBX must refuse it
    keepalive: float | None = None


@dataclass(frozen=True)
class CallRequest(Request):
    """Place a call and answer with the caller's CallReport once it ended."""

    op: ClassVar[str] = "call"
    to: str
    seconds: float = 2.0
    mode: str = "ice"  # the phone says which modes it has
    cancel_after: float | None = None  # seconds: CANCEL the call if not answered by then
    ring: float | None = None  # seconds a natlab callee rings before it answers; None: 0
    answer: str | None = None  # the mode a natlab callee answers in; None: the caller's


@dataclass(frozen=True)
class ReportsRequest(Request):
    op: ClassVar[str] = "reports"


PHONE_REQUESTS: tuple[type[Request], ...] = (
    PingRequest,
    StatusRequest,
    RegisterRequest,
    CallRequest,
    ReportsRequest,
)


@dataclass(frozen=True)
class PhoneStatus(Record):
    """A phone's registration: the answer to status, ping and register."""

    noun: ClassVar[str] = "a phone's status"
    name: str
    registered: bool
    pbx: str | None = None
    transport: str | None = None
    keepalive: float | None = None
    certificate: str | None = None
    since: float | None = None
    attempts: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CallReports(Record):
    noun: ClassVar[str] = "a phone's reports"
    reports: list[CallReport]


@dataclass(frozen=True)
class RegistrationsRequest(Request):
    op: ClassVar[str] = "registrations"


@dataclass(frozen=True)
class CallsRequest(Request):
    op: ClassVar[str] = "calls"


@dataclass(frozen=True)
class CountersRequest(Request):
    op: ClassVar[str] = "counters"


@dataclass(frozen=True)
class RelayRequest(Request):
    """Which phones' media the PBX relays: "all", "remote", "nat", "none" or a list of phones."""

    op: ClassVar[str] = "relay"
    phones: str | list[str]


PBX_REQUESTS: tuple[type[Request], ...] = (
    PingRequest,
    RegistrationsRequest,
    CallsRequest,
    CountersRequest,
    RelayRequest,
)


@dataclass(frozen=True)
class Registration(Record):
    """A phone's registration as the PBX holds it: where it sends that phone's invites."""

    noun: ClassVar[str] = "a registration"
    transport: str
    address: str
    since: float
    expires_in: float | None = None  # a UDP registration's time left; None: the connection's

    def describe(self) -> str:
        left = f", for {self.expires_in:.0f} s more" if self.expires_in is not None else ""
        return f"over {self.transport} from {self.address}{left}"


@dataclass(frozen=True)
class Registrations(Record):
    noun: ClassVar[str] = "the PBX's registrations"
    registrations: dict[str, Registration]


@dataclass(frozen=True)
class Counters(Record):
    noun: ClassVar[str] = "counters"
    counters: dict[str, int]


@dataclass(frozen=True)
class PbxCalls(Record):
    noun: ClassVar[str] = "the PBX's calls"
    calls: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class RelayAnswer(Record):
    noun: ClassVar[str] = "the PBX's relay policy"
    relay: str | list[str]


@dataclass(frozen=True)
class PbxPong(Record):
    noun: ClassVar[str] = "the PBX's ping answer"
    pbx: str


# -- a user program's state, as its supervisor writes it ---------------------------------------


@dataclass(frozen=True)
class ProgramState(Record):
    """A `run:` program's state file beside its log (lab/supervise.py writes, the lab reads).

    running (pid, start), exited (code), killed (signal), failed (error: it never
    started); the lab itself says "unknown" when the supervisor is gone.
    """

    noun: ClassVar[str] = "a program's state file"
    state: Literal["running", "exited", "killed", "failed", "unknown"]
    argv: list[str]
    log_cap: int
    pid: int | None = None
    start: int | None = None
    code: int | None = None
    signal: str | None = None
    error: str | None = None
    log_dropped: int | None = None


# -- a probe's report --------------------------------------------------------------------


@dataclass(frozen=True)
class Lifetime(Record):
    """Bounds on how long an idle UDP binding lives, in seconds."""

    survives: float  # the longest wait after which it still let an answer in (0: none tried)
    expires: float | None  # the shortest after which it did not; None: never seen to


@dataclass(frozen=True)
class ProbeReport(Record):
    """What RFC 5780 discovery saw from inside a node; an axis is None when nothing told."""

    noun: ClassVar[str] = "a probe report"
    server: str
    local: str
    mapped: str
    other: str | None
    mapping: str | None
    filtering: str | None
    hairpin: bool | None
    lifetime: Lifetime | None
    name: str | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def answer(cls: type[R], data: object, who: str) -> R:
    """A process's answer as a cls; one out of shape is natlab's own failure, said as such."""
    try:
        return cls.from_json(data)
    except NatlabError as error:
        raise AnswerError(f"{who} answered something natlab does not read: {error}") from None


class AnswerError(RuntimeError):
    """One of natlab's processes answered out of shape: a bug (exit 3), not the user's."""
