"""The phones' and the PBX's Unix control sockets: one JSON request line, one JSON answer line.

Only the lab talks here (natlab.lab.clients); what travels between phones
and the PBX is SIP (sip_transport.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from natlab import control_socket

MAX_LINE = 1 << 20  # a generous bound on one request or answer line

Handler = Callable[[dict], Awaitable[dict]]


def _encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes) -> dict:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"not a JSON object: {line[:60]!r}")
    return message


async def serve_control(path: Path, handle: Handler) -> asyncio.Server:
    """A Unix socket answering each connection's one JSON request with one JSON answer.

    The answer is handle(request) with "ok": true, or "ok": false and the error.
    """

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = _decode(await reader.readline())
            answer = {"ok": True, **await handle(request)}
        except Exception as error:  # an answer, not a dead endpoint, for any bad request
            answer = {"ok": False, "error": f"{error.__class__.__name__}: {error}"}
        with contextlib.suppress(OSError):  # the client went away; nothing to tell
            writer.write(_encode(answer))
            await writer.drain()
            writer.close()

    path.unlink(missing_ok=True)
    return await asyncio.start_unix_server(one, str(path), limit=MAX_LINE)


def ask(path: Path, request: dict, timeout: float = 5.0) -> dict:
    """Send one request to an endpoint's control socket and return its answer.

    A missing or silent endpoint, and an answer with "ok": false, are NatlabErrors.
    """
    return control_socket.ask(path, request, who="the endpoint", timeout=timeout)
