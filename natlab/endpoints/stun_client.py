"""STUN Binding transactions over UDP: the client half that probe and phones share.

Retransmission follows RFC 8489 section 6.2.1 in shape (resend until an
answer or the tries run out) with lab timings: a lab's round trip is well
under a millisecond, and a test whose answer a NAT filters must fail in
well under a second, so the default is 3 tries 200 ms apart instead of
7 tries from a 500 ms RTO doubling.

Datagrams that are not STUN, or answer another transaction, are skipped:
a phone may share its media socket with this client.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from natlab.errors import NatlabError
from natlab.stun import (
    ERROR_CODE,
    MAPPED_ADDRESS,
    OTHER_ADDRESS,
    XOR_MAPPED_ADDRESS,
    Address,
    Attribute,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decode,
    encode,
)

T = TypeVar("T")
STUN_PORT = 3478


@dataclass(frozen=True)
class Timing:
    """How often a request is sent and how long each send waits for its answer."""

    tries: int = 3
    interval: float = 0.2


LAB_TIMING = Timing()


@dataclass(frozen=True)
class Answer:
    """What a Binding success response tells its client."""

    mapped: Address  # XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a classic server
    other: Address | None  # OTHER-ADDRESS: the server's alternate IP and port, if it has one
    source: Address  # where the response came from, as this socket saw it

    @classmethod
    def of(cls, response: Message, source: Address) -> Answer:
        """Read a response; an error response or one without a mapping is the server's fault."""
        error = response.get(ERROR_CODE)
        if error is not None:
            raise NatlabError(
                f"STUN server {source} answered {error.code} {error.reason}".rstrip(),
                fix="use a STUN server that answers RFC 5780 Binding requests",
            )
        mapped = response.get(XOR_MAPPED_ADDRESS) or response.get(MAPPED_ADDRESS)
        if mapped is None:
            raise NatlabError(
                f"STUN server {source} answered without a mapped address",
                fix="use a STUN server that answers RFC 5389 Binding requests",
            )
        return cls(mapped, response.get(OTHER_ADDRESS), source)


def binding_request(*attributes: Attribute) -> Message:
    """A Binding request with a fresh random transaction id (RFC 8489 6: 96 random bits)."""
    return Message(Method.BINDING, MessageClass.REQUEST, os.urandom(12), attributes)


def parse_server(text: str, default_port: int = STUN_PORT) -> tuple[str, int]:
    """Split "host", "host:port", "ADDR", "ADDR:PORT" or "[v6]:port" into host and port."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(text, rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, tail = text.partition(":")
        port = _port(text, tail)
    if not host:
        raise NatlabError(f"no host in STUN server '{text}'", fix="write ADDR or ADDR:PORT")
    return host, port


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        raise NatlabError(
            f"bad port in STUN server '{text}'", fix="write ADDR:PORT with a port in 1..65535"
        )
    return int(port)


def resolve(servers: Iterable[str], default_port: int = STUN_PORT) -> list[Address]:
    """Every UDP address the servers name, in order; a name may give several."""
    found: dict[Address, None] = {}
    for text in servers:
        host, port = parse_server(text, default_port)
        try:
            found.update(dict.fromkeys(addresses_of(host, port)))
        except socket.gaierror as error:
            raise NatlabError(
                f"cannot resolve STUN server '{host}': {error.strerror}",
                fix="give an address, or a name this node can resolve",
            ) from None
    return list(found)


def addresses_of(host: str, port: int) -> list[Address]:
    """Every UDP address of host (an address, or a name with several A records), in order.

    The node's resolver answers (its resolv.conf); socket.gaierror if it cannot.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return list(dict.fromkeys(Address.of(info[4][0], port) for info in infos))


def _sockaddr(address: Address) -> tuple[str, int]:
    return str(address.ip), address.port


def _family(address: Address) -> socket.AddressFamily:
    return socket.AF_INET if address.ip.version == 4 else socket.AF_INET6


def route_source(destination: Address) -> Address:
    """The local IP this node's routes would send from to `destination` (port 0).

    A connected UDP socket learns it from the kernel without sending anything.
    """
    with socket.socket(_family(destination), socket.SOCK_DGRAM) as probe:
        probe.connect(_sockaddr(destination))
        return Address.of(probe.getsockname()[0], 0)


Send = tuple[socket.socket, bytes, Address]
Match = Callable[[socket.socket, Message, Address], T | None]


def exchange(
    timing: Timing, sends: Sequence[Send], listen: Sequence[socket.socket], match: Match[T]
) -> T | None:
    """Send every datagram, wait `interval` for the first message `match` accepts; repeat.

    Returns what `match` made of the first accepted message, or None when
    the tries run out. Undecodable datagrams are skipped.
    """
    with selectors.DefaultSelector() as selector:
        for sock in listen:
            selector.register(sock, selectors.EVENT_READ)
        for _ in range(timing.tries):
            for sock, data, destination in sends:
                sock.sendto(data, _sockaddr(destination))
            deadline = time.monotonic() + timing.interval
            while (remaining := deadline - time.monotonic()) > 0:
                for key, _events in selector.select(remaining):
                    sock = cast(socket.socket, key.fileobj)
                    data, peer = sock.recvfrom(65535)
                    try:
                        message = decode(data)
                    except StunDecodeError:
                        continue
                    accepted = match(sock, message, Address.of(peer[0], peer[1]))
                    if accepted is not None:
                        return accepted
    return None


class StunClient:
    """Binding requests from one UDP socket, which the client owns and closes."""

    def __init__(self, sock: socket.socket, timing: Timing = LAB_TIMING) -> None:
        self.sock = sock
        self.timing = timing

    @classmethod
    def open(cls, local: Address, timing: Timing = LAB_TIMING) -> StunClient:
        """Bind a UDP socket to `local` (port 0: any free port)."""
        sock = socket.socket(_family(local), socket.SOCK_DGRAM)
        try:
            sock.bind(_sockaddr(local))
        except OSError:
            sock.close()
            raise
        return cls(sock, timing)

    def __enter__(self) -> StunClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def local(self) -> Address:
        host, port = self.sock.getsockname()[:2]
        return Address.of(host, port)

    def request(
        self, destination: Address, *attributes: Attribute
    ) -> tuple[Message, Address] | None:
        """One Binding transaction: its response (success or error) and source, or None."""
        request = binding_request(*attributes)
        return exchange(
            self.timing,
            [(self.sock, encode(request, fingerprint=True), destination)],
            [self.sock],
            lambda _sock, message, source: (
                (message, source) if _answers(message, request) else None
            ),
        )

    def binding(self, destination: Address, *attributes: Attribute) -> Answer | None:
        """The Answer to a Binding request, or None if none came in time."""
        result = self.request(destination, *attributes)
        return None if result is None else Answer.of(*result)

    def first_answer(self, servers: Sequence[Address]) -> Answer | None:
        """Ask every server at once; the first success wins (a phone's several STUN servers).

        Servers of the other address family than the socket's are skipped.
        """
        servers = [server for server in servers if _family(server) == self.sock.family]
        requests = [binding_request() for _ in servers]
        sends = [
            (self.sock, encode(request, fingerprint=True), server)
            for request, server in zip(requests, servers, strict=True)
        ]

        def first_success(_sock: socket.socket, message: Message, source: Address) -> Answer | None:
            for request in requests:
                if _answers(message, request) and message.get(ERROR_CODE) is None:
                    return Answer.of(message, source)
            return None

        return exchange(self.timing, sends, [self.sock], first_success)


def _answers(message: Message, request: Message) -> bool:
    return message.transaction_id == request.transaction_id and message.message_class in (
        MessageClass.SUCCESS,
        MessageClass.ERROR,
    )
