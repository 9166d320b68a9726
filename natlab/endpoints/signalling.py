"""Signalling between phones and the PBX, and the endpoints' control sockets: JSON lines.

One JSON object a line, both on the phone-PBX TCP/TLS connections and on
the Unix control sockets (one request line, one answer line); over UDP, one
message a datagram (DatagramInbox), as SIP over UDP does. Plain JSON
rather than SIP keeps the lab's lessons about NAT, not about SIP parsing;
what travels is what SIP carries: register, invite with an offer, answer,
bye, and the media addresses (the "SDP", here a small JSON object).

Phone -> PBX:  register {name}, keepalive, invite {call, to, mode, seconds, offer},
               ringing {call} (an invite arrived), answer {call, answer},
               bye {call, rtp, selected}, stats {call, rtp, selected}
PBX -> phone:  registered {expires}, keepalive, invite {call, from, mode, seconds, offer},
               ringing, answer, bye, stats (forwarded), error {reason, call?}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

from natlab import control_socket

MAX_LINE = 1 << 20  # a generous bound: an offer is well under 2 KiB
MODES = ("ice", "turn", "host", "srflx", "relay")
TRANSPORTS = ("tcp", "tls", "udp")  # how a phone registers with the PBX
NOT_REGISTERED = "not registered"  # the PBX's reason when it does not know the sender
MAX_KEEPALIVE = 3600.0  # seconds: the longest keepalive interval a phone takes

_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "register": {"name": str},
    "registered": {"expires": int},
    "keepalive": {},
    "invite": {"call": str, "offer": dict},
    "ringing": {"call": str},
    "answer": {"call": str, "answer": dict},
    "bye": {"call": str},
    "stats": {"call": str, "rtp": dict},
    "error": {"reason": str},
}


class SignallingError(ValueError):
    """A line that is not a message this protocol knows.

    `kind` is the message type the line claimed, if it got that far: an
    "error" that is malformed is still an error, and never answered.
    """

    def __init__(self, reason: str, kind: object = None) -> None:
        super().__init__(reason)
        self.kind = kind


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    """One line to a JSON object; anything else is a SignallingError."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SignallingError(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise SignallingError(f"not a JSON object: {line[:60]!r}")
    return message


def parse(line: bytes) -> dict:
    """A signalling message, with its type known and its required fields of the right type."""
    message = decode(line)
    kind = message.get("type")
    if kind not in _FIELDS:
        raise SignallingError(f"unknown message type {kind!r}")
    for name, kind_of in _FIELDS[kind].items():
        value = message.get(name)
        # bool is an int to Python, never a count or an expiry here
        if not isinstance(value, kind_of) or isinstance(value, bool):
            raise SignallingError(f"{kind}: field {name!r} missing or not {_names(kind_of)}", kind)
    if kind == "invite" and message.get("mode", "ice") not in MODES:
        raise SignallingError(f"invite: mode {message.get('mode')!r} is not one of {MODES}", kind)
    return message


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


Endpoint = tuple[str, int]


def format_endpoint(endpoint: Endpoint) -> str:
    return f"{endpoint[0]}:{endpoint[1]}"


def parse_endpoint(text: str) -> Endpoint:
    """'203.0.113.1:5060' to ('203.0.113.1', 5060); ValueError if it is not IPv4:port."""
    host, _, port = text.rpartition(":")
    ip_address(host)
    if not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port)


@dataclass(frozen=True)
class Sdp:
    """What one side offers for media: ICE credentials and candidates, or a plain address.

    rtp: where to send RTP without ICE; relay: the PBX's relay port for this
    side, which replaces everything else when the PBX relays the call.
    """

    ufrag: str = ""
    pwd: str = ""
    candidates: tuple[str, ...] = ()
    rtp: Endpoint | None = None
    relay: Endpoint | None = None

    def as_json(self) -> dict:
        out: dict[str, Any] = {
            "ufrag": self.ufrag,
            "pwd": self.pwd,
            "candidates": list(self.candidates),
        }
        if self.rtp is not None:
            out["rtp"] = list(self.rtp)
        if self.relay is not None:
            out["relay"] = list(self.relay)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Sdp:
        """Read an offer or answer; a field of the wrong shape is a SignallingError."""
        if not isinstance(data, dict):
            raise SignallingError("sdp: not a JSON object")
        ufrag, pwd = data.get("ufrag", ""), data.get("pwd", "")
        candidates = data.get("candidates", [])
        if not (isinstance(ufrag, str) and isinstance(pwd, str)):
            raise SignallingError("sdp: ufrag and pwd must be strings")
        if not (isinstance(candidates, list) and all(isinstance(c, str) for c in candidates)):
            raise SignallingError("sdp: candidates must be a list of strings")
        return cls(
            ufrag, pwd, tuple(candidates), _sdp_endpoint(data, "rtp"), _sdp_endpoint(data, "relay")
        )

    def with_relay(self, relay: Endpoint) -> Sdp:
        return Sdp(self.ufrag, self.pwd, self.candidates, self.rtp, relay)


def _sdp_endpoint(data: dict, name: str) -> Endpoint | None:
    value = data.get(name)
    if value is None:
        return None
    try:
        host, port = value
        ip_address(host)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 0xFFFF:
            raise ValueError(port)
    except (TypeError, ValueError):
        raise SignallingError(f"sdp: {name} must be [IPv4 address, port]: {value!r}") from None
    return host, port


# -- asyncio streams ----------------------------------------------------------------------------


async def read_message(reader: asyncio.StreamReader) -> dict | None:
    """The next signalling message, or None at the end of the stream."""
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise SignallingError("the stream ended in the middle of a line")
    return parse(line)


def write_message(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(encode(message))


Received = tuple[dict | Exception | None, Endpoint | None]


class DatagramInbox(asyncio.DatagramProtocol):
    """Signalling over UDP: each datagram one message, queued with its source as it arrives.

    The queue holds (message, source); a datagram that is not a message is
    queued as its SignallingError, for the reader to answer; an ICMP error
    on the socket as that OSError (source None); the socket's end as None.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            message: dict | Exception = parse(data)
        except SignallingError as error:
            message = error
        self.queue.put_nowait((message, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait((exc, None))

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait((None, None))

    def send(self, message: dict, to: Endpoint | None = None) -> None:
        """One message, one datagram; `to` None on a socket connected to its peer."""
        if self.transport is not None:
            self.transport.sendto(encode(message), to)


Handler = Callable[[dict], Awaitable[dict]]


async def serve_control(path: Path, handle: Handler) -> asyncio.Server:
    """A Unix socket answering each connection's one JSON request with one JSON answer.

    The answer is handle(request) with "ok": true, or "ok": false and the error.
    """

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = decode(await reader.readline())
            answer = {"ok": True, **await handle(request)}
        except Exception as error:  # an answer, not a dead endpoint, for any bad request
            answer = {"ok": False, "error": f"{error.__class__.__name__}: {error}"}
        with contextlib.suppress(OSError):  # the client went away; nothing to tell
            writer.write(encode(answer))
            await writer.drain()
            writer.close()

    path.unlink(missing_ok=True)
    return await asyncio.start_unix_server(one, str(path), limit=MAX_LINE)


def ask(path: Path, request: dict, timeout: float = 5.0) -> dict:
    """Send one request to an endpoint's control socket and return its answer.

    A missing or silent endpoint, and an answer with "ok": false, are NatlabErrors.
    """
    return control_socket.ask(path, request, who="the endpoint", timeout=timeout)
