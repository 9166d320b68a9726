"""SIP on the wire between phones and the PBX: UDP datagrams, TCP and TLS streams.

Over UDP each datagram is one message (RFC 3261 18.1.1). On a stream,
messages are framed by their Content-Length (natlab.sip.message.split_stream),
and the keepalives of RFC 5626 3.5.1 travel between them: a double CRLF
("ping") that the other end answers with a single CRLF ("pong").

What arrives is parsed here with the strict codec of natlab.sip; what is not
SIP is handed on as Garbled, with the reason, so that the PBX can answer 400 or drop it,
and never crashes a reader (Garbled). Every buffer is bounded by the codec's
MAX_MESSAGE_BYTES.

StreamListener serves the connections others open, for the PBX and the
phones alike: at most MAX_CONNECTIONS at once (one more is closed at once),
each closed after IDLE_TIMEOUT seconds without a byte, or when its framing
is lost; a TLS peer must finish its handshake in HANDSHAKE_TIMEOUT seconds,
and its certificate's CN goes with every arrival (StreamFlow.certificate).
What arrives on a connection is answered on that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import cast

from natlab.endpoints import tls
from natlab.sip import message as sip
from natlab.sip.errors import SipError
from natlab.sip.message import SipMessage

TRANSPORTS = ("tcp", "tls", "udp")  # how a phone registers with the PBX
MAX_KEEPALIVE = 3600.0  # seconds: the longest keepalive interval a phone takes
PING = b"\r\n\r\n"  # RFC 5626 3.5.1: a client's keepalive on a stream...
PONG = b"\r\n"  # ...and the server's answer
READ_CHUNK = 1 << 16
MAX_CONNECTIONS = 1024  # accepted connections served at once
IDLE_TIMEOUT = 60.0  # seconds an accepted connection may stay silent
HANDSHAKE_TIMEOUT = 5.0  # seconds a TLS peer has to finish its handshake

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
class Keepalive:
    """A ping (a CRLF pair) or a pong (one CRLF) between messages."""

    ping: bool


@dataclass(frozen=True)
class Garbled:
    """Bytes that are not SIP natlab accepts: what came (bounded by the codec) and why not."""

    data: bytes
    reason: str


Arrival = SipMessage | Garbled | Keepalive
"""What a reader hands on: a message, what was not one (and why), or a keepalive."""


def parse_datagram(data: bytes) -> Arrival:
    """One UDP datagram: a message, or its SipError; nothing but CRLFs is a keepalive."""
    if data and not data.strip(b"\r\n"):
        return Keepalive(ping=len(data) >= len(PING))
    try:
        return sip.parse(data)
    except SipError as error:
        return Garbled(data, error.reason)


class StreamFramer:
    """Cuts a TCP or TLS byte stream into messages and keepalives, with a bounded buffer.

    The PBX's framer (server=True) reads double-CRLF pings, waiting for a ping
    cut in two; a phone's reads each CRLF as a pong.
    """

    def __init__(self, server: bool) -> None:
        self.server = server
        self.buffer = b""
        self.broken = False  # a frame could not be cut: the stream cannot go on

    def feed(self, data: bytes) -> list[Arrival]:
        """What the new bytes completed; a Garbled frame ends the stream (its framing is lost)."""
        self.buffer += data
        found: list[Arrival] = []
        while self.buffer:
            if self.server and self.buffer.startswith(PING):
                found.append(Keepalive(ping=True))
                self.buffer = self.buffer[len(PING) :]
                continue
            if self.server and PING.startswith(self.buffer):
                break  # the start of a ping: wait for the rest
            if self.buffer.startswith(PONG):  # a pong; on the PBX's side, a stray CRLF
                if not self.server:
                    found.append(Keepalive(ping=False))
                self.buffer = self.buffer[len(PONG) :]
                continue
            if self.buffer == b"\r":
                break  # half a CRLF: wait for the rest
            try:
                cut = sip.split_stream(self.buffer)
            except SipError as error:
                found.append(Garbled(self.buffer[: sip.MAX_MESSAGE_BYTES], error.reason))
                self.buffer, self.broken = b"", True
                return found
            if cut is None:
                break
            one, self.buffer = cut
            try:
                found.append(sip.parse(one))
            except SipError as error:  # framed, so the stream goes on after it
                found.append(Garbled(one, error.reason))
        return found


async def read_stream(reader: asyncio.StreamReader, framer: StreamFramer) -> list[Arrival] | None:
    """The next arrivals on a stream, or None at its end."""
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            return None
        found = framer.feed(data)
        if found:
            return found


Received = tuple[Arrival | OSError | None, Endpoint | None]


class DatagramInbox(asyncio.DatagramProtocol):
    """SIP over UDP: each datagram parsed and queued with its source as it arrives.

    The queue holds (arrival, source); an ICMP error on the socket as that
    OSError (source None); the socket's end as None.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.queue.put_nowait((parse_datagram(data), (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait((exc if isinstance(exc, OSError) else OSError(str(exc)), None))

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait((None, None))

    def send(self, data: bytes, to: Endpoint | None = None) -> None:
        """One message, one datagram; `to` None on a socket connected to its peer."""
        if self.transport is not None:
            self.transport.sendto(data, to)


@dataclass(frozen=True)
class StreamFlow:
    """One TCP or TLS connection: who is at its other end (and the CN of its certificate)."""

    writer: asyncio.StreamWriter
    transport: str
    address: Endpoint
    certificate: str | None = None

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


Handle = Callable[[Arrival, StreamFlow], Awaitable[None]]


class StreamListener:
    """The connections others open to us, bounded; every arrival goes to `handle` with its flow.

    `server`: read double-CRLF pings (a registrar's side, StreamFramer);
    `closed` is told of each flow that ended. `flows` are the open ones, by
    their peer's address.
    """

    def __init__(
        self,
        handle: Handle,
        closed: Callable[[StreamFlow], None] = lambda flow: None,
        server: bool = True,
        limit: int = MAX_CONNECTIONS,
        idle: float = IDLE_TIMEOUT,
    ) -> None:
        self.handle, self.closed, self.server = handle, closed, server
        self.limit, self.idle = limit, idle
        self.flows: dict[Endpoint, StreamFlow] = {}
        self.turned_away = 0  # connections closed at once: `limit` were open

    async def listen(
        self, host: str, port: int, transport: str, context: ssl.SSLContext | None = None
    ) -> asyncio.Server:
        return await asyncio.start_server(
            lambda reader, writer: self.serve(reader, writer, transport),
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if context else None,
        )

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        """One connection, read until it ends, goes silent or its framing is lost."""
        if len(self.flows) >= self.limit:
            self.turned_away += 1
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        certificate = None
        if transport == "tls":
            certificate = tls.common_name(writer.get_extra_info("peercert"))
        flow = StreamFlow(writer, transport, (peer[0], peer[1]), certificate)
        self.flows[flow.address] = flow
        await self.read(reader, flow)

    async def read(self, reader: asyncio.StreamReader, flow: StreamFlow) -> None:
        """Everything that comes on the flow, to `handle`; then the flow is closed and told."""
        framer = StreamFramer(server=self.server)
        try:
            while True:
                arrivals = await asyncio.wait_for(read_stream(reader, framer), self.idle)
                if arrivals is None:
                    break
                for arrival in arrivals:
                    await self.handle(arrival, flow)
                if framer.broken:
                    break  # the stream's framing is lost: nothing after it can be trusted
                await flow.writer.drain()
        except (OSError, ssl.SSLError, TimeoutError):
            pass
        finally:
            if self.flows.get(flow.address) is flow:
                del self.flows[flow.address]
            self.closed(flow)
            with contextlib.suppress(OSError):
                flow.writer.close()


async def connect_stream(
    host: str, port: int, context: ssl.SSLContext | None, local: str, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from the node's address, or TLS over it with context (checking the
    peer's name against host); TimeoutError after timeout."""
    return await asyncio.wait_for(
        asyncio.open_connection(
            host,
            port,
            ssl=context,
            server_hostname=host if context else None,
            local_addr=(local, 0),
        ),
        timeout,
    )
