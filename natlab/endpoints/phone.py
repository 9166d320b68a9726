"""A lab phone: registers with the PBX, places and answers calls, and reports what media did.

The lab forks it into the phone's node with its PhoneConfig (run(config)):
where the PBX is over tcp, tls and udp, the lab's CA, the STUN servers and
the TURN server, all worked out from the topology (natlab.lab.endpoints).

At start it registers over TCP (or TLS, with the certificate of the lab's CA
that bears its name; or UDP, one message a datagram) and keeps the
registration alive: a keepalive every half second (or as a register
request says; 0: none), answered by the PBX; a PBX silent for three
keepalives (a NAT that forgot the connection's mapping) makes it register
again. It also sends REGISTER anew halfway through the registration's
`expires`, as SIP phones do.

Without keepalives nothing refreshes the phone's NAT mapping between two
REGISTERs: over UDP the mapping lives only the router's udp_timeout, and
once it is gone the PBX's invites are dropped on the way, unnoticed by the
phone; a TCP mapping lives the far longer established timeout.

Its control socket (one JSON request line, one JSON answer line) takes:

- {"op": "status"}: registered or not, with which PBX, since when, the last error;
- {"op": "register", "transport"?: "tcp"|"tls"|"udp", "keepalive"?: SECONDS,
  "certificate"?: NAME}: register again now (after `natlab nat set`, say) and
  answer once it is known how it went; transport and keepalive stay as they
  are unless given (keepalive 0: none); "certificate" presents another
  phone's certificate, which the PBX must refuse;
- {"op": "call", "to": PHONE, "seconds": 2.0, "mode": "ice"|"turn"|"host"|"srflx"|"relay"}:
  place a call, wait for its end, answer with the caller's CallReport (media.py);
- {"op": "reports"}: every call this phone took part in, as caller or callee.

Modes: "ice" gathers host, server-reflexive and (with a TURN server) relay
candidates; "turn" only relay candidates; "host" and "srflx" offer a single
address without ICE; "relay" asks the PBX to relay the media. The callee
answers in the caller's mode. A call sends RTP both ways for `seconds`
over what was set up, then the caller's bye and the callee's stats carry
each side's counts (and the pair each side selected) to the other.

Prints "ready" once its control socket serves; registration goes on in the
background. SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import signal
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from natlab.endpoints import tls
from natlab.endpoints.ice import IceMedia, Media, MediaError, TurnServer, UdpMedia, lab_timing
from natlab.endpoints.media import finish, send_rtp
from natlab.endpoints.signalling import (
    MAX_KEEPALIVE,
    MAX_LINE,
    MODES,
    NOT_REGISTERED,
    TRANSPORTS,
    DatagramInbox,
    Endpoint,
    Sdp,
    SignallingError,
    format_endpoint,
    read_message,
    serve_control,
    write_message,
)
from natlab.errors import NatlabError
from natlab.records import (
    PHONE_REQUESTS,
    CallReport,
    CallReports,
    CallRequest,
    Candidate,
    PhoneStatus,
    PingRequest,
    RegisterRequest,
    RtpCounts,
    SelectedPair,
    StatusRequest,
    request_from_json,
)

KEEPALIVE = 0.5  # seconds between keepalives, unless told otherwise
DEAD_AFTER = 3  # keepalives unanswered before the connection counts as lost
REFRESH = 0.5  # REGISTER again after this share of the registration's expires
CONNECT_TIMEOUT = 2.0
RETRY = 0.3  # seconds before registering again after a failure
REFUSED_RETRY = 5.0  # ... after the PBX refused us: it will refuse again
REGISTER_WAIT = 5.0  # how long a control request waits for a registration's outcome
ALIVE_WAIT = 0.5  # how long a call waits for the PBX to answer a keepalive before inviting
ANSWER_TIMEOUT = 8.0
DRAIN = 0.1  # seconds the caller keeps listening after it stops sending, before its bye
STATS_TIMEOUT = 3.0
MAX_REPORTS = 1000
CALLEE_SLACK = 20.0  # a callee gives up on a bye this long after the call should have ended


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
    transport: str = "tcp"
    keepalive: float = KEEPALIVE
    stun: tuple[Endpoint, ...] = ()
    turn: TurnServer | None = None


class Registrar:
    """The phone's registration: one connection to the PBX at a time, kept alive or redone."""

    def __init__(self, config: PhoneConfig, dispatch: Callable[[dict], None]) -> None:
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
        self._link: _Link | None = None
        self._task: asyncio.Task | None = None
        self._heard = 0.0
        self._settled = asyncio.Event()  # set after every attempt, whatever its outcome
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
        """Drop the current connection, register anew, answer once the outcome is known.

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
        if self.registered:
            self._pong.clear()
            self.send({"type": "keepalive"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pong.wait(), ALIVE_WAIT)
                return
        await self.register(self.transport, self.certificate)

    def send(self, message: dict) -> None:
        if self._link is None or not self.registered:
            raise Refused("not registered with the PBX")
        self._link.send(message)

    async def _run(self) -> None:
        while True:
            retry = RETRY
            self.attempts += 1
            try:
                await self._session()
            except Refused as refusal:
                self.error, retry = str(refusal), REFUSED_RETRY
            except (OSError, ssl.SSLError, SignallingError, TimeoutError) as error:
                self.error = f"{error.__class__.__name__}: {error}".rstrip(": ")
            finally:
                self._down()
            await asyncio.sleep(retry)

    def _down(self) -> None:
        self.registered = False
        if self._link is not None:
            self._link.close()
            self._link = None
        self._settled.set()

    def _endpoint(self) -> Endpoint:
        targets = {"tcp": self.config.pbx, "tls": self.config.pbx_tls, "udp": self.config.pbx_udp}
        target = targets[self.transport]
        if target is None:
            raise Refused(f"no PBX reachable over {self.transport} from this phone")
        return target

    async def _connect(self, target: Endpoint) -> _Link:
        host, port = target
        if self.transport == "udp":
            transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
                DatagramInbox, local_addr=(str(self.config.address), 0), remote_addr=target
            )
            return _DatagramLink(transport, inbox)
        context = None
        if self.transport == "tls":
            if self.config.ca is None:
                raise Refused("TLS needs the lab's CA, and this phone was given none")
            context = tls.client_context(self.config.ca, self.certificate)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context else None, limit=MAX_LINE
            ),
            CONNECT_TIMEOUT,
        )
        return _StreamLink(reader, writer)

    async def _session(self) -> None:
        self.target = self._endpoint()
        self._link = link = await self._connect(self.target)
        register = {"type": "register", "name": self.config.name}
        link.send(register)
        reply = await asyncio.wait_for(link.receive(), CONNECT_TIMEOUT)
        if reply is None:
            raise ConnectionError("the PBX closed the connection")
        if reply["type"] != "registered":
            raise Refused(f"the PBX refused the registration: {reply.get('reason', reply)}")
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        self.registered, self.since, self.error = True, time.time(), None
        self._settled.set()
        print(f"registered with {format_endpoint(self.target)} over {self.transport}", flush=True)
        upkeep = [asyncio.create_task(self._refresh(link, register, reply["expires"]))]
        if self.keepalive:
            upkeep.append(asyncio.create_task(self._keepalive(link, self.keepalive)))
        try:
            while (message := await link.receive()) is not None:
                self._heard = loop.time()
                if message["type"] == "keepalive":
                    self._pong.set()
                elif message["type"] == "error" and "call" not in message:
                    if message["reason"] == NOT_REGISTERED:  # it forgot us: register at once
                        raise ConnectionError("the PBX no longer knows this phone")
                    raise Refused(f"the PBX says: {message['reason']}")
                elif message["type"] != "registered":  # that is a refresh's answer
                    self.dispatch(message)
            raise ConnectionError("the PBX closed the connection")
        finally:
            for task in upkeep:
                task.cancel()

    async def _keepalive(self, link: _Link, every: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            if loop.time() - self._heard > every * DEAD_AFTER:
                print("the PBX stopped answering: registering again", flush=True)
                self.error = "the PBX stopped answering keepalives"
                link.abort()  # the session's reader sees the end and it starts again
                return
            link.send({"type": "keepalive"})

    async def _refresh(self, link: _Link, register: dict, expires: int) -> None:
        """REGISTER again before the PBX forgets us; one left unanswered means it is gone."""
        loop = asyncio.get_running_loop()
        sent: float | None = None
        while True:
            await asyncio.sleep(max(expires * REFRESH, 0.01))
            if sent is not None and self._heard < sent:
                self.error = "the PBX did not answer a REGISTER"
                link.abort()
                return
            link.send(register)
            sent = loop.time()


class _StreamLink:
    """A TCP or TLS connection to the PBX: one message a line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, message: dict) -> None:
        write_message(self.writer, message)

    async def receive(self) -> dict | None:
        return await read_message(self.reader)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


class _DatagramLink:
    """A UDP socket connected to the PBX: one message a datagram."""

    def __init__(self, transport: asyncio.BaseTransport, inbox: DatagramInbox) -> None:
        self.transport, self.inbox = transport, inbox

    def send(self, message: dict) -> None:
        self.inbox.send(message)

    async def receive(self) -> dict | None:
        message, _ = await self.inbox.queue.get()
        if isinstance(message, Exception):
            raise message
        return message

    def close(self) -> None:
        self.transport.close()

    abort = close  # receive() then sees the end


_Link = _StreamLink | _DatagramLink


class Phone:
    def __init__(self, config: PhoneConfig) -> None:
        self.config = config
        self.registrar = Registrar(config, self.dispatch)
        self.reports: list[CallReport] = []
        self.inboxes: dict[str, asyncio.Queue] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    # -- signalling ------------------------------------------------------------------------

    def dispatch(self, message: dict) -> None:
        """A message about a call, from the PBX: a new invite, or one for a call in progress."""
        call = message.get("call")
        if message["type"] == "invite":
            with contextlib.suppress(Refused):  # we are heard: the PBX stops sending it again
                self.registrar.send({"type": "ringing", "call": call})
            if call not in self.inboxes:  # not a copy the PBX sent again (UDP, a new registration)
                self.inboxes[call] = asyncio.Queue()
                self._spawn(self.answer(message))
        elif call in self.inboxes:
            self.inboxes[call].put_nowait(message)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expect(self, call: str, kinds: tuple[str, ...], timeout: float) -> dict:
        """The next message of those kinds about call; TimeoutError if none comes in time."""
        inbox = self.inboxes[call]
        async with asyncio.timeout(timeout):
            while True:
                message = await inbox.get()
                if message["type"] in kinds or message["type"] == "error":
                    return message

    # -- calls -----------------------------------------------------------------------------

    def media_for(self, mode: str, controlling: bool, remote: Sdp | None = None) -> Media:
        """A relayed offer means plain RTP to the relay, whatever the mode asked."""
        config = self.config
        if (remote is not None and remote.relay is not None) or mode == "relay":
            return UdpMedia(str(config.address), "host", config.stun)
        if mode in ("host", "srflx"):
            return UdpMedia(str(config.address), mode, config.stun)
        return IceMedia(controlling, config.stun, config.turn, relay_only=mode == "turn")

    async def call(self, to: str, seconds: float, mode: str) -> CallReport:
        call = f"{self.config.name}-{next(self._ids)}-{secrets.token_hex(3)}"
        report = CallReport(call, self.config.name, to, mode, "caller")
        self.inboxes[call] = asyncio.Queue()
        media: Media | None = None
        try:
            await self.registrar.ensure()
            media = self.media_for(mode, controlling=True)
            await media.prepare()
            self.registrar.send(
                {
                    "type": "invite",
                    "call": call,
                    "to": to,
                    "mode": mode,
                    "seconds": seconds,
                    "offer": media.local().as_json(),
                }
            )
            reply = await self._expect(call, ("answer",), ANSWER_TIMEOUT)
            if reply["type"] == "error":
                raise Refused(f"the call was refused: {reply['reason']}")
            remote = Sdp.from_json(reply["answer"])
            if remote.relay is not None and not isinstance(media, UdpMedia):
                await media.close()  # the PBX relays: no ICE, RTP to its relay port
                media = self.media_for(mode, True, remote)
                await media.prepare()
            stop = asyncio.Event()
            sender = await self._start_media(media, remote, report, stop)
            if sender is not None:
                await asyncio.sleep(seconds)
                stop.set()
                await sender
                await asyncio.sleep(DRAIN)
            self.registrar.send(
                {
                    "type": "bye",
                    "call": call,
                    "rtp": media.stream.counts.to_json(),
                    "selected": _pair_json(media.selected()),
                }
            )
            try:
                stats = await self._expect(call, ("stats",), STATS_TIMEOUT)
            except TimeoutError:
                stats = None
            self._close_with_peer(report, media, stats)
        except (Refused, MediaError, SignallingError, TimeoutError, OSError) as error:
            report.error = _describe(error)
            if media is not None:
                self._close_with_peer(report, media, None)
        finally:
            self.inboxes.pop(call, None)
        return self._keep(report)

    async def answer(self, invite: dict) -> None:
        call, mode = invite["call"], invite.get("mode", "ice")
        seconds = invite.get("seconds")
        seconds = float(seconds) if isinstance(seconds, int | float) else 60.0
        report = CallReport(call, invite.get("from", "?"), self.config.name, mode, "callee")
        media: Media | None = None
        try:
            remote = Sdp.from_json(invite["offer"])
            media = self.media_for(mode, controlling=False, remote=remote)
            await media.prepare()
            self.registrar.send({"type": "answer", "call": call, "answer": media.local().as_json()})
            stop = asyncio.Event()
            starting = asyncio.create_task(self._start_media(media, remote, report, stop))
            try:
                bye = await self._expect(call, ("bye",), seconds + CALLEE_SLACK)
            finally:
                stop.set()
                if not starting.done():  # the caller hung up before our checks ended
                    starting.cancel()
                    report.ice = "timeout"
            with contextlib.suppress(asyncio.CancelledError):
                sender = await starting
                if sender is not None:
                    await sender
            self.registrar.send(
                {
                    "type": "stats",
                    "call": call,
                    "rtp": media.stream.counts.to_json(),
                    "selected": _pair_json(media.selected()),
                }
            )
            self._close_with_peer(report, media, bye if bye["type"] == "bye" else None)
        except (Refused, MediaError, SignallingError, TimeoutError, OSError) as error:
            report.error = _describe(error)
            with contextlib.suppress(Refused, OSError):
                self.registrar.send({"type": "error", "call": call, "reason": report.error})
            if media is not None:
                self._close_with_peer(report, media, None)
        finally:
            self.inboxes.pop(call, None)
            self._keep(report)

    async def _start_media(
        self, media: Media, remote: Sdp, report: CallReport, stop: asyncio.Event
    ) -> asyncio.Task | None:
        """Connect (ICE checks, or nothing to do without ICE), then send until stop is set.

        None when ICE found no pair: nothing is sent.
        """
        report.ice = await media.connect(remote)
        if report.ice not in (None, "completed"):
            return None
        return asyncio.create_task(send_rtp(media.stream, media.send, stop))

    def _close_with_peer(self, report: CallReport, media: Media, peer: dict | None) -> None:
        """Fill the report from the media and the peer's bye or stats, then close the media."""
        report.rtp = replace(media.stream.counts)
        report.checks = media.checks()
        report.gathering = media.gathering
        report.selected_pair = pair = media.selected()
        if peer is not None and isinstance(peer.get("rtp"), dict):
            with contextlib.suppress(NatlabError):
                report.peer_rtp = RtpCounts.from_json(peer["rtp"])
            seen = (peer.get("selected") or {}).get("remote")
            if isinstance(media, IceMedia) and pair and isinstance(seen, dict):
                # Where the peer saw us is our side of the pair (RFC 8445 7.2.5.3.2).
                address = str(seen.get("address", ""))
                local = Candidate(address, media.kind_of(address), base=pair.local.address)
                report.selected_pair = SelectedPair(local, pair.remote)
        self._spawn(media.close())

    def _keep(self, report: CallReport) -> CallReport:
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
            return (await self.call(asked.to, float(asked.seconds), asked.mode)).to_json()
        return CallReports(list(self.reports)).to_json()  # ReportsRequest, the last one served


def _pair_json(pair: SelectedPair | None) -> dict | None:
    return None if pair is None else pair.to_json()


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
    print("ready", config.name, flush=True)
    phone.registrar.start()
    await stopped.wait()
    server.close()
    await phone.registrar.stop()
    config.control.unlink(missing_ok=True)


def run(config: PhoneConfig) -> int:
    """The phone's process: serve until SIGTERM."""
    lab_timing()
    asyncio.run(serve(config))
    return 0
