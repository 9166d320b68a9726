"""Asking one of natlab's own processes: a JSON line out, a JSON line back, per connection.

Router daemons (natlab.router.control) and lab endpoints (natlab.endpoints)
each serve a Unix socket in the lab's state directory, so commands in the
host namespace reach them inside their namespaces. This is the client
side both share, and the line reader the daemon's server uses.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from natlab.errors import NatlabError

TIMEOUT = 5.0
MAX_MESSAGE = 16 << 20  # a router's full mapping table fits


def ask(path: Path, request: dict, *, who: str, timeout: float = TIMEOUT) -> dict:
    """Send request to the process listening on path and return its answer.

    `who` names that process in errors ("the router daemon"). No answer, and
    an answer with "ok": false, are NatlabErrors.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            answer = read_line(sock)
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as error:
            raise NatlabError(
                f"{who} at {path} does not answer ({error.__class__.__name__})",
                fix="check 'natlab status', and the log next to the socket",
            ) from None
    try:
        reply = json.loads(answer)
    except ValueError:
        raise NatlabError(f"{who} at {path} answered something that is not JSON") from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise NatlabError(f"{path.stem}: {error or 'the request was refused'}")
    return reply


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
