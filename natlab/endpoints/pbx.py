"""The lab's PBX: a SIP registrar and record-routing proxy (RFC 3261), with an optional
media relay, inside its node.

The lab forks it into its node with its PbxConfig (run(config)): its
address and ports, the lab's CA for TLS, its public address and relay
ports when a router forwards them, its local networks and relay policy,
the phones' SIP passwords, and whether it is NAT-aware.

Phones REGISTER over UDP, TCP (the same port, 5060) or TLS (5061, with a
certificate of the lab's CA whose CN must be the user they register: a
phone holding another phone's certificate gets 403, as field certificate
registration does). A REGISTER is challenged with a digest (401 with
WWW-Authenticate, MD5, qop=auth); the one that answers it with the phone's
password binds the user for its Expires (at most EXPIRES seconds), a wrong
password gets 403. Over TCP and TLS the registration lasts as long as the
connection; the PBX answers the phones' double-CRLF pings with a CRLF (over UDP too).

NAT-aware (the default, as real registrars do): the PBX notes in each
request's top Via where it really came from (received, rport: RFC 3581),
answers there, and routes a phone's calls to the source its REGISTER came
from (over TCP and TLS: down that very connection), whatever its Contact
says. `nat_aware: false` makes it a naive registrar of RFC 3261 alone: it
answers UDP requests at the Via's sent-by port and sends INVITEs to the
Contact the phone registered (over TCP and TLS on a connection it opens
there, unless one is open: RFC 3261 18.1.1) - a private address behind NAT,
so those calls fail, which is what the lab shows with it.

TCP and TLS connections, the phones' and those the PBX opens, are served by
sip_transport.StreamListener, bounded as it says.

Calls: an INVITE for a registered user is answered 100 Trying and sent on
with the PBX's Via and two Record-Routes (one as each side dialled it:
RFC 5658), so ACK and BYE come through it too; responses follow the Vias
back. Unknown user: 404; known but not registered: 480; callee already in a
call: 486 (from the phone); CANCEL before the answer: 487. Over UDP, as
SIP's timer A does, the PBX sends the INVITE again until the callee answers
anything, and tells the caller (408) when it never did: nothing tells the
PBX that the NAT in between forgot the mapping. A phone that registers
anew gets again what the PBX sent it about calls in progress (its old
connection may have died with them; a phone ignores repeats).

What is not SIP (natlab.sip's strict codec) is answered 400 when it is a
request the PBX could read far enough to answer, and dropped with a count
otherwise; responses, ACKs and anything from a stranger over UDP beyond
STRANGER_BURST at once and STRANGER_RATE a second are never answered with
an error (a forged source makes the PBX answer whoever it names).

The media relay is an SBC's: for a relayed call the PBX opens one UDP port
per side, rewrites the offer and answer it forwards to point at it
(sdp_offer.relay_sdp), and latches each port onto the address that side's
RTP really comes from, so a phone behind any NAT is reached through the
mapping its own packets opened. A phone on one of the PBX's own networks
(`local`) gets the PBX's address; others get the public one (`public`: the
router that forwards `relay_ports` to it). A call is relayed when its mode
is "relay", or when the relay policy (`relay`, or the control request
{"op": "relay", "phones": ...}) covers one of its phones: "all", "remote"
(from outside the PBX's networks), "nat" (behind NAT, as a NAT-aware SBC
anchors media: the Contact, top Via or SDP c= of its REGISTER or of the
INVITE it sends names an address other than the source: nat_detection), a
list of names, or "none". `calls` says why each call was relayed (or, under
"nat", why not).

Control socket requests: {"op": "registrations"} (a UDP one with its
"expires_in" seconds), {"op": "calls"}, {"op": "counters"} (datagrams
received, errors sent back, what was left unanswered, by why),
{"op": "relay", "phones": "all"|"remote"|"nat"|"none"|[names]}, {"op": "ping"}.
Prints "ready ..." once it listens; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import signal
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import Any, Protocol, cast

from natlab import records
from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints import tls
from natlab.endpoints.control import serve_control
from natlab.endpoints.nat_detection import NatEvidence, behind_nat
from natlab.endpoints.ratelimit import TokenBuckets
from natlab.endpoints.sdp_offer import relay_sdp
from natlab.endpoints.sip_transport import (
    PONG,
    Arrival,
    DatagramInbox,
    Endpoint,
    Garbled,
    Keepalive,
    StreamFlow,
    StreamListener,
    connect_stream,
    format_endpoint,
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
from natlab.sip import digest
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via, asked_expiry
from natlab.sip.message import RequestLine, SipMessage
from natlab.sip.salvage import bad_request

SIP_PORT = 5060  # UDP and plain TCP
SIPS_PORT = 5061  # TLS
EXPIRES = 60  # seconds a registration lives at most without a new REGISTER (UDP)
RING_WAITS = (0.25, 0.5, 1.0)  # over UDP: an INVITE is sent again after each wait but the last
CALL_LINGER = 10.0  # seconds a call's state (and relay) outlives its BYE, for the RTP counts
RELAY_POLICIES = ("none", "all", "remote", "nat")
STRANGER_BURST = 5  # errors a stranger's address gets at once over UDP...
STRANGER_RATE = 1.0  # ...and then per second
REALM = "natlab"
NONCE_LIFE = 300.0  # seconds a digest challenge may be answered
MAX_NONCES = 10_000
MAX_TRANSACTIONS = 10_000
CONNECT_TIMEOUT = 2.0  # seconds to open a connection to a phone's Contact (naive, TCP and TLS)


class Flow(Protocol):
    """How the PBX reaches a peer: the connection it came on, or the UDP socket to its source."""

    transport: str
    address: Endpoint

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class DatagramFlow:
    """The PBX's UDP socket, towards one address."""

    inbox: DatagramInbox
    address: Endpoint
    transport: str = "udp"

    def send(self, data: bytes) -> None:
        self.inbox.send(data, self.address)

    def close(self) -> None:
        """The socket is every UDP phone's: nothing of this phone's to close."""


@dataclass
class Registration:
    name: str
    flow: Flow
    transport: str  # "tcp" | "tls" | "udp"
    address: Endpoint  # where the phone's messages come from, as the PBX sees it
    contact: SipUri  # where the phone says it is (its private address, behind NAT)
    dialled: str  # host[:port] the phone dialled the PBX at: its side of a Record-Route
    since: float = field(default_factory=time.time)
    expires_at: float | None = None  # the PBX's clock; None: as long as the connection lasts
    nat: NatEvidence | None = None  # what gave away a NAT in front of the phone, if anything did

    def record(self, now: float) -> records.Registration:
        """As the control socket tells it: expires_in seconds from `now`, for a UDP one."""
        left = None if self.expires_at is None else round(self.expires_at - now, 3)
        return records.Registration(self.transport, format_endpoint(self.address), self.since, left)

    def route(self) -> str:
        transport = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{self.dialled}{transport};lr>"


@dataclass
class Transaction:
    """A request the PBX sent on: where its responses go back to."""

    origin: Flow
    call: str
    method: str
    request: SipMessage  # as it came, for a naive answer to its Via and a CANCEL's 487


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
    ringing: bool = False  # the callee answered the INVITE with anything
    invite: SipMessage | None = None  # as sent on to the callee, for timer A, CANCEL and ACK
    branch: str = ""  # its Via branch
    # What the PBX sent each phone about this call in progress: sent again if the phone
    # registers anew, as its old connection may have died with them (a phone ignores repeats).
    sent: dict[str, list[bytes]] = field(default_factory=dict)
    media: str = ""  # why the PBX relayed its media, or why not under relay: nat

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
        if self.media:
            out["media"] = self.media
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
    passwords: dict[str, str] = field(default_factory=dict)  # the lab's users; others: default
    nat_aware: bool = True


class Pbx:
    def __init__(self, config: PbxConfig) -> None:
        self.config = config
        self.registrations: dict[str, Registration] = {}
        self.calls: dict[str, Call] = {}
        self.transactions: OrderedDict[str, Transaction] = OrderedDict()
        self.nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> when it was given
        self.relay_policy = config.relay
        self._tasks: set[asyncio.Task] = set()
        self._datagrams: asyncio.Task | None = None  # held: the loop keeps tasks weakly
        self.udp: DatagramInbox | None = None
        self.udp_address: Endpoint | None = None  # where UDP phones register, once started
        self.streams = StreamListener(
            lambda arrival, flow: self.handle(arrival, flow, flow.certificate),
            self.disconnected,
            idle=EXPIRES,  # a connection silent longer than a registration lives carries none
        )
        self.connections = self.streams.flows  # open TCP/TLS flows by their peer's address
        self.connecting: dict[Endpoint, list[bytes]] = {}  # what waits for a connection we open
        self.listening: list[str] = []
        self.clock = time.monotonic  # registration expiry and stranger buckets; a test may turn it
        self.strangers = TokenBuckets(STRANGER_RATE, STRANGER_BURST)
        self.counters = dict.fromkeys(
            (
                "datagrams",
                "errors_sent",
                "unanswered_errors",
                "unanswered_throttled",
                "malformed",
                "malformed_answered",
            ),
            0,
        )
        self.own_hosts = {str(config.address)} | ({str(config.public)} if config.public else set())
        self._next_port = 0
        self.port = config.port  # the SIP port it listens on, once started (config's may be 0)

    # -- listening -------------------------------------------------------------------------

    async def start(self) -> list[asyncio.Server | asyncio.BaseTransport]:
        """Listen for phones and on the control socket; self.listening says on what."""
        config = self.config
        host = str(config.address)
        servers: list[asyncio.Server | asyncio.BaseTransport] = [
            await self.streams.listen(host, config.port, "tcp")
        ]
        self.port = port = servers[0].sockets[0].getsockname()[1]  # type: ignore[union-attr]
        udp, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            DatagramInbox, local_addr=(host, port)
        )
        servers.append(udp)
        self.udp = inbox
        self.udp_address = udp.get_extra_info("sockname")[:2]
        self._datagrams = asyncio.create_task(self.serve_datagrams(inbox))
        self.listening = [f"tcp {host}:{port}", f"udp {format_endpoint(self.udp_address)}"]
        if config.tls_port is not None and config.ca is not None:
            context = tls.server_context(config.ca, config.name)
            servers.append(await self.streams.listen(host, config.tls_port, "tls", context))
            self.listening.append(f"tls {host}:{config.tls_port}")
        servers.append(await serve_control(config.control, self.control))
        return servers

    def disconnected(self, flow: StreamFlow) -> None:
        """A TCP or TLS connection ended: the registrations it carried end with it."""
        for name, registration in list(self.registrations.items()):
            if registration.flow == flow:
                del self.registrations[name]
                print(f"unregistered {name}", flush=True)

    async def serve_datagrams(self, inbox: DatagramInbox) -> None:
        """UDP, one datagram at a time, in the order they came."""
        while True:
            arrival, source = await inbox.queue.get()
            if arrival is None:
                return
            if source is None or isinstance(arrival, OSError):
                continue  # an ICMP error: the datagram it answers is lost, as UDP allows
            self.counters["datagrams"] += 1
            await self.handle(arrival, DatagramFlow(inbox, source))

    # -- what arrives ----------------------------------------------------------------------

    async def handle(self, arrival: Arrival, flow: Flow, certificate: str | None = None) -> None:
        """One arrival from a peer; whatever it is, the PBX goes on."""
        if isinstance(arrival, Keepalive):
            if arrival.ping:
                flow.send(PONG)
            return
        if isinstance(arrival, Garbled):
            self.garbled(arrival, flow)
            return
        try:
            if arrival.is_request:
                await self.request(arrival, flow, certificate)
            else:
                self.response(arrival)
        except SipError as error:  # a header the codec let by but this request cannot use
            if arrival.is_request and arrival.start.method != "ACK":  # type: ignore[union-attr]
                self.answer(flow, arrival, 400, f"Bad Request ({error.reason})")
            else:
                self.counters["unanswered_errors"] += 1

    def garbled(self, garbled: Garbled, flow: Flow) -> None:
        """400 to a request the PBX could read far enough to answer; else drop it, counted."""
        self.counters["malformed"] += 1
        answer = bad_request(garbled.data, garbled.reason)
        print(f"malformed SIP from {format_endpoint(flow.address)}: {garbled.reason}", flush=True)
        if answer is None:
            self.counters["unanswered_errors"] += 1
            return
        if self.may_refuse(flow):
            self.counters["malformed_answered"] += 1
            flow.send(answer)

    def may_refuse(self, flow: Flow) -> bool:
        """An error to this flow now? Not to a UDP stranger beyond its bucket."""
        stranger = flow.transport == "udp" and self.sender(flow.address) is None
        if stranger and not self.strangers.take(flow.address[0], self.clock()):
            self.counters["unanswered_throttled"] += 1
            return False
        self.counters["errors_sent"] += 1
        return True

    def answer(
        self,
        flow: Flow,
        request: SipMessage,
        code: int,
        reason: str,
        headers: dialogs.Headers = (),
        body: bytes = b"",
    ) -> None:
        """A response of our own, to where the request came from (or its Via, if naive)."""
        # A challenge is how every registration starts, many phones behind one NAT at once.
        if code >= 300 and code != 401 and not self.may_refuse(flow):
            return
        response = dialogs.response(
            request, code, reason, to_tag=_tag_for(request), headers=headers, body=body
        )
        self.reply(flow, response)

    def reply(self, flow: Flow, response: SipMessage) -> None:
        """NAT-aware: to the source; naive over UDP: to the top Via's received, sent-by port."""
        if flow.transport == "udp" and not self.config.nat_aware and self.udp is not None:
            top = dialogs.top_via(response)
            host = top.received or top.host
            self.udp.send(response.to_bytes(), (host, top.port or SIP_PORT))
            return
        flow.send(response.to_bytes())

    async def request(self, request: SipMessage, flow: Flow, certificate: str | None) -> None:
        method = cast(RequestLine, request.start).method
        request = self.received(request, flow)
        if method == "REGISTER":
            self.register(request, flow, certificate)
        elif method == "ACK":
            self.in_dialog(request, flow)
        elif method == "CANCEL":
            self.cancel(request, flow)
        elif dialogs.tag_of(request, "To") is not None:
            self.in_dialog(request, flow)
        elif method == "INVITE":
            await self.invite(request, flow)
        elif method == "OPTIONS":
            self.answer(flow, request, 200, "OK", (("Allow", dialogs.ALLOW),))
        else:
            self.answer(flow, request, 405, "Method Not Allowed", (("Allow", dialogs.ALLOW),))

    def received(self, request: SipMessage, flow: Flow) -> SipMessage:
        """RFC 3261 18.2.1 received, and RFC 3581 rport when NAT-aware."""
        host, port = flow.address
        vias = request.values("Via")
        top = Via.parse(vias[0])
        if top.host != host:
            top = top.with_param("received", host)
        if self.config.nat_aware and top.rport is not None:
            top = top.with_param("rport", str(port))
        return dialogs.replace_vias(request, [str(top), *vias[1:]])

    # -- registrar -------------------------------------------------------------------------

    def register(self, request: SipMessage, flow: Flow, certificate: str | None) -> None:
        name = dialogs.user_of(request.get("To") or "")
        if not name:
            self.answer(flow, request, 400, "Bad Request (a REGISTER's To names no user)")
            return
        if flow.transport == "tls" and certificate != name:
            reason = f"Forbidden: certificate CN '{certificate}' does not match the name '{name}'"
            print(f"refused {name}: certificate of {certificate}", flush=True)
            self.answer(flow, request, 403, reason)
            return
        verdict = self.authenticated(request, name)
        if verdict is not None:
            code, reason, headers = verdict
            self.answer(flow, request, code, reason, headers)
            return
        contact = dialogs.contact_uri(request)
        asked = _asked_expiry(request)
        if asked == 0:
            old = self.registrations.get(name)
            if old is not None and old.flow == flow:
                del self.registrations[name]
            self.answer(flow, request, 200, "OK", (("Expires", "0"),))
            return
        if contact is None:
            self.answer(flow, request, 400, "Bad Request (a REGISTER without a Contact)")
            return
        expires = EXPIRES if asked is None else min(asked, EXPIRES)
        dialled = cast(RequestLine, request.start).uri.partition(":")[2].split(";")[0]
        self.own_hosts.add(dialled.rpartition(":")[0] or dialled)
        old = self.registration(name)
        expires_at = self.clock() + expires if flow.transport == "udp" else None
        registration = Registration(
            name, flow, flow.transport, flow.address, contact, dialled, expires_at=expires_at
        )
        registration.nat = behind_nat(request, flow.address[0])
        self.registrations[name] = registration
        granted = (
            ("Contact", f"<{contact}>;expires={expires}"),
            ("Expires", str(expires)),
        )
        self.answer(flow, request, 200, "OK", granted)
        if old is not None and old.flow == flow:
            return  # a refresh: nothing else changed
        if old is not None and old.transport != "udp":
            old.flow.close()
        print(
            f"registered {name} over {flow.transport} from {format_endpoint(flow.address)}",
            flush=True,
        )
        for call in self.calls.values():
            for data in call.sent.get(name, []) if not call.ended else []:
                self.deliver(name, data)

    def authenticated(
        self, request: SipMessage, name: str
    ) -> tuple[int, str, dialogs.Headers] | None:
        """None when the REGISTER answers a fresh challenge of ours; else what to answer."""
        now = self.clock()
        while self.nonces and now - next(iter(self.nonces.values())) > NONCE_LIFE:
            self.nonces.popitem(last=False)  # the oldest first: they were given in order
        value = request.get("Authorization")
        password = self.config.passwords.get(name, dialogs.DEFAULT_PASSWORD)
        if value is not None:
            credentials = digest.parse_credentials(value)
            given = self.nonces.get(credentials.nonce)
            if given is not None and credentials.username == name:
                challenge = digest.Challenge(REALM, credentials.nonce, credentials.algorithm)
                if digest.verify(
                    credentials, challenge=challenge, password=password, method="REGISTER"
                ):
                    return None
                return 403, f"Forbidden: wrong password for {name}", ()
            if given is not None:
                return (
                    403,
                    f"Forbidden: credentials of {credentials.username} to register {name}",
                    (),
                )
        nonce = secrets.token_hex(16)
        self.nonces[nonce] = now
        while len(self.nonces) > MAX_NONCES:
            self.nonces.popitem(last=False)
        challenge = digest.Challenge(REALM, nonce)
        return 401, "Unauthorized", (("WWW-Authenticate", challenge.to_header()),)

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

    def known(self, name: str) -> bool:
        return name in self.config.passwords or name in self.registrations

    def deliver(self, name: str, data: bytes) -> bool:
        """Send to a registered phone: NAT-aware, down its flow; naive, to its Contact."""
        registration = self.registration(name)
        if registration is None:
            return False
        if self.config.nat_aware:
            registration.flow.send(data)
            return True
        contact = registration.contact
        target = (contact.host, contact.port or SIP_PORT)
        if registration.transport == "udp" and self.udp is not None:
            self.udp.send(data, target)
            return True
        flow = self.connections.get(target)  # RFC 3261 18.1.1: a connection to that address...
        if flow is not None:
            flow.send(data)
        elif target in self.connecting:
            self.connecting[target].append(data)
        else:  # ...else a new one
            self.connecting[target] = [data]
            self._spawn(self.connect(name, target, registration.transport))
        return True

    async def connect(self, name: str, target: Endpoint, transport: str) -> None:
        """Open a connection to a phone's Contact, send what waits for it, and serve it.

        Over TLS the phone must show a certificate of the lab's CA for the address.
        When it cannot be reached, its calls that have not rung end 480.
        """
        host, port = target
        try:
            context = None
            if transport == "tls":
                if self.config.ca is None:
                    raise OSError("TLS needs the lab's CA, and this PBX was given none")
                context = tls.client_context(self.config.ca, self.config.name)
            reader, writer = await connect_stream(
                host, port, context, str(self.config.address), CONNECT_TIMEOUT
            )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            self.connecting.pop(target, None)
            reason = f"cannot reach {name} at {format_endpoint(target)} over {transport}"
            print(f"{reason}: {error.__class__.__name__} {error}", flush=True)
            self.unreachable(name, reason)
            return
        flow = StreamFlow(writer, transport, target)
        self.connections[target] = flow
        for data in self.connecting.pop(target, []):
            flow.send(data)
        await self.streams.read(reader, flow)

    def unreachable(self, name: str, reason: str) -> None:
        """The phone could not be reached: its calls that have not rung end, 480 to the caller."""
        for call in list(self.calls.values()):
            if call.callee != name or call.ringing or call.ended:
                continue
            self.end(call)
            transaction = self.transactions.get(call.branch)
            if transaction is not None:
                request = transaction.request
                self.answer(transaction.origin, request, 480, f"Temporarily Unavailable ({reason})")

    # -- proxy -----------------------------------------------------------------------------

    def forwarded(
        self,
        request: SipMessage,
        target: str,
        branch: str,
        transport: str,
        routes: tuple[str, ...] = (),
    ) -> SipMessage:
        """The request as the PBX sends it on: its Via on top, its Routes gone, hops counted."""
        hops = request.get("Max-Forwards")
        forwards = int(hops) - 1 if hops and hops.isdigit() else dialogs.MAX_FORWARDS
        if forwards < 0:
            raise _Refusal(483, "Too Many Hops")
        ours = dialogs.via(transport, str(self.config.address), self.port, branch)
        headers: list[tuple[str, str]] = [("Via", ours)]
        for name, value in request.headers:
            if name == "Route" and self.is_ours(value):
                continue
            if name == "Max-Forwards":
                value = str(forwards)
            headers.append((name, value))
        headers[1:1] = [("Record-Route", route) for route in routes]
        method = cast(RequestLine, request.start).method
        return replace(request, start=RequestLine(method, target), headers=tuple(headers))

    def is_ours(self, route: str) -> bool:
        with contextlib.suppress(SipError):
            return SipUri.parse(NameAddr.parse(route).uri).host in self.own_hosts
        return False

    async def invite(self, request: SipMessage, flow: Flow) -> None:
        call_id = request.get("Call-ID") or ""
        if call_id in self.calls:  # the caller's copy, sent again (UDP)
            if not self.calls[call_id].ended:
                self.answer(flow, request, 100, "Trying")
            return
        uri = SipUri.parse(cast(RequestLine, request.start).uri)
        caller = dialogs.user_of(request.get("From") or "") or ""
        callee = uri.user or ""
        try:
            if self.registration(caller) is None:
                raise _Refusal(403, f"Forbidden ({caller or 'the caller'} is not registered)")
            registration = self.registration(callee)
            if registration is None and not self.known(callee):
                raise _Refusal(404, f"Not Found ({callee} is no user here, not registered)")
            if registration is None:
                raise _Refusal(480, f"Temporarily Unavailable ({callee} is not registered)")
            self.answer(flow, request, 100, "Trying")
            await self.start_call(request, flow, caller, registration)
        except _Refusal as refusal:
            self.answer(flow, request, refusal.code, refusal.reason)

    async def start_call(
        self, request: SipMessage, flow: Flow, caller: str, callee: Registration
    ) -> None:
        call_id = request.get("Call-ID") or ""
        mode, _ = dialogs.read_call_header(request)
        legs = None
        body = request.body
        caller_registration = self.registrations[caller]
        caller_registration.nat = behind_nat(request, flow.address[0]) or caller_registration.nat
        why = self.relay_reason(mode, caller, callee.name)
        if why is not None:
            legs = await self.open_relay()
            if legs is None and mode == "relay":
                raise _Refusal(503, "Service Unavailable (no free media relay port)")
        if legs is not None and body:
            try:
                body = relay_sdp(body, self.relay_address(callee.name, legs[1]))
            except SipError as error:
                for leg in legs:
                    leg.close()
                raise _Refusal(488, f"Not Acceptable Here ({error.reason})") from None
        branch = _branch(request)
        routes = (callee.route(), caller_registration.route())
        sent = self.forwarded(
            replace(request, body=body), str(callee.contact), branch, callee.transport, routes
        )
        call = Call(call_id, caller, callee.name, legs=legs, invite=sent, branch=branch)
        call.media = self.media_story(why, legs is not None, caller, callee.name)
        self.calls[call_id] = call
        self.remember(branch, Transaction(flow, call_id, "INVITE", request))
        if not self.send_in(call, callee.name, sent.to_bytes()):
            self.end(call)
            where = format_endpoint((callee.contact.host, callee.contact.port or SIP_PORT))
            raise _Refusal(480, f"Temporarily Unavailable (cannot reach {callee.name} at {where})")
        if callee.transport == "udp":
            self._spawn(self.ring(call, callee.address))

    async def ring(self, call: Call, address: Endpoint) -> None:
        """Over UDP, send the INVITE again until the callee answers; else tell the caller."""
        for number, wait in enumerate(RING_WAITS):
            if number:
                self.deliver(call.callee, call.invite.to_bytes())  # type: ignore[union-attr]
            await asyncio.sleep(wait)
            if call.ringing or call.ended:
                return
        reason = (
            f"{call.callee} did not answer {len(RING_WAITS)} invites sent over udp to "
            f"{format_endpoint(address)}, where it registered"
        )
        print(f"call {call.id}: {reason}", flush=True)
        self.end(call)
        transaction = self.transactions.get(call.branch)
        if transaction is not None:
            self.answer(transaction.origin, transaction.request, 408, f"Request Timeout ({reason})")

    def cancel(self, request: SipMessage, flow: Flow) -> None:
        """A CANCEL before the answer: 200, and a CANCEL to the callee, whose 487 ends the call."""
        call = self.calls.get(request.get("Call-ID") or "")
        if call is None or call.ended:
            self.answer(flow, request, 481, "Call/Transaction Does Not Exist")
            return
        self.answer(flow, request, 200, "OK")
        if call.answered:
            return
        invite = call.invite
        if invite is None:
            return
        cancel = dialogs.of_invite(invite, "CANCEL", invite.get("To") or "")
        self.deliver(call.callee, cancel.to_bytes())

    def in_dialog(self, request: SipMessage, flow: Flow) -> None:
        method = cast(RequestLine, request.start).method
        call = self.calls.get(request.get("Call-ID") or "")
        sender = dialogs.user_of(request.get("From") or "")
        if call is None or sender not in (call.caller, call.callee):
            if method != "ACK":
                self.answer(flow, request, 481, "Call/Transaction Does Not Exist")
            return
        if method == "ACK" and not call.answered:
            return  # the ACK of a failure the PBX answered, or ACKed itself, hop by hop
        other = call.other(sender)
        branch = _branch(request)
        target = cast(RequestLine, request.start).uri
        registration = self.registration(other)
        transport = registration.transport if registration else flow.transport
        sent = self.forwarded(request, target, branch, transport)
        if method != "ACK":
            self.remember(branch, Transaction(flow, call.id, method, request))
        if method == "BYE":
            self.end(call)
        if not self.deliver(other, sent.to_bytes()) and method != "ACK":
            self.answer(flow, request, 480, f"Temporarily Unavailable ({other} is not registered)")

    def remember(self, branch: str, transaction: Transaction) -> None:
        self.transactions[branch] = transaction
        self.transactions.move_to_end(branch)
        while len(self.transactions) > MAX_TRANSACTIONS:
            self.transactions.popitem(last=False)

    def response(self, response: SipMessage) -> None:
        """A phone's answer to what the PBX sent it: back along the Vias, relayed SDP rewritten."""
        vias = response.values("Via")
        branch = Via.parse(vias[0]).branch or ""
        transaction = self.transactions.get(branch)
        if transaction is not None and dialogs.method_of(response) != transaction.method:
            return  # the answer to a CANCEL the PBX sent: hop by hop, nobody else's
        if transaction is None or len(vias) < 2:
            self.counters["unanswered_errors"] += 1  # a response to nothing of ours: never answered
            return
        code = dialogs.status(response) or 0
        back = dialogs.replace_vias(response, vias[1:])
        call = self.calls.get(transaction.call)
        if transaction.method == "INVITE" and call is not None:
            call.ringing = True
            if code == 100:
                return  # hop by hop: the PBX said Trying itself
            if 200 <= code < 300:
                call.answered = True
                if call.legs is not None and back.body:
                    relay = self.relay_address(call.caller, call.legs[0])
                    back = replace(back, body=relay_sdp(back.body, relay))
            elif code >= 300:
                self.deliver(call.callee, self.ack_of(call, response).to_bytes())
                self.end(call)
        if transaction.method == "BYE" and call is not None:
            self.end(call)
        self.reply(transaction.origin, back)

    def ack_of(self, call: Call, response: SipMessage) -> SipMessage:
        """The PBX's own ACK of a callee's failure (RFC 3261 17.1.1.3: hop by hop)."""
        return dialogs.of_invite(cast(SipMessage, call.invite), "ACK", response.get("To") or "")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def end(self, call: Call) -> None:
        """The call is over; its state (and relay) stays a while, for the RTP counts."""
        if not call.ended:
            call.ended = True
            asyncio.get_running_loop().call_later(CALL_LINGER, self.forget, call.id)

    def send_in(self, call: Call, name: str, data: bytes) -> bool:
        call.sent.setdefault(name, []).append(data)
        return self.deliver(name, data)

    def forget(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is not None:
            call.close()

    # -- media relay -----------------------------------------------------------------------

    def relayed(self, mode: object, caller: str, callee: str) -> bool:
        return self.relay_reason(mode, caller, callee) is not None

    def relay_reason(self, mode: object, caller: str, callee: str) -> str | None:
        """Why this call's media goes through the relay; None: it goes direct."""
        if mode == "relay":
            return f"{caller} asked for it (mode relay)"
        policy = self.relay_policy
        if policy == "all":
            return "the policy relays every call"
        phones = (caller, callee)
        if policy == "remote":
            return next((f"{name} is remote" for name in phones if self.remote(name)), None)
        if policy == "nat":
            return next((self.nat_of(name) for name in phones if self.nat_of(name)), None)
        named = sorted(policy & set(phones)) if isinstance(policy, frozenset) else []
        return f"the policy names {named[0]}" if named else None

    def nat_of(self, name: str) -> str | None:
        """Why the PBX takes the phone to be behind NAT, in words; None if nothing says so."""
        registration = self.registration(name)
        if registration is None or registration.nat is None:
            return None
        return f"{name} is behind NAT: {registration.nat}"

    def media_story(self, why: str | None, relayed: bool, caller: str, callee: str) -> str:
        """What `calls` and the scenario's explanation say of the call's media."""
        if relayed:
            return f"the PBX relayed the media: {why}"
        if why is not None:
            return f"the PBX did not relay the media ({why}, but no relay port was free)"
        if self.relay_policy == "nat":
            return (
                f"the PBX did not relay the media: neither {caller} nor {callee} looked behind NAT "
                "(each one's Contact, Via and SDP c= named the address it was seen from)"
            )
        return ""

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


class _Refusal(Exception):
    """A request the PBX turns down: the status and reason it answers."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _branch(request: SipMessage) -> str:
    """The PBX's branch for a request it sends on: the same for every copy of that request."""
    key = f"{dialogs.top_via(request).branch}|{request.get('Call-ID')}|{dialogs.method_of(request)}"
    return dialogs.BRANCH_COOKIE + hashlib.sha256(key.encode()).hexdigest()[:20]


def _tag_for(request: SipMessage) -> str:
    """The To tag of the PBX's own answers: the same for every copy of a request."""
    key = f"{dialogs.top_via(request).branch}|{request.get('Call-ID')}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _asked_expiry(request: SipMessage) -> int | None:
    """The expiry a REGISTER asks for: its Contact's expires, else its Expires; None if neither."""
    contact = None
    with contextlib.suppress(SipError):
        contact = NameAddr.parse(request.get("Contact") or "")
    return asked_expiry(contact, request.get("Expires"))


def _udp_socket(address: IPv4Address, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((str(address), port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def parse_policy(value: object) -> str | frozenset[str]:
    """ "all", "remote", "nat", "none", a list of phone names, or "a,b" from the command line."""
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
