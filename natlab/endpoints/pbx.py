"""The lab's PBX: registrar, call signalling and an optional media relay, inside its node.

    python -m natlab.endpoints.pbx --name pbx --address 10.0.0.2 --control PBX.sock
        [--port 5060] [--tls-port 5061 --ca DIR] [--public 203.0.113.1]
        [--relay-ports 40000-40099] [--relay-public-offset 0] [--local 10.0.0.0/24]
        [--relay none|all|remote|PHONE,PHONE]

Phones register over TCP (plain, or TLS with a certificate of the lab's CA
whose CN must be the name they register: a phone holding another phone's
certificate is refused, as field certificate registration does) and keep
the connection alive; the PBX routes invites, answers, byes and the RTP
counts the phones exchange at the end of a call (signalling.py).

The media relay is an SBC's: for a relayed call the PBX opens one UDP port
per side, writes it into the offer and answer it forwards, and latches each
port onto the address that side's RTP really comes from, so a phone behind
any NAT is reached through the mapping its own packets opened. A phone on
one of the PBX's own networks (--local) gets the PBX's address; others get
the public one (--public: the router that forwards --relay-ports to it).
A call is relayed when its mode is "relay", or when the relay policy
(--relay, or the control request {"op": "relay", "phones": ...}) covers one
of its phones.

Control socket requests: {"op": "registrations"}, {"op": "calls"},
{"op": "relay", "phones": "all"|"remote"|"none"|[names]}, {"op": "ping"}.
Prints "ready ..." once it listens; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import cast

from natlab.endpoints import tls
from natlab.endpoints.signalling import (
    MAX_LINE,
    Endpoint,
    Sdp,
    SignallingError,
    format_endpoint,
    read_message,
    serve_control,
    write_message,
)

SIP_PORT = 5060  # plain TCP
SIPS_PORT = 5061  # TLS
EXPIRES = 60  # seconds a registration lives without a word from its phone
CALL_LINGER = 10.0  # seconds a call's state (and relay) outlives its bye, for the RTP counts
RELAY_POLICIES = ("none", "all", "remote")


@dataclass
class Registration:
    name: str
    writer: asyncio.StreamWriter
    transport: str  # "tcp" | "tls"
    address: Endpoint  # where the phone's connection comes from, as the PBX sees it
    since: float = field(default_factory=time.time)

    def as_json(self) -> dict:
        return {
            "since": self.since,
            "transport": self.transport,
            "address": format_endpoint(self.address),
        }


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
    # What the PBX sent each phone about this call in progress: sent again if the phone
    # registers anew, as its old connection may have died with them (a phone ignores repeats).
    sent: dict[str, list[dict]] = field(default_factory=dict)

    def other(self, name: str) -> str:
        return self.callee if name == self.caller else self.caller

    def as_json(self) -> dict:
        out: dict = {
            "caller": self.caller,
            "callee": self.callee,
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
        self.listening: list[str] = []
        self._next_port = 0

    # -- listening -------------------------------------------------------------------------

    async def start(self) -> list[asyncio.Server]:
        """Listen for phones and on the control socket; self.listening says on what."""
        config = self.config
        host = str(config.address)
        self.listening = [f"tcp {host}:{config.port}"]
        servers = [
            await asyncio.start_server(
                lambda r, w: self.serve_phone(r, w, "tcp"), host, config.port, limit=MAX_LINE
            )
        ]
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
                    registration = self.register(message["name"], writer, transport, address)
                    if registration is None:
                        break
                elif registration is None or self.registrations.get(registration.name) is not (
                    registration
                ):
                    write_message(writer, _error("not registered", message.get("call")))
                else:
                    await self.route(registration.name, message)
                await writer.drain()
        except (SignallingError, OSError, ssl.SSLError, TimeoutError) as error:
            with contextlib.suppress(OSError):
                write_message(writer, _error(str(error)))
        finally:
            if registration is not None and self.registrations.get(registration.name) is (
                registration
            ):
                del self.registrations[registration.name]
                print(f"unregistered {registration.name}", flush=True)
            writer.close()

    def register(
        self, name: str, writer: asyncio.StreamWriter, transport: str, address: Endpoint
    ) -> Registration | None:
        """Accept a phone, replacing any older registration of the name; None if refused."""
        if transport == "tls":
            holder = tls.common_name(writer.get_extra_info("peercert"))
            if holder != name:
                write_message(
                    writer,
                    _error(f"certificate CN '{holder}' does not match the name '{name}'"),
                )
                print(f"refused {name}: certificate of {holder}", flush=True)
                return None
        old = self.registrations.get(name)
        registration = Registration(name, writer, transport, address)
        self.registrations[name] = registration
        if old is not None and old.writer is not writer:
            old.writer.close()
        write_message(writer, {"type": "registered", "expires": EXPIRES})
        print(f"registered {name} over {transport} from {format_endpoint(address)}", flush=True)
        for call in self.calls.values():
            for message in call.sent.get(name, []) if not call.ended else []:
                write_message(writer, message)
        return registration

    def send(self, name: str, message: dict) -> bool:
        registration = self.registrations.get(name)
        if registration is None:
            return False
        write_message(registration.writer, message)
        return True

    async def route(self, name: str, message: dict) -> None:
        """One message from a registered phone; a bad offer fails its call, not the phone."""
        kind = message["type"]
        try:
            if kind == "keepalive":
                self.send(name, {"type": "keepalive"})
            elif kind == "invite":
                await self.invite(name, message)
            elif kind in ("answer", "bye", "stats", "error"):
                self.follow(name, message)
            else:
                self.send(name, _error(f"a phone does not send {kind}", message.get("call")))
        except SignallingError as error:
            self.send(name, _error(str(error), message.get("call")))

    async def invite(self, caller: str, message: dict) -> None:
        call_id, callee = message["call"], message.get("to")
        if not isinstance(callee, str) or callee not in self.registrations:
            self.send(caller, _error("not registered", call_id))
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

    def follow(self, name: str, message: dict) -> None:
        """Answer, bye, stats and errors within a call go to its other phone."""
        call = self.calls.get(message.get("call", ""))
        if call is None or name not in (call.caller, call.callee):
            if message["type"] != "error":
                self.send(name, _error("no such call", message.get("call")))
            return
        forwarded = dict(message)
        if message["type"] == "answer" and name == call.callee:
            call.answered = True
            if call.legs is not None:
                answer = Sdp.from_json(message["answer"])
                forwarded["answer"] = answer.with_relay(
                    self.relay_address(call.caller, call.legs[0])
                ).as_json()
        if message["type"] in ("bye", "error") and not call.ended:
            call.ended = True
            asyncio.get_running_loop().call_later(CALL_LINGER, self.forget, call.id)
        self.send_in(call, call.other(name), forwarded)

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
        registration = self.registrations.get(name)
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
        op = request.get("op")
        if op == "ping":
            return {"pbx": self.config.name}
        if op == "registrations":
            return {"registrations": {n: r.as_json() for n, r in self.registrations.items()}}
        if op == "calls":
            return {"calls": {i: c.as_json() for i, c in self.calls.items()}}
        if op == "relay":
            self.relay_policy = parse_policy(request.get("phones"))
            return {"relay": _policy_json(self.relay_policy)}
        raise ValueError(f"unknown request {op!r}")


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


def _port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m natlab.endpoints.pbx", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", required=True, type=IPv4Address)
    parser.add_argument("--control", required=True, type=Path)
    parser.add_argument("--port", type=int, default=SIP_PORT)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--ca", type=Path, help="the lab's CA directory (for TLS)")
    parser.add_argument("--public", type=IPv4Address, help="the address remote phones reach")
    parser.add_argument("--relay-ports", type=_port_range, help="LOW-HIGH: media relay ports")
    parser.add_argument("--relay-public-offset", type=int, default=0)
    parser.add_argument("--local", type=IPv4Network, action="append", default=[])
    parser.add_argument("--relay", type=parse_policy, default="none")
    args = parser.parse_args(argv)
    config = PbxConfig(
        name=args.name,
        address=args.address,
        control=args.control,
        port=args.port,
        tls_port=args.tls_port,
        ca=args.ca,
        public=args.public,
        relay_ports=args.relay_ports,
        relay_public_offset=args.relay_public_offset,
        local=tuple(args.local),
        relay=args.relay,
    )
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
