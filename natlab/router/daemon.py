"""The router daemon: natlab's own dataplane around the pure NAT engine.

One process per router, inside the router's namespace, started by the lab
(natlab.lab.routers), or by hand there, as

    python -m natlab.router.daemon CONFIG.json

It imports only what it uses (no pydantic, nothing of the topology's), so
that a daemon holding 10 000 mappings stays well under 50 MB.

It reads every frame on the router's interfaces (AF_PACKET), asks the
engine what to do with each IPv4 packet, and writes the result out itself:
the kernel of the namespace forwards nothing and sees no IPv4 packet
(plumbing/firewall.py), so it can never RST, ICMP-reply or conntrack on its
own. Most packets skip parsing and the engine: a flow cache per interface
(natlab.core.flows) replays what the engine decided for the flow's first
packets. The daemon also answers pings to the router's addresses, runs the
built-in STUN responder the engine hands it (Action.LOCAL), and sends the
RST or ICMP error with which the engine answers an unsolicited SYN
(`tcp_unsolicited`, 6 s after it came: RFC 5382 REQ-4). With `port_control`
on it also serves PCP, NAT-PMP and UPnP to its LANs (lan_services.py). What the
router's own programs serve (its LAN's DNS resolver, `kernel_served`) it
leaves to the namespace's kernel, which alone lets those packets in. A link
impairment (`natlab link set`) puts its frames through impaired.py, which
holds delayed ones until a timerfd in the same loop says they are due.

Time is the monotonic clock plus an offset that `natlab clock advance`
moves forward, so a lesson about a 120 s timeout takes no waiting. Events
go, one JSON object a line, to ROUTER.events.jsonl next to the config,
rotated at a size; a full or read-only state directory costs events
(counted), never the daemon (eventlog.py). The control socket ROUTER.sock
answers `natlab nat ...` (control.py) in the same loop as the packets, a
slice at a time and never waiting for a client: one thread, so the
packet path takes no lock, and no client, slow or greedy, can hold it up
for longer than one slice of work. The daemon exits on SIGTERM, and by
itself when its lab's state directory is removed (a `down` whose creator
was killed still ends it).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from itertools import islice
from pathlib import Path
from typing import Any

from natlab.core.behaviour import Behaviour
from natlab.core.craft import echo_reply, udp_packet
from natlab.core.durations import check_advance
from natlab.core.engine import Action, NatEngine, Replay
from natlab.core.events import DropReason
from natlab.core.flows import FlowCache
from natlab.core.impair import LinkImpairment
from natlab.core.packets import (
    ICMP_ECHO_REQUEST,
    Endpoint,
    Packet,
    PacketError,
    Proto,
    decrement_ttl,
    parse,
)
from natlab.core.portcontrol.service import PortControl, Protocol
from natlab.records import (
    DROP,
    PORT_CONTROL_REFUSED,
    ROUTER_REQUESTS,
    STUN_MALFORMED,
    AdvanceRequest,
    BehaviourAnswer,
    ClockRequest,
    FlushAnswer,
    FlushRequest,
    LinkSetRequest,
    LinkShowRequest,
    PingRequest,
    Record,
    Request,
    RouterClock,
    RouterEvent,
    RouterPong,
    SetRequest,
    ShowHead,
    ShowRequest,
    event_json,
    request_from_json,
)
from natlab.router.config import DaemonConfig
from natlab.router.control import END, Connection, encode
from natlab.router.eventlog import EventLog, limits
from natlab.router.files import events_path, socket_path
from natlab.router.forwarding import ANSWER_PING, INBOUND, NO_ROUTE, OUTBOUND, ROUTE, Forwarding
from natlab.router.impaired import ImpairedLinks
from natlab.router.lan_services import SSDP_MAC, LanServices
from natlab.router.links import Delayed, Link
from natlab.router.ports import BROADCAST, ETH_ARP, ETH_IP, Port
from natlab.router.routes import RouteTable
from natlab.router.sip_alg import SIP_PORT, SipAlg, sip_alg_of
from natlab.stun import Address, Grid, StunDecodeError, answer, read_request

TICK = 0.25  # seconds between housekeeping rounds (expiry, ARP give-up, event flush)
BATCH = 256  # frames read from one port before looking at the others
FRAME_MAX = 65536
SHOW_SLICE = 256  # mappings written per turn of the loop: packets wait for no more than that
CONTROL_IDLE = 10.0  # seconds a control client may make no progress before it is dropped
CONTROL_CLIENTS = 32  # served at once; more are told to try again


class RouterDaemon(ImpairedLinks):
    def __init__(self, config: DaemonConfig, config_path: Path) -> None:
        self.config = config
        self.name = config.router
        self.directory = config_path.parent
        self.engine = NatEngine(config.nat_config())
        self.translate = self.engine_behaviour().translate
        self.ports = [Port(p.name, p.addresses) for p in config.ports]
        self.wan = self.ports[0]
        self.flows = {port: FlowCache() for port in self.ports}  # by ingress
        self.routes = RouteTable(self.ports, config.routes)
        self.external = {str(a.ip) for a in self.wan.addresses}
        self.own = {str(a.ip) for port in self.ports for a in port.addresses}
        self.kernel_served = frozenset(config.kernel_served)
        self.forwarding = Forwarding(
            self.own,
            self.external,
            self.translate,
            self.engine.is_internal,
            lambda address: self.routes.lookup(address) is not None,
        )
        # The built-in STUN responder: RFC 5780's 2x2 when the WAN has two addresses.
        wan_ips = tuple(a.ip for a in self.wan.addresses[:2])
        self.stun_grid = Grid(wan_ips, config.stun_ports) if config.stun_ports else None
        self.offset = 0.0
        self.counters: Counter[str] = Counter()
        self.sip_alg = sip_alg_of(config.sip_alg, self.engine)
        max_bytes, files = limits(os.environ)
        self.events = EventLog(events_path(config_path), max_bytes, files, warn=self.log)
        self.control_path = socket_path(config_path)
        self.control_path.unlink(missing_ok=True)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(str(self.control_path))
        self.control.listen(16)
        self.control.setblocking(False)
        self.clients: set[Connection] = set()
        self.selector = selectors.DefaultSelector()
        self.buffer = bytearray(FRAME_MAX)
        self.view = memoryview(self.buffer)
        self.lan_services = self.start_port_control() if config.port_control else None
        # Link impairments (links.py): frames arriving on a port with an inbound one go
        # to ingress[port] instead of straight on; an outbound one sits in port.transmit.
        self.delayed = Delayed()
        self.links: dict[Port, Link] = {}
        self.ingress: dict[Port, Callable[[memoryview], None] | None] = dict.fromkeys(self.ports)
        self.paced = False  # impaired.py: at real-time priority, frames wake it in batches
        for port in self.ports:
            impairment = config.impairments.get(port.name)
            if impairment is not None:
                self.impair(port, impairment)

    def start_port_control(self) -> LanServices:
        """PCP / NAT-PMP / UPnP on the LANs (lan_services.py); announces the (re)start."""
        protocols = frozenset(Protocol(name) for name in self.config.port_control)
        control = PortControl(self.engine, protocols, self.now(), self.refused)
        services = LanServices(control, self.ports[1:], self.selector, self.now, self.log)
        services.announce(self.ports[1:])
        return services

    def engine_behaviour(self) -> Behaviour:
        return self.engine.config.behaviour

    def now(self) -> float:
        return time.monotonic() + self.offset

    def log(self, text: str) -> None:
        """One line in the daemon's log, if it can be written (the disk may be full)."""
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), f"router {self.name}: {text}\n".encode())

    # -- the loop ------------------------------------------------------------

    def run(self) -> None:
        selector = self.selector
        for port in self.ports:
            selector.register(port.sock, selectors.EVENT_READ, port)
        selector.register(self.control, selectors.EVENT_READ, None)
        selector.register(self.delayed.alarm, selectors.EVENT_READ, self.delayed)
        next_tick = time.monotonic() + TICK
        delayed = self.delayed
        self.log(f"dataplane up on {', '.join(p.name for p in self.ports)}")
        woke = 0.0  # when the loop last woke for frames (impaired.py's pace)
        while True:
            if self.paced:
                self.pace(woke)
            for key, _ in selector.select(max(0.0, next_tick - time.monotonic())):
                data = key.data
                if isinstance(data, Port):
                    woke = time.monotonic()
                    self.drain(data)
                elif data is delayed:
                    self.release(rang=True)
                elif data is None:
                    self.accept()
                elif callable(data):  # the port control's HTTP sockets (lan_services.py)
                    data()
                else:
                    self.serve(data)
            if delayed.bytes:  # frames held: any due yet?
                soonest = delayed.soonest()
                if soonest is not None and soonest <= time.monotonic():
                    self.release(rang=False)
            self.write_events()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK
                if not self.directory.exists():
                    return  # the lab was taken down without us
                self.housekeeping()

    def drain(self, port: Port) -> None:
        recv_into, view, buffer = port.sock.recv_into, self.view, self.buffer
        mac, cached, monotonic = port.mac, self.flows[port].forward, time.monotonic
        shape = self.ingress[port]
        for _ in range(BATCH):
            try:
                size = recv_into(buffer)
            except BlockingIOError:
                return
            if size < 14:
                continue
            frame = view[:size]
            destination = buffer[:6]
            if destination != mac and destination != BROADCAST and destination != SSDP_MAC:
                continue  # flooded by the bridge to everyone: not ours
            kind = frame[12:14]
            if kind == ETH_IP:
                if shape is not None:
                    shape(frame)
                    continue
                egress = cached(buffer, 14, size - 14, monotonic() + self.offset)
                if egress is None:
                    self.packet(port, frame[14:])
                else:
                    self.send_cached(*egress)
            elif kind == ETH_ARP:
                port.arp(frame)

    def housekeeping(self) -> None:
        now = self.now()
        self.engine.expire(now)
        if self.sip_alg is not None:
            self.sip_alg.expire(now)  # the TCP connections whose sequence numbers it shifts
        for reply in self.engine.syn_answers(now):  # RFC 5382 REQ-4: RST or ICMP, held 6 s
            self.send(parse(reply))
        for port in self.ports:
            dropped = port.expire(now)
            if dropped:
                self.counters["dropped_no_arp_answer"] += dropped
            overflowed = port.overflowed()
            if overflowed:
                self.counters["dropped_receive_overflow"] += overflowed
                self.event(
                    "drop",
                    reason=DropReason.RECEIVE_OVERFLOW,
                    port=port.name,
                    count=overflowed,
                    detail=f"{overflowed} frame(s) came in faster than the daemon could read them",
                )
        self.events.flush()
        if self.lan_services is not None:
            self.lan_services.housekeeping()
        idle = time.monotonic() - CONTROL_IDLE
        for connection in [c for c in self.clients if c.active < idle]:
            self.hang_up(connection)

    # -- one packet ------------------------------------------------------------

    def packet(self, port: Port, data: memoryview) -> None:
        try:
            packet = parse(data)
        except PacketError as error:
            self.counters["dropped_malformed"] += 1
            self.event(DROP, reason=DropReason.MALFORMED, detail=str(error), port=port.name)
            return
        kernel = self.kernel_served
        if kernel and (port.name, packet.dst.address, packet.proto, packet.dst.port) in kernel:
            self.counters["left_to_kernel"] += 1
            return
        services = self.lan_services
        if (
            services is not None
            and port is not self.wan
            and packet.proto != Proto.ICMP
            and packet.dst.address in services.destinations
        ):
            for answer in services.answer(port, packet):
                self.send(parse(answer))
            return
        step = self.forwarding.step(
            port is self.wan,
            packet.dst.address,
            packet.proto == Proto.ICMP and packet.icmp_type == ICMP_ECHO_REQUEST,
        )
        if step is OUTBOUND:
            before = packet.src  # the sender's private endpoint, for the SIP ALG
            verdict = self.engine.outbound(packet, self.now())
        elif step is INBOUND:
            before = packet.dst  # the public endpoint it came in for, for the SIP ALG
            verdict = self.engine.inbound(packet, self.now())  # martians dropped there
        elif step is ROUTE:
            self.forward(packet, (port, data, None))  # between two LANs: no translation
            return
        elif step is ANSWER_PING:
            if port is not self.wan or not self.engine.martian(packet, self.now()):
                self.counters["pings_answered"] += 1
                self.send(parse(echo_reply(packet)))
            return
        elif step is NO_ROUTE:
            self.no_route(packet)  # routing comes first: no mapping for a packet going nowhere
            return
        else:
            self.counters[step.counter] += 1
            return
        action = verdict.action
        if action is Action.LOCAL:
            self.local(packet)
        elif action is not Action.DROP:
            alg = self.sip_alg
            if alg is not None and (
                packet.dst.port == SIP_PORT
                or packet.src.port == SIP_PORT
                or before.port == SIP_PORT
            ):
                self.sip(alg, packet, before, step is OUTBOUND)
                # never cached: every SIP packet goes through the ALG, and every segment of
                # a TCP connection whose sequence numbers it shifts (sip_alg.py) is one
                self.forward(packet)
                return
            replay = self.engine.last_flow
            self.forward(packet, None if replay is None else (port, data, replay))

    def sip(self, alg: SipAlg, packet: Packet, before: Endpoint, outbound: bool) -> None:
        """Hand a translated SIP packet to the ALG, which rewrites it in place; tell what it did."""
        now = self.now()
        events = alg.outbound(packet, before, now) if outbound else alg.inbound(packet, before, now)
        self.write_events()  # the engine's (a pinhole's new mapping) before the ALG's
        for event in events:
            self.counters[event.kind.replace("-", "_")] += 1
            self.events.write(json.dumps(event_json(event, self.name)))

    def forward(
        self, packet: Packet, learn: tuple[Port, memoryview, Replay | None] | None = None
    ) -> None:
        """Route a packet on: TTL down by one, then out of the port its route names.

        `learn` (ingress port, the packet as it arrived, the engine's replay or
        None when no engine state is involved) puts its flow in the cache.
        """
        if not decrement_ttl(packet.data):
            self.counters["dropped_ttl_expired"] += 1
            self.event(
                DROP, reason=DropReason.TTL_EXPIRED, src=str(packet.src), dst=str(packet.dst)
            )
            return
        route = self.send(packet)
        if learn is not None and route is not None and route[1] in route[0].headers:
            ingress, arrived, replay = learn
            self.flows[ingress].learn(arrived, packet, replay, route)

    def send(self, packet: Packet) -> tuple[Port, str] | None:
        """Send a packet by its route; the route (port, next hop), None if there is none."""
        route = self.routes.lookup(packet.dst.address)
        if route is None:
            self.no_route(packet)
            return None
        port, next_hop = route
        try:
            port.send(next_hop, packet.data, self.now())
        except OSError as error:  # a full socket buffer, or a packet larger than the MTU
            self.send_failed(error, str(packet.dst))
        return route

    def send_cached(self, port: Port, next_hop: str) -> None:
        """Send the frame a flow cache rewrote in the daemon's buffer, with its new header."""
        buffer = self.buffer
        buffer[:14] = port.headers[next_hop]
        try:
            port.transmit(self.view[: 14 + ((buffer[16] << 8) | buffer[17])])
        except OSError as error:
            self.send_failed(error, str(IPv4Address(bytes(buffer[30:34]))))

    def send_failed(self, error: OSError, destination: str) -> None:
        """A full socket buffer, or a packet larger than the MTU: counted and told."""
        self.counters["dropped_send_error"] += 1
        self.event(DROP, reason=DropReason.SEND_ERROR, detail=str(error), dst=destination)

    def no_route(self, packet: Packet) -> None:
        self.counters["dropped_no_route"] += 1
        self.event(DROP, reason=DropReason.NO_ROUTE, src=str(packet.src), dst=str(packet.dst))

    def local(self, packet: Packet) -> None:
        """The built-in STUN responder: answer as if it stood beyond the router."""
        header = (packet.data[0] & 0x0F) * 4
        try:
            request = read_request(bytes(packet.data[header + 8 :]))
        except StunDecodeError as error:
            self.counters["stun_malformed"] += 1
            self.event(STUN_MALFORMED, detail=str(error), src=str(packet.src))
            return
        local = Address.of(packet.dst.address, packet.dst.port)
        source = Address.of(packet.src.address, packet.src.port)
        reply = answer(request, source, local, self.stun_grid)
        if reply is None:
            return
        self.counters["stun_answered"] += 1
        response = parse(
            udp_packet(
                Endpoint(str(reply.source.ip), reply.source.port),
                Endpoint(str(reply.destination.ip), reply.destination.port),
                reply.data,
            )
        )
        if response.dst.address in self.external:
            # A LAN host asked: the answer comes back in through the NAT, filtering and all.
            verdict = self.engine.answer_inbound(response, self.now())
            if verdict.action is Action.DROP:
                return
        self.send(response)

    def refused(self, detail: str) -> None:
        """A port control request the router refused, with the protocol's code and why."""
        self.counters["port_control_refused"] += 1
        self.event(PORT_CONTROL_REFUSED, detail=detail)

    # -- events and control ------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> None:
        """The daemon's own event (its drops carry a DropReason), as records.RouterEvent."""
        event = RouterEvent(at=round(self.now(), 6), router=self.name, kind=kind, **fields)
        self.events.write(json.dumps(event.to_json()))

    def write_events(self) -> None:
        for event in self.engine.drain_events():
            self.events.write(json.dumps(event_json(event, self.name)))

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.control.accept()
            except OSError:  # none waiting, or no file descriptor left: try on the next turn
                return
            connection = Connection(sock, time.monotonic())
            self.clients.add(connection)
            if len(self.clients) > CONTROL_CLIENTS:
                busy = {"ok": False, "error": "too many control clients at once; try again"}
                self.reply(connection, iter([encode(busy)]))
            else:
                self.selector.register(sock, selectors.EVENT_READ, connection)

    def serve(self, connection: Connection) -> None:
        """Read the request, or send the next of the answer: whatever the socket allows now."""
        now = time.monotonic()
        if connection.answer is None:
            request = connection.receive(now)
            if request is not None:
                self.selector.unregister(connection.sock)
                self.reply(connection, self.answer(request))
            return
        try:
            done = connection.send(now)
        except Exception as error:  # a bug making the answer: this client's loss, not the router's
            self.log(f"control: answer failed: {error.__class__.__name__}: {error}")
            done = True
        if done:
            self.hang_up(connection)

    def reply(self, connection: Connection, answer: Iterator[bytes]) -> None:
        connection.reply(answer)
        self.selector.register(connection.sock, selectors.EVENT_WRITE, connection)

    def hang_up(self, connection: Connection) -> None:
        self.clients.discard(connection)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        connection.close()

    def answer(self, request: dict | str) -> Iterator[bytes]:
        """The answer's lines; anything wrong with the request is an answer too."""
        try:
            if isinstance(request, str):
                raise ValueError(request)
            asked = request_from_json(request, ROUTER_REQUESTS)
            if isinstance(asked, ShowRequest):
                return self.show(asked.limit)
            line = encode({"ok": True, **self.command(asked).to_json()})
        except Exception as error:  # an answer, not a dead daemon, for any bad request
            line = encode({"ok": False, "error": f"{error.__class__.__name__}: {error}"})
        self.write_events()
        self.events.flush()  # what the client asks about is on disk when it reads the answer
        return iter([line])

    def show(self, limit: int | None) -> Iterator[bytes]:
        now = self.now()
        self.engine.expire(now)
        self.write_events()
        self.events.flush()
        total, views = self.engine.live_mappings(now)
        blocks = self.engine.port_blocks
        head = ShowHead(
            router=self.name,
            clock=now,
            behaviour=self.engine_behaviour().as_json(),
            mappings_total=total,
            counters={
                **self.engine.counters,
                **self.counters,
                "flow_cache_hits": sum(cache.hits for cache in self.flows.values()),
                "events_dropped": self.events.dropped,
                **(
                    {
                        "port_control_answers": self.lan_services.answered,
                        "port_control_failures": self.lan_services.failures,
                    }
                    if self.lan_services is not None
                    else {}
                ),
            },
            cgnat=None if blocks is None else blocks.as_json(),
        )
        return _show_lines(encode({"ok": True, **head.to_json()}), islice(views, limit), now)

    def command(self, request: Request) -> Record:
        now = self.now()
        if isinstance(request, PingRequest):
            return RouterPong(router=self.name, pid=os.getpid())
        if isinstance(request, ClockRequest):
            return RouterClock(clock=now, offset=self.offset)
        if isinstance(request, FlushRequest):
            return FlushAnswer(flushed=self.engine.flush(now))
        if isinstance(request, SetRequest):
            behaviour = Behaviour(**request.behaviour)
            if behaviour.translate != self.translate:
                raise ValueError("a running router cannot switch between NAT and plain routing")
            self.engine.reconfigure(behaviour, now)
            return BehaviourAnswer(behaviour=behaviour.as_json())
        if isinstance(request, AdvanceRequest):
            self.offset += check_advance(request.seconds)
            self.engine.expire(self.now())
            return RouterClock(clock=self.now(), offset=self.offset)
        if isinstance(request, LinkSetRequest):
            self.impair(self.port_named(request.port), LinkImpairment.from_json(request.impair))
            return self.links_answer()
        if isinstance(request, LinkShowRequest):
            return self.links_answer()
        raise ValueError(f"unknown request {request.op!r}")

    def close(self) -> None:
        self.write_events()
        self.events.close()
        for connection in list(self.clients):
            self.hang_up(connection)
        if self.lan_services is not None:
            self.lan_services.close()
        self.selector.close()
        self.delayed.close()
        self.control.close()
        self.control_path.unlink(missing_ok=True)
        for port in self.ports:
            port.close()


def _show_lines(head: bytes, views: Iterator, now: float) -> Iterator[bytes]:
    """A show answer's lines: the head, the mappings a slice at a time, the end."""
    yield head
    while chunk := list(islice(views, SHOW_SLICE)):
        yield b"".join(encode(view.as_json(now)) for view in chunk)
    yield END


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(config_path: Path) -> None:
    """Run the daemon of the router configured in config_path until SIGTERM."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the lab's to handle
    daemon = RouterDaemon(DaemonConfig.load(config_path), config_path)
    try:
        daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(
            "usage: python -m natlab.router.daemon CONFIG.json (inside the router's namespace)"
        )
    serve(Path(sys.argv[1]))
