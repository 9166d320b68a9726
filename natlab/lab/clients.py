"""Clients of a lab's processes: the only code above them that speaks their wire protocol.

A router daemon, a phone and the PBX each serve a Unix socket in the lab's
state directory (natlab.control_socket is the transport). RouterClient,
PhoneClient and PbxClient send them typed requests and hand back typed
answers (natlab.records); Lab.router(), Lab.phone() and Lab.pbx() make them.

A router's events are read from its events file incrementally: an
EventPosition is the file last read (by inode, so a rotation that renames
it does not lose the place) and how many bytes of it were read. Reading on
from a position returns only what was written since, across rotations, and
says when the daemon rotated away events that were never read.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from natlab.control_socket import TIMEOUT, ask, ask_lines
from natlab.core.behaviour import Behaviour
from natlab.core.impair import LinkImpairment
from natlab.errors import NatlabError
from natlab.records import (
    AdvanceRequest,
    BehaviourAnswer,
    CallReport,
    CallReports,
    CallRequest,
    CallsRequest,
    ClockRequest,
    Counters,
    CountersRequest,
    FlushAnswer,
    FlushRequest,
    LinksAnswer,
    LinkSetRequest,
    LinkShowRequest,
    MappingRecord,
    PbxCalls,
    PbxPong,
    PhoneStatus,
    PingRequest,
    Record,
    RegisterRequest,
    Registration,
    Registrations,
    RegistrationsRequest,
    RelayAnswer,
    RelayRequest,
    ReportsRequest,
    Request,
    RouterClock,
    RouterEvent,
    RouterPong,
    SetRequest,
    ShowHead,
    ShowRequest,
    StatusRequest,
    answer,
)
from natlab.router.eventlog import open_rotated

ROUTER = "the router daemon"
ENDPOINT = "the endpoint"
REGISTER_TIMEOUT = 15.0  # a phone answers a register request within its own 5 s
TAIL = 1 << 16  # bytes read back from a file's end to find its last whole line
HEAD = 256  # bytes that tell one events file from another that got its inode
CALL_SLACK = 30.0  # seconds a call may take beyond its length: set-up, ICE, the final counts
A = TypeVar("A", bound=Record)


def _asked(path: Path, request: Request, kind: type[A], who: str, timeout: float) -> A:
    return answer(kind, ask(path, request.to_json(), who=who, timeout=timeout), f"{who} at {path}")


# -- router daemons --------------------------------------------------------------------


@dataclass(frozen=True)
class EventPosition:
    """Where reading a router's events file stopped: a file and how many bytes of it were read.

    The file is known by its inode and its first bytes: a rotation renames it
    (same inode), and a file created after it was deleted may get its inode.
    """

    inode: int | None = None  # None: nothing read yet, start from the oldest file kept
    offset: int = 0
    head: bytes = b""  # the file's first line (up to HEAD bytes); b"": not read yet


@dataclass(frozen=True)
class EventBatch:
    """Events read from a position on, and the position after them."""

    events: list[RouterEvent]
    position: EventPosition
    lost: bool = False  # the daemon rotated away events between the two positions


class RouterClient:
    """One router's NAT daemon: its control socket and its events file."""

    def __init__(self, name: str, socket: Path, events: Path, timeout: float = TIMEOUT) -> None:
        self.name = name
        self.socket = socket
        self.events_file = events
        self.timeout = timeout

    def _ask(self, request: Request, kind: type[A]) -> A:
        return _asked(self.socket, request, kind, ROUTER, self.timeout)

    def ping(self) -> RouterPong:
        """Is it alive? Answering, it writes out the events it holds."""
        return self._ask(PingRequest(), RouterPong)

    def show(self, limit: int | None = None) -> tuple[ShowHead, Iterator[MappingRecord]]:
        """Behaviour, counters and clock, then the mappings (at most `limit`) as they stream."""
        request = ShowRequest(limit).to_json()
        lines = ask_lines(self.socket, request, who=ROUTER, timeout=self.timeout)
        where = f"{ROUTER} at {self.socket}"
        head = answer(ShowHead, next(lines), where)
        return head, (answer(MappingRecord, line, where) for line in lines)

    def counters(self) -> dict[str, int]:
        return self.show(limit=0)[0].counters

    def behaviour(self) -> Behaviour:
        return Behaviour(**self.show(limit=0)[0].behaviour)

    def flush(self) -> int:
        """Forget every dynamic mapping; how many there were."""
        return self._ask(FlushRequest(), FlushAnswer).flushed

    def set(self, behaviour: Behaviour) -> Behaviour:
        """A new behaviour, live (dynamic mappings are flushed); the one now in force."""
        done = self._ask(SetRequest(behaviour.as_json()), BehaviourAnswer)
        return Behaviour(**done.behaviour)

    def clock(self) -> RouterClock:
        return self._ask(ClockRequest(), RouterClock)

    def advance(self, seconds: float) -> RouterClock:
        """Move its clock forward, as if that much time had passed."""
        return self._ask(AdvanceRequest(seconds), RouterClock)

    def link_set(self, port: str, impairment: LinkImpairment) -> LinksAnswer:
        """Replace the impairment of one interface (wan, lan or its name), live."""
        return self._ask(LinkSetRequest(port, impairment.to_json()), LinksAnswer)

    def links(self) -> LinksAnswer:
        """Every interface's impairment and what it has done."""
        return self._ask(LinkShowRequest(), LinksAnswer)

    def mark(self) -> EventPosition:
        """The end of what it has written so far, to read on from later (events(since=...))."""
        with contextlib.suppress(NatlabError):
            self.ping()
        return end_position(self.events_file)

    def events(self, since: EventPosition | None = None) -> EventBatch:
        """The events written since `since` (all it keeps, without), oldest first.

        The daemon is asked first, so that it writes out what it holds; a
        dead daemon's events are still read.
        """
        with contextlib.suppress(NatlabError):
            self.ping()
        return read_events(self.events_file, since or EventPosition())


def read_events(path: Path, since: EventPosition) -> EventBatch:
    """A router's events file (and the files it rotated to) read on from `since`.

    The files are opened as eventlog.open_rotated opens them, so a rotation in
    between only renames a file already open. Only whole lines count: a line
    being written is read next time, from where this stops.
    """
    opened = open_rotated(path)
    try:
        start, lost = 0, False
        if since.inode is not None:
            found = [
                index
                for index, (handle, status) in enumerate(opened)
                if status.st_ino == since.inode
                and status.st_size >= since.offset
                and since.head in (b"", _head(handle))
            ]
            if found:
                start = found[0]
                opened[start][0].seek(since.offset)
            else:
                lost = True  # rotated out of reach (its inode may have gone to a new file)
        events: list[RouterEvent] = []
        position = since
        for handle, status in opened[start:]:
            offset = handle.tell()
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # being written: read next time
                offset += len(line)
                events.append(_event(line, path))
            position = EventPosition(status.st_ino, offset, _head(handle))
        return EventBatch(events, position, lost)
    finally:
        for handle, _ in opened:
            handle.close()


def end_position(path: Path) -> EventPosition:
    """The position after the last whole line of the current events file, without reading it."""
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            start = max(0, status.st_size - TAIL)
            handle.seek(start)
            tail = handle.read(status.st_size - start)
            head = _head(handle)
    except FileNotFoundError:
        return EventPosition()  # nothing written yet: later, read from the oldest file kept
    end = tail.rfind(b"\n")
    return EventPosition(status.st_ino, start + end + 1 if end >= 0 else start, head)


def _head(handle: IO[bytes]) -> bytes:
    """The file's first line (its first HEAD bytes at most), which never changes once written;
    b"" while it is not whole. The handle's position stays as it was."""
    data = os.pread(handle.fileno(), HEAD, 0)
    end = data.find(b"\n")
    if end >= 0:
        return data[: end + 1]
    return data if len(data) == HEAD else b""


def _event(line: bytes, path: Path) -> RouterEvent:
    try:
        data = json.loads(line)
    except ValueError:
        raise NatlabError("a line that is not JSON", file=str(path)) from None
    try:
        return RouterEvent.from_json(data)
    except NatlabError as error:
        raise NatlabError(error.problem, file=str(path), fix=error.fix) from None


# -- phones and the PBX ----------------------------------------------------------------


class PhoneClient:
    """A lab phone (natlab.endpoints.phone)."""

    def __init__(self, name: str, socket: Path, timeout: float = TIMEOUT) -> None:
        self.name = name
        self.socket = socket
        self.timeout = timeout

    def _ask(self, request: Request, kind: type[A], timeout: float | None = None) -> A:
        return _asked(self.socket, request, kind, ENDPOINT, timeout or self.timeout)

    def status(self) -> PhoneStatus:
        return self._ask(StatusRequest(), PhoneStatus)

    def register(
        self,
        transport: str | None = None,
        certificate: str | None = None,
        keepalive: float | None = None,
    ) -> PhoneStatus:
        """Register again now; the answer comes once it is known how that went."""
        request = RegisterRequest(transport, certificate, keepalive)  # type: ignore[arg-type]
        return self._ask(request, PhoneStatus, REGISTER_TIMEOUT)

    def call(
        self,
        to: str,
        seconds: float = 2.0,
        mode: str = "ice",
        cancel_after: float | None = None,
        ring: float | None = None,
        answer: str | None = None,
    ) -> CallReport:
        """Place a call, wait for its end: the caller's report of it.

        cancel_after: hang up (CANCEL) if the callee has not answered by then;
        ring: how long a natlab callee rings before it answers;
        answer: the mode a natlab callee answers in (a phone without ICE: "host", "srflx").
        """
        request = CallRequest(to, seconds, mode, cancel_after, ring, answer)  # type: ignore[arg-type]
        return self._ask(request, CallReport, seconds + (ring or 0) + CALL_SLACK)

    def reports(self) -> list[CallReport]:
        """Every call this phone took part in (the last ones it keeps), as caller or callee."""
        return self._ask(ReportsRequest(), CallReports).reports


class PbxClient:
    """The lab's PBX (natlab.endpoints.pbx)."""

    def __init__(self, name: str, socket: Path, timeout: float = TIMEOUT) -> None:
        self.name = name
        self.socket = socket
        self.timeout = timeout

    def _ask(self, request: Request, kind: type[A]) -> A:
        return _asked(self.socket, request, kind, ENDPOINT, self.timeout)

    def ping(self) -> PbxPong:
        return self._ask(PingRequest(), PbxPong)

    def registrations(self) -> dict[str, Registration]:
        """Each registered phone's registration, by phone."""
        return self._ask(RegistrationsRequest(), Registrations).registrations

    def counters(self) -> dict[str, int]:
        return self._ask(CountersRequest(), Counters).counters

    def calls(self) -> dict[str, dict]:
        return self._ask(CallsRequest(), PbxCalls).calls

    def relay(self, phones: str | list[str]) -> str | list[str]:
        """Which phones' media it relays from now on: "all", "remote", "nat", "none" or a list."""
        return self._ask(RelayRequest(phones), RelayAnswer).relay
