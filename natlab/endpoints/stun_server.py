"""The lab's public STUN server: a process run inside a node, answering on its 2x2.

    python -m natlab.endpoints.stun_server --address A1 [--address A2]
                                           [--port 3478] [--alt-port 3479]

It binds UDP on every (address, port), answers with the pure responder
(natlab.stun.answer, the same one the router daemon uses), and sends each
reply from the socket of the endpoint the responder picked, which is how
CHANGE-REQUEST is honoured. Garbage is counted and ignored.

For whoever starts it: one line "ready A1:P1 A1:P2 A2:P1 A2:P2" on stdout
once every socket is bound; SIGTERM (or SIGINT) makes it stop, print its
counters on stderr and exit 0; a socket it cannot bind makes it exit 2
with the reason on stderr. Port 0 picks a free port, the same on every
address, so tests can run it anywhere.
"""

from __future__ import annotations

import argparse
import errno
import selectors
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import cast

from natlab.errors import NatlabError
from natlab.stun import Address, Grid, Reply, StunDecodeError, answer, read_request
from natlab.stun.attributes import IPAddress

_EPHEMERAL_TRIES = 20  # port 0: retry when the free port of one address is taken on another


@dataclass
class Counters:
    """What the server did with the datagrams it read."""

    answered: int = 0
    ignored: int = 0  # well-formed, but not a request: indications and stray responses
    garbage: int = 0  # not STUN, or a FINGERPRINT that does not match
    unsent: int = 0  # a reply the kernel refused to send


class StunServer:
    """The sockets of one grid and the loop that answers on them.

    `stop` may be called from a signal handler or another thread.
    """

    def __init__(
        self,
        addresses: Sequence[IPAddress],
        ports: Sequence[int] = (3478, 3479),
        *,
        software: str | None = "natlab",
    ) -> None:
        chosen = [port for port in ports if port]  # port 0 may repeat: each is a free port
        if not (
            1 <= len(set(addresses)) == len(addresses) <= 2
            and 1 <= len(ports) <= 2
            and len(set(chosen)) == len(chosen)
        ):
            raise ValueError(
                f"give one or two addresses and one or two ports, none twice: "
                f"{', '.join(map(str, addresses))}; {', '.join(map(str, ports))}"
            )
        self.software = software
        self.counters = Counters()
        self._sockets: dict[Address, socket.socket] = {}
        self._wake_reader, self._waker = socket.socketpair()
        try:
            actual_ports = []
            for port in ports:
                column = _bind_column(addresses, port)
                actual_ports.append(column[0].getsockname()[1])
                for ip, sock in zip(addresses, column, strict=True):
                    self._sockets[Address(ip, actual_ports[-1])] = sock
            self.grid = Grid(tuple(addresses), tuple(actual_ports))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> StunServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in (*self._sockets.values(), self._wake_reader, self._waker):
            sock.close()

    def stop(self) -> None:
        """Make `serve` return; a byte on a socketpair wakes its select at once."""
        self._waker.send(b"\0")

    def handle(self, data: bytes, source: Address, local: Address) -> Reply | None:
        """What to send for a datagram from `source` that arrived on `local`, counted."""
        try:
            request = read_request(data)
        except StunDecodeError:
            self.counters.garbage += 1
            return None
        reply = answer(request, source, local, self.grid, software=self.software)
        if reply is None:
            self.counters.ignored += 1
        return reply

    def serve(self) -> None:
        """Answer until `stop` is called."""
        with selectors.DefaultSelector() as selector:
            for local, sock in self._sockets.items():
                selector.register(sock, selectors.EVENT_READ, local)
            selector.register(self._wake_reader, selectors.EVENT_READ, None)
            while True:
                for key, _events in selector.select():
                    if key.data is None:
                        return
                    self._receive(cast(socket.socket, key.fileobj), key.data)

    def _receive(self, sock: socket.socket, local: Address) -> None:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return  # an ICMP error queued on the socket; nothing to answer
        reply = self.handle(data, Address.of(peer[0], peer[1]), local)
        if reply is None:
            return
        try:
            self._sockets[reply.source].sendto(
                reply.data, (str(reply.destination.ip), reply.destination.port)
            )
        except OSError:
            self.counters.unsent += 1
        else:
            self.counters.answered += 1


def _bind(ip: IPAddress, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind((str(ip), port))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_column(addresses: Sequence[IPAddress], port: int) -> list[socket.socket]:
    """One port on every address; port 0 becomes one free port shared by all of them."""
    for _ in range(_EPHEMERAL_TRIES if port == 0 else 1):
        column: list[socket.socket] = []
        try:
            for ip in addresses:
                column.append(_bind(ip, column[0].getsockname()[1] if column else port))
            return column
        except OSError as error:
            for sock in column:
                sock.close()
            if port == 0 and error.errno == errno.EADDRINUSE:
                continue
            raise NatlabError(
                f"cannot bind UDP {Address(ip, port)}: {error.strerror}",
                fix="give addresses this node has, and ports nothing else uses",
            ) from None
    raise NatlabError(f"no free UDP port common to {', '.join(map(str, addresses))}")


@dataclass(frozen=True)
class StunServerConfig:
    addresses: tuple[IPAddress, ...]  # two for RFC 5780 change requests
    port: int = 3478
    alt_port: int = 3479
    software: str = "natlab"  # the SOFTWARE attribute


def run(config: StunServerConfig) -> int:
    """Serve until SIGTERM or SIGINT; 2 if a socket cannot be bound."""
    try:
        server = StunServer(
            config.addresses, (config.port, config.alt_port), software=config.software
        )
    except (NatlabError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return NatlabError.exit_code
    with server:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: server.stop())
        print("ready", *server.grid.endpoints, flush=True)
        server.serve()
    print(f"stun server stopped: {server.counters}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """By hand (the lab calls run): python -m natlab.endpoints.stun_server --address A1 ..."""
    parser = argparse.ArgumentParser(
        prog="python -m natlab.endpoints.stun_server",
        description="The lab's STUN server (RFC 5389/8489, RFC 5780, RFC 3489 clients).",
    )
    parser.add_argument(
        "--address",
        action="append",
        required=True,
        type=ip_address,
        help="an address to answer on; give two for RFC 5780 change requests",
    )
    parser.add_argument("--port", type=int, default=3478)
    parser.add_argument("--alt-port", type=int, default=3479)
    parser.add_argument("--software", default="natlab", help="the SOFTWARE attribute")
    args = parser.parse_args(argv)
    return run(StunServerConfig(tuple(args.address), args.port, args.alt_port, args.software))


if __name__ == "__main__":
    sys.exit(main())
