"""The router daemon's control socket: one JSON request, one JSON answer, per connection.

A Unix socket in the lab's state directory, so `natlab nat ...` and
`natlab clock advance` reach a daemon from the host namespace. Requests:

- {"op": "show"}                      mapping table, counters, behaviour, clock
- {"op": "flush"}                     forget every dynamic mapping
- {"op": "set", "behaviour": {...}}   new behaviour; dynamic mappings are flushed
- {"op": "advance", "seconds": S}     move the daemon's clock forward
- {"op": "clock"}                     its clock, and the offset `advance` added to monotonic time
- {"op": "ping"}                      is it alive and ready?

Answers carry "ok": true, or "ok": false and an "error" text.
"""

from __future__ import annotations

from pathlib import Path

from natlab.control_socket import TIMEOUT, ask


def call(path: Path, request: dict, timeout: float = TIMEOUT) -> dict:
    """Send request to the daemon listening on path and return its answer."""
    return ask(path, request, who="the router daemon", timeout=timeout)
