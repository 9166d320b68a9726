"""The lab's clients against stand-in processes on Unix sockets, and events read from a position.

No root and no lab: each stand-in serves the wire protocol the real
process serves (one JSON request line, JSON answer lines) in a thread.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from natlab.core.behaviour import PRESETS
from natlab.core.events import DropReason
from natlab.errors import NatlabError
from natlab.lab.clients import (
    EventPosition,
    PbxClient,
    PhoneClient,
    RouterClient,
    end_position,
    read_events,
)
from natlab.records import AnswerError, Registration, RouterEvent

Answer = Callable[[dict], list[dict]]


@contextmanager
def serving(path: Path, answer: Answer) -> Iterator[list[dict]]:
    """A process on `path` answering each request with answer(request)'s lines; the requests."""
    seen: list[dict] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    stop = threading.Event()

    def run() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            with client, client.makefile("rwb") as stream:
                request = json.loads(stream.readline())
                seen.append(request)
                for line in answer(request):
                    stream.write(json.dumps(line).encode() + b"\n")
                stream.flush()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        server.close()


def router_daemon(request: dict) -> list[dict]:
    op = request["op"]
    if op == "show":
        behaviour = PRESETS["symmetric"].as_json()
        head = {"ok": True, "router": "r1", "clock": 12.5, "mappings_total": 1,
                "behaviour": behaviour, "counters": {"translated_out": 3}}  # fmt: skip
        mapping = {"proto": "udp", "internal": "10.1.0.2:5000", "external": "203.0.113.2:5000",
                   "remote": "203.0.113.4:3478", "permissions": ["203.0.113.4:3478"],
                   "created": 1.0, "age": 11.5, "last_outbound": 1.0, "last_inbound": None,
                   "expires_at": 121.0, "expires_in": 108.5, "tcp_state": None,
                   "detail": "udp ..."}  # fmt: skip
        return [head, mapping, {"end": True}]
    answers = {
        "ping": {"router": "r1", "pid": 42},
        "clock": {"clock": 12.5, "offset": 0.0},
        "flush": {"flushed": 2},
        "set": {"behaviour": request.get("behaviour")},
        "advance": {"clock": 43.5, "offset": 31.0},
    }
    return [{"ok": True, **answers[op]}]


def test_a_router_client_sends_typed_requests_and_reads_typed_answers(tmp_path):
    with serving(tmp_path / "r1.sock", router_daemon) as seen:
        router = RouterClient("r1", tmp_path / "r1.sock", tmp_path / "r1.events.jsonl")
        head, mappings = router.show(limit=5)
        assert (head.router, head.mappings_total, head.counters) == ("r1", 1, {"translated_out": 3})
        assert [m.external for m in mappings] == ["203.0.113.2:5000"]
        assert router.behaviour() == PRESETS["symmetric"]
        assert router.counters() == {"translated_out": 3}
        assert router.flush() == 2
        assert router.set(PRESETS["full-cone"]) == PRESETS["full-cone"]
        assert router.clock().clock == 12.5
        assert router.advance(31).offset == 31.0
        assert router.ping().pid == 42
    assert [request["op"] for request in seen] == [
        "show", "show", "show", "flush", "set", "clock", "advance", "ping"
    ]  # fmt: skip
    assert seen[0] == {"op": "show", "limit": 5} and seen[6] == {"op": "advance", "seconds": 31}
    assert seen[4]["behaviour"] == PRESETS["full-cone"].as_json()


def test_an_answer_out_of_shape_is_natlabs_own_failure_and_a_refusal_the_users(tmp_path):
    def broken(request: dict) -> list[dict]:
        if request["op"] == "flush":
            return [{"ok": False, "error": "ValueError: no"}]
        return [{"ok": True, "flushed": "two"}]

    with serving(tmp_path / "r1.sock", broken):
        router = RouterClient("r1", tmp_path / "r1.sock", tmp_path / "r1.events.jsonl")
        with pytest.raises(NatlabError, match="ValueError: no"):
            router.flush()
        with pytest.raises(AnswerError, match="clock: field required"):
            router.clock()


def test_a_phone_client_calls_registers_and_reads_reports(tmp_path):
    report = {"call": "c1", "caller": "phone-b", "callee": "phone-c", "mode": "ice",
              "role": "caller", "started_at": 1.0, "ended_at": 3.0, "selected_pair": None,
              "checks": [], "ice": "failed", "rtp": {"sent": 0, "received": 0,
              "first_received_at": None}, "peer_rtp": None, "verdict": "no media",
              "error": None}  # fmt: skip
    status = {"name": "phone-b", "registered": True, "transport": "udp", "attempts": 1}

    def phone(request: dict) -> list[dict]:
        if request["op"] == "call":
            return [{"ok": True, **report}]
        if request["op"] == "reports":
            return [{"ok": True, "reports": [report]}]
        return [{"ok": True, **status}]

    with serving(tmp_path / "phone-b.sock", phone) as seen:
        client = PhoneClient("phone-b", tmp_path / "phone-b.sock")
        called = client.call("phone-c", 1.0, "srflx")
        assert (called.verdict, called.ice, called.peer_rtp) == ("no media", "failed", None)
        assert client.reports() == [called]
        assert client.register("udp", keepalive=0).transport == "udp"
        assert client.status().registered
    assert seen[0] == {"op": "call", "to": "phone-c", "seconds": 1.0, "mode": "srflx"}
    assert seen[2] == {"op": "register", "transport": "udp", "keepalive": 0}


def test_a_pbx_client_reads_registrations_and_counters(tmp_path):
    def pbx(request: dict) -> list[dict]:
        if request["op"] == "registrations":
            seen = {"transport": "udp", "address": "203.0.113.2:5060", "since": 1.0,
                    "expires_in": 57.2}  # fmt: skip
            return [{"ok": True, "registrations": {"phone-b": seen}}]
        return [{"ok": True, "counters": {"datagrams": 4}}]

    with serving(tmp_path / "pbx.sock", pbx):
        client = PbxClient("pbx", tmp_path / "pbx.sock")
        assert client.registrations() == {
            "phone-b": Registration("udp", "203.0.113.2:5060", 1.0, 57.2)
        }
        assert client.counters() == {"datagrams": 4}


# -- a router's events, read on from a position -------------------------------------------


def flushed(n: int) -> RouterEvent:
    return RouterEvent(at=float(n), router="r1", kind="flushed", count=n, detail="x" * 80)


class Log:
    """A router's events file as the daemon writes it: EventLog, rotating at a small size."""

    def __init__(self, path: Path, max_bytes: int = 1024, files: int = 3) -> None:
        from natlab.router.eventlog import EventLog

        self.path = path
        self.log = EventLog(path, max_bytes=max_bytes, files=files, warn=lambda text: None)
        self.written = 0

    def write(self, count: int) -> list[RouterEvent]:
        events = [flushed(self.written + n) for n in range(count)]
        for event in events:
            self.log.write(json.dumps(event.to_json()))
            self.log.flush()  # as the daemon does every turn; each flush may rotate
        self.written += count
        return events


def test_events_are_read_on_from_where_the_last_read_stopped_across_rotations(tmp_path):
    log = Log(tmp_path / "r1.events.jsonl")
    first = log.write(5)
    batch = read_events(log.path, EventPosition())
    assert batch.events == first and not batch.lost
    later = log.write(12)  # rotates: the file read last is now r1.events.jsonl.1
    assert (tmp_path / "r1.events.jsonl.1").exists()
    again = read_events(log.path, batch.position)
    assert again.events == later and not again.lost
    assert read_events(log.path, again.position).events == []


def test_a_mark_survives_the_oldest_file_being_dropped(tmp_path):
    """The runner's marks counted lines, and shifted when rotation dropped the oldest file."""
    log = Log(tmp_path / "r1.events.jsonl", max_bytes=1024, files=3)
    log.write(20)  # three files, the oldest about to go
    mark = end_position(log.path)
    after = log.write(6)  # rotates once more: the oldest file and its events are gone
    assert read_events(log.path, mark).events == after
    kept = read_events(log.path, EventPosition()).events
    assert kept[0].count > 0  # the oldest really went: a count of lines would have shifted


def test_events_rotated_away_before_they_were_read_are_said_to_be_lost(tmp_path):
    log = Log(tmp_path / "r1.events.jsonl", max_bytes=1024, files=2)
    log.write(2)
    mark = end_position(log.path)
    log.write(40)  # the marked file went long ago
    batch = read_events(log.path, mark)
    assert batch.lost and batch.events == read_events(log.path, EventPosition()).events


def test_a_line_being_written_is_read_next_time(tmp_path):
    path = tmp_path / "r1.events.jsonl"
    whole = json.dumps(flushed(1).to_json()) + "\n"
    path.write_text(whole + '{"v": 1, "at": 2')
    batch = read_events(path, EventPosition())
    assert batch.events == [flushed(1)] and batch.position.offset == len(whole)
    assert end_position(path) == batch.position
    with path.open("a") as file:
        file.write(', "router": "r1", "kind": "drop", "reason": "no-route"}\n')
    (late,) = read_events(path, batch.position).events
    assert late.reason is DropReason.NO_ROUTE


def test_nothing_written_yet_is_read_from_the_start_later(tmp_path):
    path = tmp_path / "r1.events.jsonl"
    mark = end_position(path)
    assert mark == EventPosition()
    Log(path).write(2)
    assert len(read_events(path, mark).events) == 2
