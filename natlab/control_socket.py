"""Asking one of natlab's own processes: a JSON line out, JSON lines back, per connection.

Router daemons (natlab.router.control) and lab endpoints (natlab.endpoints)
each serve a Unix socket in the lab's state directory, so commands in the
host namespace reach them inside their namespaces. This is the client
side both share, and the line reader. A server's socket file exists from
bind(), before it listens: whoever waits for one to serve asks it (answers).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from natlab.errors import NatlabError

TIMEOUT = 5.0
MAX_MESSAGE = 16 << 20  # one answer line; a table too big for it comes as lines (ask_lines)
MAX_LINE = 1 << 20  # one line of a many-line answer
T = TypeVar("T")


def ask(path: Path, request: dict, *, who: str, timeout: float = TIMEOUT) -> dict:
    """Send request to the process listening on path and return its answer.

    `who` names that process in errors ("the router daemon"). No answer, and
    an answer with "ok": false, are NatlabErrors.
    """
    with _connected(path, request, who, timeout) as sock:
        answer = _received(path, who, lambda: read_line(sock))
    return _accepted(path, _decoded(path, who, answer))


def ask_lines(path: Path, request: dict, *, who: str, timeout: float = TIMEOUT) -> Iterator[dict]:
    """Send request and yield the answer's lines, one JSON object each, as they come.

    The first is the answer proper ("ok"); the last is {"end": true}, which is
    not yielded. timeout bounds each wait for data, not the whole answer, so
    a long table streams as long as it keeps coming.
    """
    with _connected(path, request, who, timeout) as sock:
        lines = sock.makefile("rb")
        first = True
        while True:
            line = _received(path, who, lambda: lines.readline(MAX_LINE + 1))
            if not line.endswith(b"\n"):
                problem = (
                    "cut its answer short" if len(line) <= MAX_LINE else "sent a line too long"
                )
                raise NatlabError(f"{who} at {path} {problem}")
            item = _decoded(path, who, line)
            if not isinstance(item, dict):
                raise NatlabError(f"{who} at {path} answered a line that is not a JSON object")
            if first:
                _accepted(path, item)
                first = False
            elif item.get("end") is True:
                return
            yield item


def answers(path: Path, request: dict, timeout: float = 1.0) -> bool:
    """Does the process at path answer request (a ping: records.PingRequest) with "ok"?"""
    try:
        ask(path, request, who="it", timeout=timeout)
    except NatlabError:
        return False
    return True


def read_line(sock: socket.socket) -> bytes:
    """Everything up to the first newline (or the peer closing), at most about MAX_MESSAGE."""
    chunks = []
    size = 0
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE:
            break
    return b"".join(chunks)


@contextmanager
def _connected(path: Path, request: dict, who: str, timeout: float) -> Iterator[socket.socket]:
    """A socket connected to path that has sent request; failing to is a NatlabError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        data = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        _received(path, who, lambda: (sock.connect(str(path)), sock.sendall(data)))
        yield sock


def _received(path: Path, who: str, receive: Callable[[], T]) -> T:
    try:
        return receive()
    except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, TimeoutError) as error:
        raise NatlabError(
            f"{who} at {path} does not answer ({error.__class__.__name__})",
            fix="check 'natlab status', and the log next to the socket",
        ) from None


def _decoded(path: Path, who: str, line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        raise NatlabError(f"{who} at {path} answered something that is not JSON") from None


def _accepted(path: Path, reply: object) -> dict:
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise NatlabError(f"{path.stem}: {error or 'the request was refused'}")
    return reply
