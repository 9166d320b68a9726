"""The lab's PBX: registrar, call signalling and an optional media relay, inside its node.

The lab forks it into its node with its PbxConfig (run(config)): its
address and ports, the lab's CA for TLS, its public address and relay
ports when a router forwards them, its local networks and relay policy.

Phones register over TCP (plain, or TLS with a certificate of the lab's CA
whose CN must be the name they register: a phone holding another phone's
certificate is refused, as field certificate registration does) and keep
the connection alive; the PBX routes invites, answers, byes and the RTP
counts the phones exchange at the end of a call (signalling.py).

Over UDP (the same port as plain TCP) each datagram is one message. A
REGISTER binds the phone's name to the datagram's source as the PBX sees
it (through the phone's NAT mapping) for `EXPIRES` seconds, and everything
for that phone goes there; other datagrams are the phone's whose
registration holds their source. A datagram from a stranger (no
registration holds its source), or one that is not a message, is answered
with an error; never when it was an error itself (two endpoints answering
each other's errors never stop), and at most STRANGER_BURST times at once
and STRANGER_RATE times a second per source address after that (a forged
source makes the PBX answer whoever it names).

Nothing tells the PBX that the NAT in between forgot the mapping: an
invite sent there is then lost. As SIP's timer A does, the PBX sends the
invite again until the callee says "ringing", and tells the caller when
the callee never did.

The media relay is an SBC's: for a relayed call the PBX opens one UDP port
per side, writes it into the offer and answer it forwards, and latches each
port onto the address that side's RTP really comes from, so a phone behind
any NAT is reached through the mapping its own packets opened. A phone on
one of the PBX's own networks (`local`) gets the PBX's address; others get
the public one (`public`: the router that forwards `relay_ports` to it).
A call is relayed when its mode is "relay", or when the relay policy
(`relay`, or the control request {"op": "relay", "phones": ...}) covers one
of its phones.

Control socket requests: {"op": "registrations"} (a UDP one with its
"expires_in" seconds), {"op": "calls"}, {"op": "counters"} (UDP datagrams
received, errors sent back, and those left unanswered, by why),
{"op": "relay", "phones": "all"|"remote"|"none"|[names]}, {"op": "ping"}.
Prints "ready ..." once it listens; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import Any, Protocol, cast

from natlab import records
from natlab.endpoints import tls
from natlab.endpoints.ratelimit import TokenBuckets
from natlab.endpoints.signalling import (
    MAX_LINE,
    NOT_REGISTERED,
    DatagramInbox,
    Endpoint,
    Sdp,
    SignallingError,
    format_endpoint,
    read_message,
    serve_control,
    write_message,
)
from natlab.records import (
    PBX_REQUESTS,
    CallsRequest,
    Counters,
    CountersRequest,
    PbxCalls,
    PbxPong,
    PingRequest,
    Registrations,
    RegistrationsRequest,
    RelayAnswer,
    RelayRequest,
    request_from_json,
)

SIP_PORT = 5060  # plain TCP
SIPS_PORT = 5061  # TLS
EXPIRES = 60  # seconds a registration lives without a word (TCP) or a REGISTER (UDP)
RING_WAITS = (0.25, 0.5, 1.0)  # over UDP: an invite is sent again after each wait but the last
CALL_LINGER = 10.0  # seconds a call's state (and relay) outlives its bye, for the RTP counts
RELAY_POLICIES = ("none", "all", "remote")
STRANGER_BURST = 5  # errors a stranger's address gets at once over UDP...
STRANGER_RATE = 1.0  # ...and then per second


class Link(Protocol):
    """How the PBX reaches a registered phone."""

    def send(self, message: dict) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StreamLink:
    """The phone's own TCP or TLS connection."""

    writer: asyncio.StreamWriter

    def send(self, message: dict) -> None:
        write_message(self.writer, message)

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class DatagramLink:
    """The PBX's UDP socket, towards the address the phone's REGISTER came from."""

    inbox: DatagramInbox
    address: Endpoint

    def send(self, message: dict) -> None:
        self.inbox.send(message, self.address)

    def close(self) -> None:
        """The socket is every UDP phone's: nothing of this phone's to close."""


@dataclass
class Registration:
    name: str
    link: Link
    transport: str  # "tcp" | "tls" | "udp"
    address: Endpoint  # where the phone's messages come from, as the PBX sees it
    since: float = field(default_factory=time.time)
    expires_at: float | None = None  # the PBX's clock; None: as long as the connection lasts

    def record(self, now: float) -> records.Registration:
        """As the control socket tells it: expires_in seconds from `now`, for a UDP one."""
        left = None if self.expires_at is None else round(self.expires_at - now, 3)
        return records.Registration(self.transport, format_endpoint(self.address), self.since, left)


class RelayLeg(asyncio.DatagramProtocol):
    """One side of a relayed call: a UDP port that latches onto its phone's first packet."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.other: RelayLeg | None = None
        self.latched: Endpoint | None = None
        self.received = 0
        self.forwarded = 0
        self.dropped = 0  # arrived before the other side had sent anything to latch onto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.latched is None:
            self.latched = (addr[0], addr[1])
        elif (addr[0], addr[1]) != self.latched:
            self.dropped += 1  # latched: nobody else speaks for this side
            return
        self.received += 1
        other = self.other
        if other is None or other.latched is None or other.transport is None:
            self.dropped += 1
            return
        other.transport.sendto(data, other.latched)
        self.forwarded += 1

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def as_json(self) -> dict:
        return {
            "port": self.port,
            "latched": format_endpoint(self.latched) if self.latched else None,
            "received": self.received,
            "forwarded": self.forwarded,
            "dropped": self.dropped,
        }

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Call:
    id: str
    caller: str
    callee: str
    answered: bool = False
    ended: bool = False
    legs: tuple[RelayLeg, RelayLeg] | None = None  # (caller's, callee's) when relayed
    ringing: bool = False  # the callee said anything about the call
    # What the PBX sent each phone about this call in progress: sent again if the phone
    # registers anew, as its old connection may have died with them (a phone ignores repeats).
    sent: dict[str, list[dict]] = field(default_factory=dict)

    def other(self, name: str) -> str:
        return self.callee if name == self.caller else self.caller

    def as_json(self) -> dict:
        out: dict = {
            "caller": self.caller,
            "callee": self.callee,
            "ringing": self.ringing,
            "answered": self.answered,
            "ended": self.ended,
        }
        if self.legs:
            out["relay"] = {"caller": self.legs[0].as_json(), "callee": self.legs[1].as_json()}
        return out

    def close(self) -> None:
        for leg in self.legs or ():
            leg.close()


@dataclass
class PbxConfig:
    name: str
    address: IPv4Address
    control: Path
    port: int = SIP_PORT
    tls_port: int | None = None
    ca: Path | None = None
    public: IPv4Address | None = None
    relay_ports: tuple[int, int] | None = None
    relay_public_offset: int = 0
    local: tuple[IPv4Network, ...] = ()
    relay: str | frozenset[str] = "none"


class Pbx:
    def __init__(self, config: PbxConfig) -> None:
        self.config = config
        self.registrations: dict[str, Registration] = {}
        self.calls: dict[str, Call] = {}
        self.relay_policy = config.relay
        self._tasks: set[asyncio.Task] = set()
        self._datagrams: asyncio.Task | None = None  # held: the loop keeps tasks weakly
        self.udp_address: Endpoint | None = None  # where UDP phones register, once started
        self.listening: list[str] = []
        self.clock = time.monotonic  # registration expiry and stranger buckets; a test may turn it
        self.strangers = TokenBuckets(STRANGER_RATE, STRANGER_BURST)
        self.counters = dict.fromkeys(
            ("datagrams", "errors_sent", "unanswered_errors", "unanswered_throttled"), 0
        )
        self._next_port = 0

    # -- listening -------------------------------------------------------------------------

    async def start(self) -> list[asyncio.Server | asyncio.BaseTransport]:
        """Listen for phones and on the control socket; self.listening says on what."""
        config = self.config
        host = str(config.address)
        servers: list[asyncio.Server | asyncio.BaseTransport] = [
            await asyncio.start_server(
                lambda r, w: self.serve_phone(r, w, "tcp"), host, config.port, limit=MAX_LINE
            )
        ]
        udp, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            DatagramInbox, local_addr=(host, config.port)
        )
        servers.append(udp)
        self.udp_address = udp.get_extra_info("sockname")[:2]
        self._datagrams = asyncio.create_task(self.serve_datagrams(inbox))
        self.listening = [f"tcp {host}:{config.port}", f"udp {format_endpoint(self.udp_address)}"]
        if config.tls_port is not None and config.ca is not None:
            context = tls.server_context(config.ca, config.name)
            servers.append(
                await asyncio.start_server(
                    lambda r, w: self.serve_phone(r, w, "tls"),
                    host,
                    config.tls_port,
                    ssl=context,
                    limit=MAX_LINE,
                    ssl_handshake_timeout=5.0,
                )
            )
            self.listening.append(f"tls {host}:{config.tls_port}")
        servers.append(await serve_control(config.control, self.control))
        return servers

    # -- phones ----------------------------------------------------------------------------

    async def serve_phone(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        peer = writer.get_extra_info("peername")
        address = (peer[0], peer[1])
        registration: Registration | None = None
        try:
            while True:
                message = await asyncio.wait_for(read_message(reader), EXPIRES)
                if message is None:
                    break
                if message["type"] == "register":
                    holder = None
                    if transport == "tls":
                        holder = tls.common_name(writer.get_extra_info("peercert"))
                    link = StreamLink(writer)
                    registration = self.register(message["name"], link, transport, address, holder)
                    if registration is None:
                        break
                elif registration is None or self.registrations.get(registration.name) is not (
                    registration
                ):
                    if message["type"] != "error":  # an error is never answered with one
                        write_message(writer, _error(NOT_REGISTERED, message.get("call")))
                else:
                    await self.route(registration.name, message)
                await writer.drain()
        except (SignallingError, OSError, ssl.SSLError, TimeoutError) as error:
            if not (isinstance(error, SignallingError) and error.kind == "error"):
                with contextlib.suppress(OSError):
                    write_message(writer, _error(str(error)))
        finally:
            if registration is not None and self.registrations.get(registration.name) is (
                registration
            ):
                del self.registrations[registration.name]
                print(f"unregistered {registration.name}", flush=True)
            writer.close()

    async def serve_datagrams(self, inbox: DatagramInbox) -> None:
        """UDP phones, one datagram at a time, in the order they came."""
        while True:
            message, source = await inbox.queue.get()
            if message is None:
                return
            if source is None:  # an ICMP error: the datagram it answers is lost, as UDP allows
                continue
            self.counters["datagrams"] += 1
            link = DatagramLink(inbox, source)
            try:
                if isinstance(message, Exception):
                    raise message
                if message["type"] == "register":
                    self.register(message["name"], link, "udp", source)
                elif (name := self.sender(source)) is None:
                    self.refuse(link, message["type"], _error(NOT_REGISTERED, message.get("call")))
                else:
                    await self.route(name, message)
            except SignallingError as error:  # that datagram's trouble, not the PBX's
                self.refuse(link, error.kind, _error(str(error)))
            except OSError as error:
                self.refuse(link, None, _error(str(error)))

    def refuse(self, link: DatagramLink, kind: object, error: dict) -> None:
        """Answer a UDP datagram with `error`: never an error, a stranger only so often."""
        if kind == "error":
            self.counters["unanswered_errors"] += 1
            return
        stranger = self.sender(link.address) is None
        if stranger and not self.strangers.take(link.address[0], self.clock()):
            self.counters["unanswered_throttled"] += 1
            return
        self.counters["errors_sent"] += 1
        link.send(error)

    def register(
        self,
        name: str,
        link: Link,
        transport: str,
        address: Endpoint,
        certificate: str | None = None,
    ) -> Registration | None:
        """Accept a phone, replacing any older registration of the name; None if refused.

        certificate: the CN of the phone's TLS certificate, which must be the name.
        """
        if transport == "tls" and certificate != name:
            link.send(_error(f"certificate CN '{certificate}' does not match the name '{name}'"))
            print(f"refused {name}: certificate of {certificate}", flush=True)
            return None
        old = self.registration(name)
        expires_at = self.clock() + EXPIRES if transport == "udp" else None
        registration = Registration(name, link, transport, address, expires_at=expires_at)
        self.registrations[name] = registration
        link.send({"type": "registered", "expires": EXPIRES})
        if old is not None and old.link == link:
            return registration  # a refresh: nothing else changed
        if old is not None:
            old.link.close()
        print(f"registered {name} over {transport} from {format_endpoint(address)}", flush=True)
        for call in self.calls.values():
            for message in call.sent.get(name, []) if not call.ended else []:
                link.send(message)
        return registration

    def registration(self, name: str) -> Registration | None:
        """The phone's registration, unless it expired (then it is forgotten)."""
        registration = self.registrations.get(name)
        if registration is None or registration.expires_at is None:
            return registration
        if registration.expires_at > self.clock():
            return registration
        del self.registrations[name]
        print(f"registration of {name} over {registration.transport} expired", flush=True)
        return None

    def sender(self, source: Endpoint) -> str | None:
        """The phone whose UDP registration holds this source address."""
        for name, registration in list(self.registrations.items()):
            if registration.transport == "udp" and registration.address == source:
                return name if self.registration(name) is not None else None
        return None

    def send(self, name: str, message: dict) -> bool:
        registration = self.registration(name)
        if registration is None:
            return False
        registration.link.send(message)
        return True

    async def route(self, name: str, message: dict) -> None:
        """One message from a registered phone; a bad offer fails its call, not the phone."""
        kind = message["type"]
        try:
            if kind == "keepalive":
                self.send(name, {"type": "keepalive"})
            elif kind == "invite":
                await self.invite(name, message)
            elif kind in ("ringing", "answer", "bye", "stats", "error"):
                self.follow(name, message)
            else:
                self.send(name, _error(f"a phone does not send {kind}", message.get("call")))
        except SignallingError as error:
            self.send(name, _error(str(error), message.get("call")))

    async def invite(self, caller: str, message: dict) -> None:
        call_id, callee = message["call"], message.get("to")
        if not isinstance(callee, str) or self.registration(callee) is None:
            self.send(caller, _error(NOT_REGISTERED, call_id))
            return
        if call_id in self.calls:
            self.send(caller, _error("call id in use", call_id))
            return
        offer = Sdp.from_json(message["offer"])
        legs = None
        if self.relayed(message.get("mode"), caller, callee):
            legs = await self.open_relay()
            if legs is None and message.get("mode") == "relay":
                self.send(caller, _error("no free media relay port", call_id))
                return
        if legs is not None:
            offer = offer.with_relay(self.relay_address(callee, legs[1]))
        invite = {
            "type": "invite",
            "call": call_id,
            "from": caller,
            "mode": message.get("mode", "ice"),
            "seconds": message.get("seconds"),
            "offer": offer.as_json(),
        }
        call = self.calls[call_id] = Call(call_id, caller, callee, legs=legs)
        self.send_in(call, callee, invite)
        registration = self.registration(callee)
        if registration is not None and registration.transport == "udp":
            self._spawn(self.ring(call, invite, registration.address))

    async def ring(self, call: Call, invite: dict, address: Endpoint) -> None:
        """Over UDP, send the invite again until the callee speaks; else tell the caller."""
        for number, wait in enumerate(RING_WAITS):
            if number:
                self.send(call.callee, invite)
            await asyncio.sleep(wait)
            if call.ringing or call.ended:
                return
        reason = (
            f"{call.callee} did not answer {len(RING_WAITS)} invites sent over udp to "
            f"{format_endpoint(address)}, where it registered"
        )
        print(f"call {call.id}: {reason}", flush=True)
        self.end(call)
        self.send(call.caller, _error(reason, call.id))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def follow(self, name: str, message: dict) -> None:
        """Answer, bye, stats and errors within a call go to its other phone."""
        call = self.calls.get(message.get("call", ""))
        if call is None or name not in (call.caller, call.callee):
            if message["type"] != "error":
                self.send(name, _error("no such call", message.get("call")))
            return
        forwarded = dict(message)
        if name == call.callee:
            call.ringing = True
        if message["type"] == "answer" and name == call.callee:
            call.answered = True
            if call.legs is not None:
                answer = Sdp.from_json(message["answer"])
                forwarded["answer"] = answer.with_relay(
                    self.relay_address(call.caller, call.legs[0])
                ).as_json()
        if message["type"] in ("bye", "error"):
            self.end(call)
        self.send_in(call, call.other(name), forwarded)

    def end(self, call: Call) -> None:
        """The call is over; its state (and relay) stays a while, for the RTP counts."""
        if not call.ended:
            call.ended = True
            asyncio.get_running_loop().call_later(CALL_LINGER, self.forget, call.id)

    def send_in(self, call: Call, name: str, message: dict) -> None:
        call.sent.setdefault(name, []).append(message)
        self.send(name, message)

    def forget(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            call.close()

    # -- media relay -----------------------------------------------------------------------

    def relayed(self, mode: object, caller: str, callee: str) -> bool:
        if mode == "relay":
            return True
        policy = self.relay_policy
        if policy == "all":
            return True
        if policy == "remote":
            return self.remote(caller) or self.remote(callee)
        return isinstance(policy, frozenset) and bool(policy & {caller, callee})

    def remote(self, name: str) -> bool:
        """Does the phone reach the PBX from outside its own networks?"""
        registration = self.registration(name)
        if registration is None:
            return True
        source = ip_address(registration.address[0])
        return not any(source in network for network in self.config.local)

    def relay_address(self, name: str, leg: RelayLeg) -> Endpoint:
        """Where the phone must send its RTP for this leg: the PBX itself, or the public side."""
        public = self.config.public
        if public is None or not self.remote(name):
            return str(self.config.address), leg.port
        return str(public), leg.port + self.config.relay_public_offset

    async def open_relay(self) -> tuple[RelayLeg, RelayLeg] | None:
        """Two legs, joined; None (and the call goes unrelayed) when no port is free."""
        loop = asyncio.get_running_loop()
        legs = []
        for _ in range(2):
            leg = RelayLeg()
            for port in self._candidate_ports():
                try:
                    sock = _udp_socket(self.config.address, port)
                except OSError:
                    continue
                await loop.create_datagram_endpoint(lambda leg=leg: leg, sock=sock)
                break
            if leg.transport is None:
                for opened in legs:
                    opened.close()
                print("relay: no free port", flush=True)
                return None
            legs.append(leg)
        legs[0].other, legs[1].other = legs[1], legs[0]
        return legs[0], legs[1]

    def _candidate_ports(self) -> list[int]:
        """The relay range, starting after the last port handed out; [0] without a range."""
        if self.config.relay_ports is None:
            return [0]
        low, high = self.config.relay_ports
        size = high - low + 1
        ports = [low + (self._next_port + i) % size for i in range(size)]
        self._next_port = (self._next_port + 1) % size
        return ports

    # -- control ---------------------------------------------------------------------------

    async def control(self, request: dict) -> dict:
        asked = request_from_json(request, PBX_REQUESTS)
        if isinstance(asked, PingRequest):
            return PbxPong(self.config.name).to_json()
        if isinstance(asked, RegistrationsRequest):
            live = [r for name in list(self.registrations) if (r := self.registration(name))]
            now = self.clock()
            return Registrations({r.name: r.record(now) for r in live}).to_json()
        if isinstance(asked, CallsRequest):
            return PbxCalls({i: c.as_json() for i, c in self.calls.items()}).to_json()
        if isinstance(asked, CountersRequest):
            return Counters(dict(self.counters)).to_json()
        assert isinstance(asked, RelayRequest)
        self.relay_policy = parse_policy(asked.phones)
        return RelayAnswer(_policy_json(self.relay_policy)).to_json()


def _udp_socket(address: IPv4Address, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((str(address), port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _error(reason: str, call: object = None) -> dict:
    message: dict = {"type": "error", "reason": reason}
    if isinstance(call, str):
        message["call"] = call
    return message


def parse_policy(value: object) -> str | frozenset[str]:
    """ "all", "remote", "none", a list of phone names, or "a,b" from the command line."""
    if isinstance(value, str) and value in RELAY_POLICIES:
        return value
    if isinstance(value, str):
        value = [name for name in value.split(",") if name]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return frozenset(value)
    raise ValueError(f"relay policy must be one of {RELAY_POLICIES} or a list of phones: {value!r}")


def _policy_json(policy: str | frozenset[str]) -> str | list[str]:
    return policy if isinstance(policy, str) else sorted(policy)


async def serve(config: PbxConfig) -> None:
    pbx = Pbx(config)
    servers = await pbx.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print("ready", *pbx.listening, flush=True)
    await stopped.wait()
    for server in servers:
        server.close()
    for call in pbx.calls.values():
        call.close()
    config.control.unlink(missing_ok=True)


def run(config: PbxConfig) -> int:
    """The PBX's process: serve until SIGTERM."""
    asyncio.run(serve(config))
    return 0
