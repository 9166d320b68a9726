"""The router's port control servers on its LAN side: the I/O around core.portcontrol.

UDP is the daemon's own, like everything it sends: PCP and NAT-PMP
requests to a LAN address on port 5351 and SSDP M-SEARCHes to
239.255.255.250:1900 come in through the dataplane, the answers go out
as packets the daemon builds (from the LAN address the client knows).
A (re)started router multicasts PCP's ANNOUNCE and NAT-PMP's address to
224.0.0.1:5350 on each LAN, so clients learn that their mappings are gone.

UPnP's description and control URL are HTTP, and natlab's dataplane has
no TCP stack: there the namespace's kernel does TCP. The lab opens one
hole in the drop-everything chain (plumbing.firewall.accept_tcp_to) for
TCP to each LAN address on upnp.HTTP_PORT, and this module listens there
with ordinary non-blocking sockets, served in the daemon's one loop, each
request bounded in size (upnp.MAX_REQUEST) and time (HTTP_IDLE).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address

from natlab.core.craft import udp_packet
from natlab.core.packets import Endpoint, Packet, Proto
from natlab.core.portcontrol import Refused, service, upnp
from natlab.core.portcontrol.pcp import ALL_NODES
from natlab.core.portcontrol.service import PortControl
from natlab.router.ports import ETH_IP, Port

HTTP_IDLE = 10.0  # seconds an HTTP client may take for its request
HTTP_CLIENTS = 32
READ_SIZE = 4096


def multicast_mac(address: str) -> bytes:
    """The Ethernet address of an IPv4 multicast group (RFC 1112 6.4)."""
    low = IPv4Address(address).packed[1:]
    return b"\x01\x00\x5e" + bytes([low[0] & 0x7F]) + low[1:]


SSDP_MAC = multicast_mac(upnp.SSDP_ADDRESS)


class LanServices:
    """The port control a router serves on `lans`, with the daemon's selector and clock."""

    def __init__(
        self,
        control: PortControl,
        lans: list[Port],
        selector: selectors.BaseSelector,
        clock: Callable[[], float],
        log: Callable[[str], None],
    ) -> None:
        self.control = control
        self.clock = clock
        self.log = log
        self.addresses = {str(a.ip) for port in lans for a in port.addresses}
        self.destinations = frozenset({*self.addresses, upnp.SSDP_ADDRESS})
        self.http = (
            UpnpHttp(control.upnp, sorted(self.addresses), selector, clock, self.failed)
            if control.upnp is not None
            else None
        )
        self.datagrams_answered = 0
        self.failures = 0

    @property
    def answered(self) -> int:
        """Answers sent: datagrams (PCP, NAT-PMP, SSDP) and HTTP answers."""
        return self.datagrams_answered + (0 if self.http is None else self.http.answered)

    def failed(self, error: Exception) -> None:
        """A bug answering a request: that request's loss, never the router's. Told and counted."""
        self.failures += 1
        self.log(f"port control: {error.__class__.__name__}: {error}")

    def answer(self, port: Port, packet: Packet) -> list[bytearray]:
        """The packets that answer one packet from a LAN to these destinations (maybe none)."""
        try:
            answers = self._answers(port, packet)
        except Exception as error:
            self.failed(error)
            return []
        self.datagrams_answered += len(answers)
        return answers

    def _answers(self, port: Port, packet: Packet) -> list[bytearray]:
        if packet.proto != Proto.UDP:
            return []  # TCP to the HTTP port is the kernel's (see the module docstring)
        header = (packet.data[0] & 0x0F) * 4
        payload = bytes(packet.data[header + 8 :])
        dst, client, control = packet.dst, packet.src, self.control
        if dst.address == upnp.SSDP_ADDRESS:
            if dst.port != upnp.SSDP_PORT or control.upnp is None:
                return []
            local = _local_address(port, client.address)
            location = f"http://{local}:{upnp.HTTP_PORT}{upnp.DESCRIPTION_PATH}"
            source = Endpoint(local, upnp.SSDP_PORT)
            answers = [
                udp_packet(source, client, upnp.search_answer(target, location))
                for target in upnp.search_targets(payload)
            ]
        elif dst.port == service.PORT and control.serves_5351:
            reply = control.datagram(payload, client, self.clock())
            answers = [] if reply is None else [udp_packet(dst, client, reply)]
        else:
            answers = []
        return answers

    def announce(self, lans: list[Port]) -> None:
        """Tell each LAN that the router (re)started: its mappings are gone."""
        group = multicast_mac(ALL_NODES)
        for port in lans:
            source = str(port.addresses[0].ip)
            for client_port, payload in self.control.announcements(self.clock()):
                packet = udp_packet(
                    Endpoint(source, service.PORT), Endpoint(ALL_NODES, client_port), payload
                )
                with contextlib.suppress(OSError):
                    port.sock.send(group + port.mac + ETH_IP + packet)

    def housekeeping(self) -> None:
        if self.http is not None:
            self.http.drop_idle()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


def _local_address(port: Port, client: str) -> str:
    """The port's address on the client's subnet (the one it can reach)."""
    ip = IPv4Address(client)
    return str(next((a.ip for a in port.addresses if ip in a.network), port.addresses[0].ip))


class _Client:
    __slots__ = ("received", "sock", "started", "unsent")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.unsent = b""
        self.started = time.monotonic()


class UpnpHttp:
    """Non-blocking HTTP/1.1 for the IGD: one request per connection, then close."""

    def __init__(
        self,
        server: upnp.UpnpServer,
        addresses: list[str],
        selector: selectors.BaseSelector,
        clock: Callable[[], float],
        failed: Callable[[Exception], None],
    ) -> None:
        self.server = server
        self.failed = failed
        self.answered = 0
        self.selector = selector
        self.clock = clock
        self.clients: set[_Client] = set()
        self.listeners = []
        for address in addresses:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, upnp.HTTP_PORT))
            listener.listen(16)
            listener.setblocking(False)
            selector.register(listener, selectors.EVENT_READ, partial(self._accept, listener))
            self.listeners.append(listener)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if len(self.clients) >= HTTP_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock)
            self.clients.add(client)
            self.selector.register(sock, selectors.EVENT_READ, partial(self._read, client))

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.received += data
        try:
            request = upnp.read_http(client.received)
            if request is None:
                return
            peer, _ = client.sock.getpeername()
            local, _ = client.sock.getsockname()
            base = f"http://{local}:{upnp.HTTP_PORT}"
            answer = self.server.handle(request, peer, base, self.clock())
        except Refused as error:
            answer = upnp.http_answer(400 if error.code == 400 else 413, b"")
        except OSError:
            self._close(client)
            return
        except Exception as error:
            self.failed(error)
            answer = upnp.http_answer(500, b"")
        client.unsent = answer
        self.answered += 1
        self.selector.modify(client.sock, selectors.EVENT_WRITE, partial(self._write, client))

    def _write(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.unsent)
        except BlockingIOError:
            return
        except OSError:
            sent = len(client.unsent)
        client.unsent = client.unsent[sent:]
        if not client.unsent:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.discard(client)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()

    def drop_idle(self) -> None:
        idle = time.monotonic() - HTTP_IDLE
        for client in [c for c in self.clients if c.started < idle]:
            self._close(client)

    def close(self) -> None:
        for client in list(self.clients):
            self._close(client)
        for listener in self.listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener)
            listener.close()
