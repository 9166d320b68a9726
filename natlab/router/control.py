"""The router daemon's control socket: one JSON request per connection, JSON lines back.

A Unix socket in the lab's state directory, so `natlab nat ...` and
`natlab clock advance` reach a daemon from the host namespace. Requests:

- {"op": "show", "limit": N}          behaviour, counters, clock, then the mappings (at most N)
- {"op": "flush"}                     forget every dynamic mapping
- {"op": "set", "behaviour": {...}}   new behaviour; dynamic mappings are flushed
- {"op": "advance", "seconds": S}     move the daemon's clock forward (0 <= S <= 30 days)
- {"op": "clock"}                     its clock, and the offset `advance` added to monotonic time
- {"op": "ping"}                      is it alive and ready?

Answers carry "ok": true, or "ok": false and an "error" text, on one line.
`show` goes on with one line per mapping and ends with {"end": true}, so
a table of any size streams (the client holds one line at a time) and the
daemon writes it a slice at a time between packets (Connection).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

WHO = "the router daemon"
MAX_REQUEST = 1 << 16  # bytes of one request line
END = b'{"end":true}\n'


def check_limit(limit: object) -> int | None:
    """How many mappings `show` sends: None (all) or a whole number, else ValueError."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit is a number of mappings, 0 or more, not {limit!r}")
    return limit


def encode(answer: dict) -> bytes:
    """One answer line; never NaN or Infinity, which are not JSON."""
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class Connection:
    """One control client, served without ever waiting for it.

    The daemon's loop calls receive() when the socket is readable and send()
    when it is writable; each does what the socket allows right now, so a
    client that sends half a request or reads slowly holds up nobody. The
    answer is an iterator of byte chunks, pulled one at a time only when the
    previous one is out, which bounds both memory and the work per call.
    """

    def __init__(self, sock: socket.socket, now: float) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.request = bytearray()
        self.answer: Iterator[bytes] | None = None
        self.out = b""
        self.active = now  # when it last made progress

    def receive(self, now: float) -> dict | str | None:
        """The request once complete (a str says what is wrong with it); None: not yet."""
        try:
            data = self.sock.recv(MAX_REQUEST)
        except BlockingIOError:
            return None
        except OSError as error:
            return f"the request could not be read: {error}"
        self.active = now
        self.request += data
        line, newline, _ = self.request.partition(b"\n")
        if not newline:
            if not data:
                return "the request ended before its newline"
            if len(self.request) > MAX_REQUEST:
                return f"a request is at most {MAX_REQUEST} bytes"
            return None
        try:
            request = json.loads(line)
        except ValueError:
            return "the request is not JSON"
        return request if isinstance(request, dict) else "the request is not a JSON object"

    def reply(self, answer: Iterator[bytes]) -> None:
        self.answer = answer

    def send(self, now: float) -> bool:
        """Send what the socket takes now, pulling at most one chunk; True once all is out."""
        if not self.out:
            assert self.answer is not None
            self.out = next(self.answer, b"")
            if not self.out:
                return True
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return False
        except OSError:
            return True  # the client went away; nothing to tell
        self.active = now
        self.out = self.out[sent:]
        return False

    def close(self) -> None:
        self.sock.close()
