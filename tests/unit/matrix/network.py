"""A simulated internet for pure NAT tests: routers running NatEngine, hosts, a STUN server.

The packets are real IPv4 bytes (natlab.core.craft builds them,
natlab.core.packets parses them), and each router hands them to its own
NatEngine exactly as the daemon does (LAN side: `outbound`, WAN side:
`inbound`) and acts on the verdict; only the wires are simulated. The
internet routes by destination, as the lab's routes do
(natlab.topology.routing): to each router's WAN address, to the LAN of a
router that does not translate, to hosts on the internet. A packet to a
private address behind a NAT has no route and is lost there.

Time is the simulation's: every hop takes a fixed delay and `run` moves the
clock from one delivery to the next, so ICE's 40-second timeouts take
microseconds. Everything lost is written to `Network.losses` with where and
why, the router's drop detail included, so that a failing test says which
packet died at which NAT.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, ip_address

from natlab.core.behaviour import Behaviour
from natlab.core.craft import udp_packet
from natlab.core.engine import Action, NatConfig, NatEngine, Verdict
from natlab.core.events import Dropped
from natlab.core.packets import Endpoint, Packet, parse
from natlab.stun import Address, Grid, StunDecodeError, answer, read_request

LAN_DELAY = 0.001  # host <-> router, host <-> host on one LAN
WAN_DELAY = 0.010  # router or internet host <-> the internet

Receiver = Callable[[Endpoint, bytes], None]
"""What a socket does with a datagram: the source as it arrived, and the payload."""


class Network:
    """The clock, the queue of packets in flight, and the internet's routes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.losses: list[str] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._routes: list[tuple[IPv4Network, Callable[[bytearray], None]]] = []

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run `action` `delay` seconds from now (simulated)."""
        heapq.heappush(self._queue, (self.now + delay, next(self._order), action))

    def run(self, until: float, done: Callable[[], bool] = lambda: False) -> None:
        """Deliver what is due, in time order, up to `until` or until `done()` holds."""
        while self._queue and self._queue[0][0] <= until and not done():
            self.now, _, action = heapq.heappop(self._queue)
            action()
        if not done():
            self.now = max(self.now, until)

    def idle(self) -> bool:
        """Nothing in flight and nothing scheduled: running on changes nothing."""
        return not self._queue

    def attach(self, network: str, receive: Callable[[bytearray], None]) -> None:
        """Route packets for `network` (an address or a subnet) to `receive`."""
        self._routes.append((IPv4Network(network), receive))

    def to_internet(self, data: bytearray) -> None:
        """Put a packet on the internet; it reaches the longest matching route, if any."""
        destination = IPv4Address(parse(data).dst.address)
        routes = [(net, receive) for net, receive in self._routes if destination in net]
        if not routes:
            self.lose("internet", data, f"no route to {destination}")
            return
        receive = max(routes, key=lambda route: route[0].prefixlen)[1]
        self.later(WAN_DELAY, lambda: receive(data))

    def lose(self, where: str, data: bytearray | Packet, why: str) -> None:
        packet = data if isinstance(data, Packet) else parse(data)
        self.losses.append(f"t={self.now:.3f} {where}: {packet.src} -> {packet.dst}: {why}")


class Host:
    """A node with one address and UDP sockets; its uplink is its LAN or the internet."""

    def __init__(self, network: Network, address: str, uplink: Callable[[bytearray], None]):
        self.network = network
        self.address = address
        self._uplink = uplink
        self._sockets: dict[int, Receiver] = {}

    def bind(self, port: int, receive: Receiver) -> Socket:
        if port in self._sockets:
            raise ValueError(f"{self.address}:{port} is already bound")
        self._sockets[port] = receive
        return Socket(self, Endpoint(self.address, port))

    def send(self, data: bytearray) -> None:
        self._uplink(data)

    def deliver(self, data: bytearray) -> None:
        packet = parse(data)
        receive = self._sockets.get(packet.dst.port)
        if packet.dst.address != self.address or receive is None:
            self.network.lose(self.address, packet, "nothing listens there")
            return
        header_length = (data[0] & 0x0F) * 4
        receive(packet.src, bytes(data[header_length + 8 :]))


class Socket:
    """One bound UDP endpoint of a host."""

    def __init__(self, host: Host, endpoint: Endpoint) -> None:
        self.host = host
        self.endpoint = endpoint

    def send(self, destination: Endpoint, payload: bytes) -> None:
        self.host.send(udp_packet(self.endpoint, destination, payload))


class Router:
    """A NAT router with one WAN address and one LAN, deciding every packet with its engine.

    Its LAN is a switch: hosts on the subnet reach each other directly,
    everything else goes through the router. A router that does not
    translate makes its LAN reachable from the internet (a "public" site).
    """

    def __init__(
        self, network: Network, name: str, wan: str, lan: str, behaviour: Behaviour
    ) -> None:
        self.network = network
        self.name = name
        self.wan = wan
        self.subnet = IPv4Network(lan)
        self.engine = NatEngine(NatConfig(behaviour, (wan,), (lan,)))
        self.hosts: dict[str, Host] = {}
        network.attach(wan, self.from_wan)
        if not behaviour.translate:
            network.attach(lan, self.from_wan)

    def add_host(self, address: str) -> Host:
        if ip_address(address) not in self.subnet:
            raise ValueError(f"{address} is not on {self.name}'s LAN {self.subnet}")
        host = Host(self.network, address, self.from_host)
        self.hosts[address] = host
        return host

    def from_host(self, data: bytearray) -> None:
        """A host on the LAN sent a packet: across the switch, or to the router."""
        if ip_address(parse(data).dst.address) in self.subnet:
            self.network.later(LAN_DELAY, lambda: self.to_lan(data))
        else:
            self.network.later(LAN_DELAY, lambda: self.from_lan(data))

    def from_lan(self, data: bytearray) -> None:
        packet = parse(data)
        verdict = self.engine.outbound(packet, self.network.now)
        if verdict.action in (Action.FORWARD_OUT, Action.PASS):
            self.network.to_internet(packet.data)
        elif verdict.action is Action.HAIRPIN:
            self.network.later(LAN_DELAY, lambda: self.to_lan(packet.data))
        else:
            self._not_forwarded("outbound", packet, verdict)

    def from_wan(self, data: bytearray) -> None:
        packet = parse(data)
        verdict = self.engine.inbound(packet, self.network.now)
        if verdict.action in (Action.FORWARD_IN, Action.PASS):
            self.network.later(LAN_DELAY, lambda: self.to_lan(packet.data))
        else:
            self._not_forwarded("inbound", packet, verdict)

    def to_lan(self, data: bytearray) -> None:
        destination = parse(data).dst.address
        host = self.hosts.get(destination)
        if host is None:
            self.network.lose(f"{self.name} lan", data, f"no host {destination}")
        else:
            host.deliver(data)

    def _not_forwarded(self, direction: str, packet: Packet, verdict: Verdict) -> None:
        if verdict.action is not Action.DROP:  # LOCAL: these routers run no STUN responder
            raise AssertionError(f"{self.name}: unexpected {verdict} for {direction} {packet}")
        details = [e.describe() for e in self.engine.drain_events() if isinstance(e, Dropped)]
        why = f"{verdict.reason} ({details[-1]})" if details else str(verdict.reason)
        self.network.lose(f"{self.name} {direction}", packet, why)


class StunServer:
    """A public STUN server on the internet: natlab's Binding responder on one address."""

    PORT = 3478

    def __init__(self, network: Network, address: str) -> None:
        self.host = Host(network, address, network.to_internet)
        network.attach(address, self.host.deliver)
        self.endpoint = Endpoint(address, self.PORT)
        self._local = Address.of(address, self.PORT)
        self._grid = Grid((self._local.ip,), (self.PORT,))
        self._socket = self.host.bind(self.PORT, self._receive)

    def _receive(self, source: Endpoint, payload: bytes) -> None:
        try:
            request = read_request(payload)
        except StunDecodeError:
            return
        reply = answer(request, Address.of(source.address, source.port), self._local, self._grid)
        if reply is not None:
            destination = Endpoint(str(reply.destination.ip), reply.destination.port)
            self._socket.send(destination, reply.data)
