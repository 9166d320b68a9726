"""The router daemon's control socket: one JSON request, one JSON answer, per connection.

A Unix socket in the lab's state directory, so `natlab nat ...` and
`natlab clock advance` reach a daemon from the host namespace. Requests:

- {"op": "show"}                      mapping table, counters, behaviour, clock
- {"op": "flush"}                     forget every dynamic mapping
- {"op": "set", "behaviour": {...}}   new behaviour; dynamic mappings are flushed
- {"op": "advance", "seconds": S}     move the daemon's clock forward
- {"op": "ping"}                      is it alive and ready?

Answers carry "ok": true, or "ok": false and an "error" text.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from natlab.errors import NatlabError

TIMEOUT = 5.0
MAX_MESSAGE = 16 << 20


def call(path: Path, request: dict, timeout: float = TIMEOUT) -> dict:
    """Send request to the daemon listening on path and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = read_line(sock)
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
            raise NatlabError(
                f"the router daemon at {path} does not answer ({exc.__class__.__name__})",
                fix="check 'natlab status' and the router's log next to its socket",
            ) from None
    reply = json.loads(answer)
    if not reply.get("ok"):
        raise NatlabError(reply.get("error", "the router daemon refused the request"))
    return reply


def read_line(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_MESSAGE:
            break
    return b"".join(chunks)
