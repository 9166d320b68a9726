"""A lab phone: a SIP user agent (RFC 3261) that registers with the PBX, places and
answers calls, and reports what media did.

The lab forks it into the phone's node with its PhoneConfig (run(config)):
where the PBX is over tcp, tls and udp, the lab's CA, the STUN servers and
the TURN server, its SIP credentials, all worked out from the topology
(natlab.lab.endpoints).

At start it sends REGISTER over TCP (or TLS, with the certificate of the
lab's CA that bears its name; or UDP, one message a datagram, sent again on
SIP's timer A until answered), answers a 401's digest challenge with its
credentials (and a 401's or 407's to an INVITE, as a proxy such as kamailio
asks of calls), and keeps the registration alive: a keepalive every half
second (or as a register request says; 0: none) - on TCP and TLS the
double-CRLF ping of RFC 5626 answered by a CRLF pong, on UDP an OPTIONS
answered by 200 - and a PBX silent for three keepalives (a NAT that forgot
the connection's mapping) makes it register again. It also sends REGISTER
anew halfway through the registration's expiry, as SIP phones do.

Its Via, Contact and SDP carry its own private address, as real phones do
(rport asks the PBX for the source it saw: RFC 3581); every request goes to
the PBX, its outbound proxy, with the route set the PBX's Record-Route made.
It takes TCP and TLS connections on its address, ports 5060 and 5061 (any
free one if taken), which its Contact names over TCP and TLS: a proxy with
no connection to the Contact opens one there (kamailio, a naive PBX), and
the phone answers a request on the connection it came on (sip_transport's
StreamListener bounds them). Over TLS it serves only the lab PBX's
certificate.

Without keepalives nothing refreshes the phone's NAT mapping between two
REGISTERs: over UDP the mapping lives only the router's udp_timeout, and
once it is gone the PBX's INVITEs are dropped on the way, unnoticed by the
phone; a TCP mapping lives the far longer established timeout.

Its control socket (one JSON request line, one JSON answer line) takes:

- {"op": "status"}: registered or not, with which PBX, since when, the last error;
- {"op": "register", "transport"?: "tcp"|"tls"|"udp", "keepalive"?: SECONDS,
  "certificate"?: NAME}: register again now (after `natlab nat set`, say) and
  answer once it is known how it went; transport and keepalive stay as they
  are unless given (keepalive 0: none); "certificate" presents another
  phone's certificate, which the PBX must refuse;
- {"op": "call", "to": PHONE, "seconds": 2.0, "mode": "ice"|"turn"|"host"|"srflx"|"relay",
  "cancel_after"?: SECONDS, "ring"?: SECONDS}: place a call, wait for its end, answer
  with the caller's CallReport (media.py). With cancel_after, the caller hangs up
  before the answer: a CANCEL (RFC 3261 9) once the callee rang, if it has not
  answered by then; the INVITE ends 487 and the report says cancelled. "ring"
  asks a natlab callee to ring that long before it answers (both at most 5 s);
  "answer" (a mode) asks it to answer in that mode rather than the caller's;
- {"op": "reports"}: every call this phone took part in, as caller or callee.

Modes: "ice" gathers host, server-reflexive and (with a TURN server) relay
candidates; "turn" only relay candidates; "host" and "srflx" offer a single
address without ICE; "relay" asks the PBX to relay the media. An ICE caller
answered without ICE sends plain RTP from the address its offer's c=/m=
named (ice.py), so a UA without ICE hears it and is heard. The INVITE's
X-Natlab-Call header tells a natlab callee the mode (a generic UA's INVITE
is answered with ICE if its offer has ICE, plainly otherwise). A call sends
RTP both ways for `seconds` over what was set up, then the caller's BYE and
the callee's 200 OK carry each side's counts (and the pair each side
selected) to the other (sip_dialogs.py).

Prints "ready" (and the ports it takes connections on) once its control
socket serves; registration goes on in the background. SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import signal
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints import tls
from natlab.endpoints.control import serve_control
from natlab.endpoints.ice import IceMedia, Media, MediaError, TurnServer, UdpMedia, lab_timing
from natlab.endpoints.media import finish, send_rtp
from natlab.endpoints.sdp_offer import CONTENT_TYPE, MODES, MediaOffer
from natlab.endpoints.sip_transport import (
    MAX_KEEPALIVE,
    PING,
    PONG,
    TRANSPORTS,
    Arrival,
    DatagramInbox,
    Endpoint,
    Garbled,
    Keepalive,
    StreamFlow,
    StreamFramer,
    StreamListener,
    connect_stream,
    format_endpoint,
    read_stream,
)
from natlab.records import (
    PHONE_REQUESTS,
    CallReport,
    CallReports,
    CallRequest,
    Candidate,
    PhoneStatus,
    PingRequest,
    RegisterRequest,
    SelectedPair,
    SipSeen,
    StatusRequest,
    request_from_json,
)
from natlab.sip import digest
from natlab.sip.errors import SipError
from natlab.sip.message import SipMessage

TRANSPORT = "tcp"  # how a phone registers unless its topology's `sip: transport:` says
KEEPALIVE = 0.5  # seconds between keepalives, unless told otherwise
DEAD_AFTER = 3  # keepalives unanswered before the connection counts as lost
REFRESH = 0.5  # REGISTER again after this share of the registration's expires
EXPIRES = 60  # seconds the phone asks its registration to last
CONNECT_TIMEOUT = 2.0
RETRY = 0.3  # seconds before registering again after a failure
REFUSED_RETRY = 5.0  # ... after the PBX refused us: it will refuse again
REGISTER_WAIT = 5.0  # how long a control request waits for a registration's outcome
ALIVE_WAIT = 0.5  # how long a call waits for the PBX to answer a keepalive before inviting
ANSWER_TIMEOUT = 8.0
CANCEL_TIMEOUT = 2.0  # how long the caller waits for its CANCEL's 200 (the INVITE's 487 follows)
DRAIN = 0.1  # seconds the caller keeps listening after it stops sending, before its BYE
STATS_TIMEOUT = 3.0
MAX_REPORTS = 1000
MAX_SIGNALLING = 40  # SIP messages a call's report keeps
MAX_TRACKED_CALLS = 50  # calls whose SIP messages are kept at once
CALLEE_SLACK = 20.0  # a callee gives up on a BYE this long after the call should have ended
GENERIC_SECONDS = 60.0  # how long a generic UA's call may last before the callee gives up
T1 = 0.5  # RFC 3261's round-trip estimate: UDP retransmissions start here and double
T2 = 4.0  # ...up to this
LISTEN_PORTS = (5060, 5061)  # where a phone takes connections, TCP and TLS, as SIP phones do
MAX_ORIGINS = 1000  # requests that came on a connection opened to us, remembered for the answer


class Refused(Exception):
    """The PBX said no (wrong certificate, unknown phone...)."""


@dataclass
class PhoneConfig:
    name: str
    address: IPv4Address
    control: Path
    pbx: Endpoint | None = None
    pbx_tls: Endpoint | None = None
    pbx_udp: Endpoint | None = None
    ca: Path | None = None
    transport: str = TRANSPORT  # its first registration's; a `register` request changes it
    keepalive: float = KEEPALIVE
    stun: tuple[Endpoint, ...] = ()
    turn: TurnServer | None = None
    user: str = ""  # the SIP user it registers as; "" is its name
    password: str = dialogs.DEFAULT_PASSWORD
    keepalive_method: str = "auto"  # "crlf" | "options"; auto: CRLF on streams, OPTIONS on UDP
    listen: tuple[int, int] = LISTEN_PORTS  # TCP and TLS ports it takes connections on; 0: any
    pbx_name: str | None = None  # the CN a TLS peer's certificate must bear: the lab's PBX

    @property
    def sip_user(self) -> str:
        return self.user or self.name


class Link:
    """One way to the PBX: a TCP or TLS connection, or a UDP socket connected to it.

    The phone's own address on it (`local`) is what its Via and Contact say.
    """

    transport: str
    local: Endpoint

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def receive(self) -> list[Any] | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.close()


class StreamLink(Link):
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        self.reader, self.writer, self.transport = reader, writer, transport
        self.local = writer.get_extra_info("sockname")[:2]
        self.framer = StreamFramer(server=False)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def receive(self) -> list[Any] | None:
        return await read_stream(self.reader, self.framer)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


class DatagramLink(Link):
    transport = "udp"

    def __init__(self, socket: asyncio.DatagramTransport, inbox: DatagramInbox) -> None:
        self.socket, self.inbox = socket, inbox
        self.local = socket.get_extra_info("sockname")[:2]

    def send(self, data: bytes) -> None:
        self.inbox.send(data)

    async def receive(self) -> list[Any] | None:
        arrival, _ = await self.inbox.queue.get()
        if arrival is None:
            return None
        if isinstance(arrival, OSError):
            raise arrival
        return [arrival]

    def close(self) -> None:
        self.socket.close()


@dataclass
class Pending:
    """A client transaction: the request, its final response once it comes."""

    request: SipMessage
    final: asyncio.Future
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # any response, 1xx too


class Registrar:
    """The phone's registration and its one way to the PBX, kept alive or redone.

    Every request the phone sends goes through here (transact), so that
    responses find their transaction whatever link they come back on.
    """

    def __init__(self, config: PhoneConfig, dispatch: Callable[[SipMessage], None]) -> None:
        self.config = config
        self.dispatch = dispatch
        self.transport = config.transport
        self.keepalive = config.keepalive
        self.certificate = config.name
        self.registered = False
        self.since: float | None = None
        self.error: str | None = None
        self.target: Endpoint | None = None
        self.attempts = 0
        self.link: Link | None = None
        self.call_id = f"reg-{config.name}-{secrets.token_hex(6)}"
        self.from_tag = dialogs.new_tag()
        self.cseq = 0
        # client transactions by (branch, method): a CANCEL has its INVITE's branch (RFC 3261 9.1)
        self.pending: dict[tuple[str, str], Pending] = {}
        self.watch: Callable[[str, SipMessage], None] = lambda direction, message: None
        self._task: asyncio.Task | None = None
        self._heard = 0.0
        self._settled = asyncio.Event()  # set after every attempt, whatever its outcome
        self.listening: dict[str, int] = {}  # transport -> the port we take connections on
        # requests that came on a connection someone opened to us, by their Via branch
        self.origins: OrderedDict[str, StreamFlow] = OrderedDict()
        self._pong = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> PhoneStatus:
        return PhoneStatus(
            name=self.config.name,
            registered=self.registered,
            pbx=format_endpoint(self.target) if self.target else None,
            transport=self.transport,
            keepalive=self.keepalive,
            certificate=self.certificate if self.transport == "tls" else None,
            since=self.since,
            attempts=self.attempts,
            error=self.error,
        )

    async def register(
        self,
        transport: str | None = None,
        certificate: str | None = None,
        keepalive: float | None = None,
    ) -> PhoneStatus:
        """Drop the current link, register anew, answer once the outcome is known.

        transport and keepalive (seconds, 0: none) stay as they were unless given.
        """
        if transport is not None and transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        if keepalive is not None:
            if isinstance(keepalive, bool) or not isinstance(keepalive, int | float):
                raise ValueError(f"keepalive must be a number of seconds, not {keepalive!r}")
            if not 0 <= keepalive <= MAX_KEEPALIVE:
                raise ValueError(f"keepalive must be from 0 (none) to {MAX_KEEPALIVE:g} seconds")
            self.keepalive = float(keepalive)
        self.transport = transport or self.transport
        self.certificate = certificate or self.config.name
        await self.stop()
        self._settled.clear()
        self.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), REGISTER_WAIT)
        return self.status()

    async def ensure(self) -> None:
        """Make sure the PBX hears us now: a keepalive answered, else a fresh registration."""
        if self.registered and self.link is not None:
            self._pong.clear()
            self._ping(self.link)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pong.wait(), ALIVE_WAIT)
                return
        await self.register(self.transport, self.certificate)

    # -- what the phone sends ----------------------------------------------------------

    @property
    def domain(self) -> str:
        """The PBX as this phone dials it: host[:port] of its URIs."""
        assert self.target is not None
        return format_endpoint(self.target)

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def via(self) -> str:
        link = self._live()
        return dialogs.via(link.transport, link.local[0], link.local[1])

    def contact(self) -> str:
        """Where we take requests: over TCP and TLS, the port we listen on, not the link's."""
        transport = self.link.transport if self.link else "tcp"
        if transport == "udp" or transport not in self.listening:
            link = self._live()
            local = link.local
        else:
            local = (str(self.config.address), self.listening[transport])
        params = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{self.config.sip_user}@{format_endpoint(local)}{params}>"

    def _live(self) -> Link:
        if self.link is None:
            raise Refused("not registered with the PBX")
        return self.link

    def send(self, message: SipMessage) -> None:
        """A response, or an ACK (no transaction of its own), down the current link; a response
        to a request that came on a connection opened to us, down that one (RFC 3261 18.2.2)."""
        origin = None
        if not message.is_request:
            origin = self.origins.get(dialogs.top_via(message).branch or "")
        (origin or self._live()).send(message.to_bytes())
        self.watch("sent", message)

    async def accepted(self, arrival: Arrival, flow: StreamFlow) -> None:
        """What comes on a connection someone opened to us: served as what the PBX sends,
        its responses sent back on it. Over TLS, only the lab's PBX's certificate is taken."""
        if flow.transport == "tls" and flow.certificate != self.config.pbx_name:
            print(f"refused TLS from {flow.certificate or 'no certificate'}", flush=True)
            flow.writer.transport.abort()
            return
        if isinstance(arrival, Keepalive):
            flow.send(PONG)
            return
        if isinstance(arrival, SipMessage) and arrival.is_request:
            with contextlib.suppress(SipError):
                self.origins[dialogs.top_via(arrival).branch or ""] = flow
                while len(self.origins) > MAX_ORIGINS:
                    self.origins.popitem(last=False)
        self.take(arrival)

    def forget(self, flow: StreamFlow) -> None:
        """A connection opened to us ended: nothing more goes back on it."""
        for branch, origin in list(self.origins.items()):
            if origin == flow:
                del self.origins[branch]

    async def transact(
        self, request: SipMessage, timeout: float = ANSWER_TIMEOUT, link: Link | None = None
    ) -> SipMessage:
        """Send a request (again and again over UDP, on timer A) and return its final response."""
        link = link or self._live()
        key = (dialogs.top_via(request).branch or "", dialogs.method_of(request))
        pending = Pending(request, asyncio.get_running_loop().create_future())
        self.pending[key] = pending
        data = request.to_bytes()
        try:
            link.send(data)
            self.watch("sent", request)
            async with asyncio.timeout(timeout):
                if link.transport == "udp":
                    wait = T1
                    while not pending.answered.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(pending.answered.wait(), wait)
                            break
                        link.send(data)
                        wait = min(wait * 2, T2)
                return await pending.final
        finally:
            self.pending.pop(key, None)

    # -- the registration's life ----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            retry = RETRY
            self.attempts += 1
            try:
                await self._session()
            except Refused as refusal:
                self.error, retry = str(refusal), REFUSED_RETRY
            except (OSError, ssl.SSLError, SipError, TimeoutError) as error:
                self.error = f"{error.__class__.__name__}: {error}".rstrip(": ")
            finally:
                self._down()
            await asyncio.sleep(retry)

    def _down(self) -> None:
        self.registered = False
        if self.link is not None:
            self.link.close()
            self.link = None
        self._settled.set()

    def _endpoint(self) -> Endpoint:
        targets = {"tcp": self.config.pbx, "tls": self.config.pbx_tls, "udp": self.config.pbx_udp}
        target = targets[self.transport]
        if target is None:
            raise Refused(f"no PBX reachable over {self.transport} from this phone")
        return target

    async def _connect(self, target: Endpoint) -> Link:
        host, port = target
        if self.transport == "udp":
            socket, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
                DatagramInbox, local_addr=(str(self.config.address), 0), remote_addr=target
            )
            return DatagramLink(socket, inbox)
        context = None
        if self.transport == "tls":
            if self.config.ca is None:
                raise Refused("TLS needs the lab's CA, and this phone was given none")
            context = tls.client_context(self.config.ca, self.certificate)
        reader, writer = await connect_stream(
            host, port, context, str(self.config.address), CONNECT_TIMEOUT
        )
        return StreamLink(reader, writer, self.transport)

    async def _session(self) -> None:
        self.target = self._endpoint()
        self.link = link = await self._connect(self.target)
        reader = asyncio.create_task(self._read(link))
        upkeep: list[asyncio.Task] = []
        try:
            expires = await self._register(link, CONNECT_TIMEOUT)
            self.registered, self.since, self.error = True, time.time(), None
            self._settled.set()
            print(f"registered with {self.domain} over {self.transport}", flush=True)
            upkeep.append(asyncio.create_task(self._refresh(link, expires)))
            if self.keepalive:
                upkeep.append(asyncio.create_task(self._keepalive(link, self.keepalive)))
            await reader
            raise ConnectionError("the PBX closed the connection")
        finally:
            for task in (reader, *upkeep):
                task.cancel()

    async def _register(self, link: Link, timeout: float) -> int:
        """REGISTER, answering one digest challenge; the expiry the PBX granted."""
        authorization: tuple[tuple[str, str], ...] = ()
        for _ in range(2):
            self.cseq += 1
            me = f"<{self.uri(self.config.sip_user)}>"
            register = dialogs.request(
                "REGISTER",
                f"sip:{self.domain}",
                via_value=self.via(),
                from_value=f"{me};tag={self.from_tag}",
                to_value=me,
                call_id=self.call_id,
                cseq=self.cseq,
                headers=(("Contact", self.contact()), ("Expires", str(EXPIRES)), *authorization),
            )
            reply = await self.transact(register, timeout, link)
            code = dialogs.status(reply)
            if code == 200:
                return _granted(reply)
            if code in (401, 407) and not authorization:
                authorization = (self.credentials(reply, register),)
                continue
            raise Refused(f"the PBX refused the registration: {code} {reply.start.reason}")  # type: ignore[union-attr]
        raise Refused("the PBX refused the registration: it challenged our credentials again")

    def credentials(self, reply: SipMessage, request: SipMessage) -> tuple[str, str]:
        """The header that answers a 401's or 407's digest challenge to `request` (RFC 3261
        22.2, 22.3): a registrar's for a REGISTER, a proxy's (kamailio's) for an INVITE."""
        header = "WWW-Authenticate" if dialogs.status(reply) == 401 else "Proxy-Authenticate"
        challenge = digest.parse_challenge(reply.get(header) or "")
        credentials = digest.answer(
            challenge,
            username=self.config.sip_user,
            password=self.config.password,
            method=dialogs.method_of(request),
            uri=request.start.uri,  # type: ignore[union-attr]
            cnonce=secrets.token_hex(8),
        )
        name = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
        return name, credentials.to_header()

    async def _read(self, link: Link) -> None:
        """Everything the PBX sends: responses to their transactions, requests to the phone."""
        loop = asyncio.get_running_loop()
        while (arrivals := await link.receive()) is not None:
            self._heard = loop.time()
            for arrival in arrivals:
                self.take(arrival)

    def take(self, arrival: Any) -> None:
        """One arrival from the PBX; what the phone cannot use is logged, never fatal."""
        if isinstance(arrival, Keepalive):
            self._pong.set()
            return
        if isinstance(arrival, Garbled):
            print(f"dropped what is not SIP from the PBX: {arrival.reason}", flush=True)
            return
        try:
            self.watch("received", arrival)
            if arrival.is_request:
                self._request(arrival)
            else:
                self._response(arrival)
        except (SipError, Refused) as error:
            print(f"dropped a message from the PBX: {_describe(error)}", flush=True)

    def _response(self, response: SipMessage) -> None:
        try:
            key = (dialogs.top_via(response).branch or "", dialogs.method_of(response))
        except SipError:
            return
        if key[1] == "OPTIONS":
            self._pong.set()  # a keepalive's answer
        pending = self.pending.get(key)
        if pending is None:
            return  # a late copy of an answered one
        pending.answered.set()
        code = dialogs.status(response) or 0
        if code >= 200 and not pending.final.done():
            pending.final.set_result(response)

    def _request(self, request: SipMessage) -> None:
        if request.start.method == "OPTIONS":  # type: ignore[union-attr]
            self.send(dialogs.response(request, 200, "OK", headers=(("Allow", dialogs.ALLOW),)))
            return
        self.dispatch(request)

    def _ping(self, link: Link) -> None:
        """A CRLF ping (RFC 5626), or an OPTIONS, as the phone's keepalive method says."""
        method = self.config.keepalive_method
        if method == "crlf" or (method == "auto" and link.transport != "udp"):
            link.send(PING)
            return
        me = f"<{self.uri(self.config.sip_user)}>"
        self.cseq += 1
        options = dialogs.request(
            "OPTIONS",
            f"sip:{self.domain}",
            via_value=self.via(),
            from_value=f"{me};tag={self.from_tag}",
            to_value=f"<sip:{self.domain}>",
            call_id=f"ka-{self.call_id}",
            cseq=self.cseq,
        )
        link.send(options.to_bytes())  # no transaction: its 200 is a pong, or nothing

    async def _keepalive(self, link: Link, every: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            if loop.time() - self._heard > every * DEAD_AFTER:
                print("the PBX stopped answering: registering again", flush=True)
                self.error = "the PBX stopped answering keepalives"
                link.abort()  # the session's reader sees the end and it starts again
                return
            self._ping(link)

    async def _refresh(self, link: Link, expires: int) -> None:
        """REGISTER again before the PBX forgets us; one left unanswered means it is gone."""
        while True:
            await asyncio.sleep(max(expires * REFRESH, 0.01))
            try:
                expires = await self._register(link, max(expires * REFRESH, CONNECT_TIMEOUT))
            except (TimeoutError, Refused, SipError) as error:
                self.error = f"the PBX did not renew the registration: {_describe(error)}"
                link.abort()
                return


def _granted(reply: SipMessage) -> int:
    """The expiry a REGISTER's 200 granted: Expires, else the Contact's expires, else ours."""
    for value in (reply.get("Expires"), _contact_expires(reply)):
        if value is not None and value.isdigit():
            return int(value)
    return EXPIRES


def _contact_expires(reply: SipMessage) -> str | None:
    value = reply.get("Contact") or ""
    for part in value.split(";")[1:]:
        name, _, number = part.partition("=")
        if name.strip().lower() == "expires":
            return number.strip()
    return None


@dataclass
class Dialog:
    """A call's SIP dialog as the caller holds it, from the 2xx to its INVITE (RFC 3261 12.1.2)."""

    call_id: str
    local: str  # our From, tagged
    remote: str  # their To, tagged
    target: str  # the Request-URI of requests within the dialog: their Contact
    route: tuple[str, ...]  # the Record-Route of the 2xx, reversed
    cseq: int = 1

    @classmethod
    def of(cls, invite: SipMessage, ok: SipMessage) -> Dialog:
        contact = dialogs.contact_uri(ok)
        if contact is None:
            raise SipError("a 2xx to INVITE without a Contact")
        return cls(
            invite.get("Call-ID") or "",
            invite.get("From") or "",
            ok.get("To") or "",
            str(contact),
            tuple(reversed(ok.values("Record-Route"))),
        )

    def request(
        self, registrar: Registrar, method: str, headers: dialogs.Headers = ()
    ) -> SipMessage:
        if method != "ACK":
            self.cseq += 1
        return dialogs.request(
            method,
            self.target,
            via_value=registrar.via(),
            from_value=self.local,
            to_value=self.remote,
            call_id=self.call_id,
            cseq=self.cseq,
            headers=(*(("Route", hop) for hop in self.route), *headers),
        )


class Phone:
    def __init__(self, config: PhoneConfig) -> None:
        self.config = config
        self.registrar = Registrar(config, self.dispatch)
        self.reports: list[CallReport] = []
        self.inboxes: dict[str, asyncio.Queue[SipMessage]] = {}  # a call's ACK, BYE...
        self.answers: dict[str, SipMessage] = {}  # the last response to a call's INVITE
        self.answering: dict[str, asyncio.Task] = {}  # a call's answer(), for a CANCEL
        self.signalling: OrderedDict[str, list[SipSeen]] = OrderedDict()  # by Call-ID
        self.registrar.watch = self._seen
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    async def listen(self) -> list[asyncio.Server]:
        """Take TCP (and, with the lab's CA, TLS) connections on the Contact's ports.

        A port another program holds: any free one, which the Contact then names.
        """
        config, registrar = self.config, self.registrar
        listener = StreamListener(registrar.accepted, registrar.forget)
        servers = []
        for transport, port in zip(("tcp", "tls"), config.listen, strict=True):
            context = None
            if transport == "tls":
                if config.ca is None:
                    continue
                context = tls.server_context(config.ca, config.name)
            host = str(config.address)
            try:
                server = await listener.listen(host, port, transport, context)
            except OSError:
                server = await listener.listen(host, 0, transport, context)
            registrar.listening[transport] = server.sockets[0].getsockname()[1]
            servers.append(server)
        return servers

    # -- signalling ------------------------------------------------------------------------

    def dispatch(self, request: SipMessage) -> None:
        """A request from the PBX: a new INVITE, or one within a call in progress."""
        method = request.start.method  # type: ignore[union-attr]
        call = request.get("Call-ID") or ""
        if method == "INVITE" and dialogs.tag_of(request, "To") is None:
            if call in self.inboxes:  # a copy sent again (UDP, a new registration)
                with contextlib.suppress(Refused):
                    self.registrar.send(self.answers[call])
                return
            if self.inboxes:  # in a call already
                self.registrar.send(dialogs.response(request, 486, "Busy Here", to_tag="busy"))
                return
            tag = dialogs.new_tag()
            ringing = dialogs.response(
                request,
                180,
                "Ringing",
                to_tag=tag,
                headers=(("Contact", self.registrar.contact()),),
            )
            self.inboxes[call], self.answers[call] = asyncio.Queue(), ringing
            self.registrar.send(ringing)  # we are heard: the PBX stops sending it again
            self.answering[call] = self._spawn(self.answer(request, tag))
        elif method == "CANCEL":
            self.registrar.send(dialogs.response(request, 200, "OK"))
            answering = self.answering.get(call)
            if answering is not None and dialogs.status(self.answers.get(call, request)) == 180:
                answering.cancel()  # not answered yet: the INVITE gets its 487
        elif call in self.inboxes:
            self.inboxes[call].put_nowait(request)
        elif method != "ACK":
            self.registrar.send(dialogs.response(request, 481, "Call/Transaction Does Not Exist"))

    def _seen(self, direction: str, message: SipMessage) -> None:
        """Keep a call's SIP messages for its report (not registrations and keepalives)."""
        call = message.get("Call-ID") or ""
        if dialogs.method_of(message) in ("REGISTER", "OPTIONS"):
            return
        kept = self.signalling.setdefault(call, [])
        self.signalling.move_to_end(call)
        while len(self.signalling) > MAX_TRACKED_CALLS:
            self.signalling.popitem(last=False)
        if len(kept) < MAX_SIGNALLING:
            kept.append(dialogs.seen(direction, message, time.time()))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _expect(
        self, call: str, method: str, timeout: float, acked: asyncio.Event
    ) -> SipMessage:
        """The next request of that method within the call; an ACK on the way sets `acked`."""
        inbox = self.inboxes[call]
        async with asyncio.timeout(timeout):
            while True:
                request = await inbox.get()
                if request.start.method == "ACK":  # type: ignore[union-attr]
                    acked.set()
                elif request.start.method == method:  # type: ignore[union-attr]
                    return request

    # -- calls -----------------------------------------------------------------------------

    def media_for(self, mode: str, controlling: bool, remote: MediaOffer | None = None) -> Media:
        """A relayed offer means plain RTP to the relay, and so does an ICE mode facing no ICE."""
        config = self.config
        if mode == "relay" or (remote is not None and remote.relay):
            return UdpMedia(str(config.address), "host", config.stun)
        if mode in ("host", "srflx"):
            return UdpMedia(str(config.address), mode, config.stun)
        if remote is not None and not remote.ice:
            return UdpMedia(str(config.address), "host", config.stun)
        return IceMedia(controlling, config.stun, config.turn, relay_only=mode == "turn")

    async def call(
        self,
        to: str,
        seconds: float,
        mode: str,
        cancel_after: float | None = None,
        ring: float = 0.0,
        answer: str | None = None,
    ) -> CallReport:
        """Call `to`; with `cancel_after`, hang up (CANCEL) if it has not answered by then.

        `ring`: how long a natlab callee rings before it answers, `answer`: the mode it
        answers in, if not ours (X-Natlab-Call).
        """
        call = f"{self.config.name}-{next(self._ids)}-{secrets.token_hex(3)}"
        report = CallReport(call, self.config.name, to, mode, "caller")
        self.inboxes[call] = asyncio.Queue()
        media: Media | None = None
        try:
            await self.registrar.ensure()
            media = self.media_for(mode, controlling=True)
            await media.prepare()
            registrar = self.registrar
            me = f"<{registrar.uri(self.config.sip_user)}>;tag={dialogs.new_tag()}"
            authorization: dialogs.Headers = ()
            sent = time.perf_counter()
            loop = asyncio.get_running_loop()
            cancel_at = None if cancel_after is None else loop.time() + cancel_after
            for cseq in (1, 2):  # the second answers a 401 or 407 with our credentials
                invite = dialogs.request(
                    "INVITE",
                    registrar.uri(to),
                    via_value=registrar.via(),
                    from_value=me,
                    to_value=f"<{registrar.uri(to)}>",
                    call_id=call,
                    cseq=cseq,
                    headers=(
                        ("Contact", registrar.contact()),
                        ("Allow", dialogs.ALLOW),
                        dialogs.call_header(mode, seconds, ring, answer),
                        *authorization,
                    ),
                    body=media.local().to_sdp(),
                    content_type=CONTENT_TYPE,
                )
                reply, report.cancelled = await self._invite(invite, cancel_at)
                code = dialogs.status(reply) or 0
                if code >= 300:
                    registrar.send(dialogs.of_invite(invite, "ACK", reply.get("To") or ""))
                if code not in (401, 407) or authorization:
                    break
                authorization = (registrar.credentials(reply, invite),)
            setup = (time.perf_counter() - sent) * 1000
            print(f"call {call}: INVITE answered {code} after {setup:.2f} ms", flush=True)
            if code >= 300 and report.cancelled:
                raise Refused(
                    f"cancelled after {cancel_after:g} s, before the answer: "
                    f"{code} {reply.start.reason}"  # type: ignore[union-attr]
                )
            if code >= 300:
                raise Refused(f"the call was refused: {code} {reply.start.reason}")  # type: ignore[union-attr]
            if report.cancelled:  # answered as our CANCEL crossed it: hang up at once
                report.cancelled, seconds = False, 0.0
                print(f"call {call}: answered before the CANCEL arrived", flush=True)
            dialog = Dialog.of(invite, reply)
            registrar.send(dialog.request(registrar, "ACK"))
            remote = MediaOffer.from_sdp(reply.body)
            stop = asyncio.Event()
            sender = await self._start_media(media, remote, report, stop)
            if sender is not None:
                await asyncio.sleep(seconds)
                stop.set()
                await sender
                await asyncio.sleep(DRAIN)
            stats = dialogs.stats_headers(media.stream.counts, media.selected())
            bye = dialog.request(registrar, "BYE", stats)
            try:
                ok = await registrar.transact(bye, STATS_TIMEOUT)
            except TimeoutError:
                ok = None
            self._close_with_peer(report, media, ok)
        except (Refused, MediaError, SipError, TimeoutError, OSError) as error:
            report.error = _describe(error)
            if media is not None:
                self._close_with_peer(report, media, None)
        finally:
            self.inboxes.pop(call, None)
        return self._keep(report)

    async def _invite(self, invite: SipMessage, cancel_at: float | None) -> tuple[SipMessage, bool]:
        """The INVITE's final response, and whether we CANCELled it (RFC 3261 9.1): when
        `cancel_at` (the loop's clock) came first, once something provisional was heard."""
        registrar = self.registrar
        final = asyncio.ensure_future(registrar.transact(invite))
        if cancel_at is None:
            return await final, False
        loop = asyncio.get_running_loop()
        await asyncio.wait({final}, timeout=max(0.0, cancel_at - loop.time()))
        key = (dialogs.top_via(invite).branch or "", "INVITE")
        pending = registrar.pending.get(key)
        if final.done() or pending is None:
            return await final, False
        heard = asyncio.ensure_future(pending.answered.wait())  # 9.1: not before a 1xx
        await asyncio.wait({final, heard}, return_when=asyncio.FIRST_COMPLETED)
        heard.cancel()
        if final.done():
            return final.result(), False
        cancel = dialogs.of_invite(invite, "CANCEL", invite.get("To") or "")
        with contextlib.suppress(TimeoutError):
            await registrar.transact(cancel, CANCEL_TIMEOUT)  # its 200; the INVITE's 487 ends it
        return await final, True

    async def answer(self, invite: SipMessage, tag: str) -> None:
        call = invite.get("Call-ID") or ""
        asked, seconds = dialogs.read_call_header(invite)
        caller = dialogs.user_of(invite.get("From") or "") or "?"
        report = CallReport(call, caller, self.config.name, asked or "host", "callee")
        media: Media | None = None
        acked = asyncio.Event()
        try:
            try:
                remote = MediaOffer.from_sdp(invite.body)
            except SipError as error:
                raise _Failure(488, f"Not Acceptable Here: {error.reason}") from None
            report.mode = mode = asked or ("ice" if remote.ice else "host")
            await asyncio.sleep(dialogs.read_ring(invite))  # ringing: a CANCEL may come
            media = self.media_for(mode, controlling=False, remote=remote)
            await media.prepare()
            ok = dialogs.response(
                invite,
                200,
                "OK",
                to_tag=tag,
                headers=(
                    ("Contact", self.registrar.contact()),
                    *(("Record-Route", hop) for hop in invite.values("Record-Route")),
                    ("Allow", dialogs.ALLOW),
                ),
                body=media.local().to_sdp(),
                content_type=CONTENT_TYPE,
            )
            self.answers[call] = ok
            self.registrar.send(ok)
            self._spawn(self._resend_until(ok, acked))
            stop = asyncio.Event()
            starting = asyncio.create_task(self._start_media(media, remote, report, stop))
            limit = (seconds if seconds is not None else GENERIC_SECONDS) + CALLEE_SLACK
            try:
                bye = await self._expect(call, "BYE", limit, acked)
            finally:
                stop.set()
                acked.set()
                if not starting.done():  # the caller hung up before our checks ended
                    starting.cancel()
                    report.ice = "timeout"
            with contextlib.suppress(asyncio.CancelledError):
                sender = await starting
                if sender is not None:
                    await sender
            stats = dialogs.stats_headers(media.stream.counts, media.selected())
            self.registrar.send(dialogs.response(bye, 200, "OK", headers=stats))
            self._close_with_peer(report, media, bye)
        except asyncio.CancelledError:  # the caller's CANCEL came before our 200
            report.error = "cancelled by the caller"
            with contextlib.suppress(Refused, OSError):
                self.registrar.send(dialogs.response(invite, 487, "Request Terminated", to_tag=tag))
            if media is not None:
                self._close_with_peer(report, media, None)
        except (_Failure, Refused, MediaError, SipError, TimeoutError, OSError) as error:
            report.error = _describe(error)
            code, reason = (
                (error.code, error.reason) if isinstance(error, _Failure) else (500, report.error)
            )
            if call in self.answers and dialogs.status(self.answers[call]) == 180:
                with contextlib.suppress(Refused, OSError, SipError):
                    self.registrar.send(dialogs.response(invite, code, reason, to_tag=tag))
            if media is not None:
                self._close_with_peer(report, media, None)
        finally:
            acked.set()
            self.inboxes.pop(call, None)
            self.answers.pop(call, None)
            self.answering.pop(call, None)
            self._keep(report)

    async def _resend_until(self, ok: SipMessage, acked: asyncio.Event) -> None:
        """Over UDP the callee sends its 2xx again until the ACK comes (RFC 3261 13.3.1.4)."""
        if self.registrar.link is None or self.registrar.link.transport != "udp":
            return
        wait = T1
        for _ in range(7):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acked.wait(), wait)
                return
            with contextlib.suppress(Refused, OSError):
                self.registrar.send(ok)
            wait = min(wait * 2, T2)

    async def _start_media(
        self, media: Media, remote: MediaOffer, report: CallReport, stop: asyncio.Event
    ) -> asyncio.Task | None:
        """Connect (ICE checks, or nothing to do without ICE), then send until stop is set.

        None when ICE found no pair: nothing is sent.
        """
        report.ice = await media.connect(remote)
        if report.ice not in (None, "completed"):
            return None
        return asyncio.create_task(send_rtp(media.stream, media.send, stop))

    def _close_with_peer(self, report: CallReport, media: Media, peer: SipMessage | None) -> None:
        """Fill the report from the media and the peer's RTP stat headers, then close the media."""
        report.rtp = replace(media.stream.counts)
        report.checks = media.checks()
        report.gathering = media.gathering
        report.selected_pair = pair = media.selected()
        if peer is not None:
            counts, theirs = dialogs.read_stats(peer)
            report.peer_rtp = counts
            if isinstance(media, IceMedia) and pair and theirs is not None:
                # Where the peer saw us is our side of the pair (RFC 8445 7.2.5.3.2).
                address = theirs.remote.address
                local = Candidate(address, media.kind_of(address), base=pair.local.address)
                report.selected_pair = SelectedPair(local, pair.remote)
        self._spawn(media.close())

    def _keep(self, report: CallReport) -> CallReport:
        report.signalling = self.signalling.pop(report.call, [])
        finish(report)
        self.reports = [*self.reports[-(MAX_REPORTS - 1) :], report]
        print(f"call {report.call}: {report.role}, {report.verdict}", flush=True)
        return report

    # -- control ---------------------------------------------------------------------------

    async def control(self, request: dict) -> dict:
        asked = request_from_json(request, PHONE_REQUESTS)
        if isinstance(asked, StatusRequest | PingRequest):
            return self.registrar.status().to_json()
        if isinstance(asked, RegisterRequest):
            status = await self.registrar.register(
                asked.transport, asked.certificate, asked.keepalive
            )
            return status.to_json()
        if isinstance(asked, CallRequest):
            if asked.mode not in MODES:
                raise ValueError(f"call needs 'to' (a phone) and a mode among {MODES}")
            if not 0 <= asked.seconds <= 3600:
                raise ValueError("seconds must be a number from 0 to 3600")
            if asked.cancel_after is not None and not 0 <= asked.cancel_after <= dialogs.MAX_RING:
                raise ValueError(f"cancel_after must be a number from 0 to {dialogs.MAX_RING:g}")
            ring = float(asked.ring or 0)
            if not 0 <= ring <= dialogs.MAX_RING:
                raise ValueError(f"ring must be a number from 0 to {dialogs.MAX_RING:g}")
            if asked.answer is not None and asked.answer not in MODES:
                raise ValueError(f"answer must be a mode among {MODES}")
            cancel_after = None if asked.cancel_after is None else float(asked.cancel_after)
            report = await self.call(
                asked.to, float(asked.seconds), asked.mode, cancel_after, ring, asked.answer
            )
            return report.to_json()
        return CallReports(list(self.reports)).to_json()  # ReportsRequest, the last one served


class _Failure(Exception):
    """Why a callee turns an INVITE down: the status and reason it answers."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _describe(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error) or error.__class__.__name__


async def serve(config: PhoneConfig) -> None:
    phone = Phone(config)
    server = await serve_control(config.control, phone.control)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    listeners = await phone.listen()
    ports = phone.registrar.listening
    print("ready", config.name, *(f"{way} {port}" for way, port in ports.items()), flush=True)
    phone.registrar.start()
    await stopped.wait()
    for listener in (server, *listeners):
        listener.close()
    await phone.registrar.stop()
    config.control.unlink(missing_ok=True)


def run(config: PhoneConfig) -> int:
    """The phone's process: serve until SIGTERM."""
    lab_timing()
    asyncio.run(serve(config))
    return 0
