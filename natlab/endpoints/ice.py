"""The two ways a phone's media reaches the other phone: ICE (aioice), or a plain UDP address.

IceMedia gathers host and relay candidates with aioice, and server-reflexive
ones from every STUN server the phone knows at once (the first to answer
wins, as natlab.endpoints.stun_client.first_answer does): a server given by
name is every address its name resolves to, all resolved and asked at once
(stun_addresses), so one server that is down costs no time while another
answers. Each media keeps how long its gathering took. Then IceMedia runs aioice's
connectivity checks, bounded in time: a pair that cannot work must give up
in seconds, not in aioice's default half-minute. Answered without ICE, it
runs no checks: it sends plain RTP from the socket of its default candidate
(what its offer's c=/m= said, where the peer sends) to the answer's c=/m=
(sdp_offer.ice_fallback, RFC 8839 3.2.3).

UdpMedia is the classic phone without ICE: it offers one address (its host
address, or the mapping a STUN server saw) and sends its RTP straight to
the address the other side offered, or to the PBX's relay when the PBX
put one in. That is how one-way audio happens, and how an SBC fixes it.

Both count the peer's RTP in an RtpStream (media.py).

aioice has no public way to its sockets, to what arrived without a pair, to
the nominated pair or to its check list, so IceMedia reads `_protocols`,
`_queue`, `_nominated` and `_check_list`; tests/unit/endpoints/
test_ice_loopback.py runs them against the installed aioice.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aioice
import aioice.stun
from aioice import Candidate, Connection, TransportPolicy
from aioice.ice import CandidatePair, StunProtocol, server_reflexive_candidate

from natlab import records
from natlab.endpoints.media import RtpStream
from natlab.endpoints.sdp_offer import Fallback, MediaOffer, ice_fallback
from natlab.endpoints.sip_transport import Endpoint, format_endpoint
from natlab.endpoints.stun_client import StunClient, addresses_of
from natlab.records import IceCheck, SelectedPair
from natlab.stun import Address

ICE_TIMEOUT = 5.0  # the whole connect(); checks themselves give up after ~1.5 s (lab_timing)
GATHER_TIMEOUT = 2.0
CLOSE_TIMEOUT = 2.0


def lab_timing() -> None:
    """Retransmit aioice's STUN transactions on a lab's scale: 100 ms RTO, 3 retransmissions.

    A lab round trip is well under a millisecond, and aioice's defaults
    (500 ms doubling, 6 retransmissions) keep a dead pair in progress for
    31.5 s; with these it fails after 1.5 s (a check unanswered for 0.8 s
    in a lab is lost, not late). Called once in a phone's process.
    """
    aioice.stun.RETRY_RTO = 0.1
    aioice.stun.RETRY_MAX = 3


async def stun_addresses(servers: Sequence[Endpoint]) -> list[Endpoint]:
    """Every IPv4 address of every STUN server, their names resolved at once, in order.

    A name that does not resolve gives none: like a server that is down, it
    must not keep the phone from the servers that answer.
    """
    loop = asyncio.get_running_loop()

    async def each(host: str, port: int) -> list[Endpoint]:
        try:
            found = await loop.run_in_executor(None, addresses_of, host, port)
        except (socket.gaierror, UnicodeError):
            return []
        return [(str(a.ip), a.port) for a in found if a.ip.version == 4]

    lists = await asyncio.gather(*(each(host, port) for host, port in servers))
    return list(dict.fromkeys(address for found in lists for address in found))


class MediaError(Exception):
    """Media could not be set up at all (no STUN answer, no TURN allocation...)."""


@dataclass(frozen=True)
class TurnServer:
    address: Endpoint
    username: str
    password: str


def _state(pair: CandidatePair) -> str:
    return pair.state.name.lower().replace("_", "-")


def _side(candidate: Candidate) -> records.Candidate:
    return records.Candidate(format_endpoint((candidate.host, candidate.port)), candidate.type)


class IceMedia:
    """An aioice connection with one component; the caller is the controlling agent."""

    def __init__(
        self,
        controlling: bool,
        stun: Sequence[Endpoint],
        turn: TurnServer | None,
        relay_only: bool = False,
    ) -> None:
        if relay_only and turn is None:
            raise MediaError("relay-only ICE needs a TURN server, and this lab has none")
        self.stun = stun if not relay_only else ()
        self.connection = Connection(
            ice_controlling=controlling,
            components=1,
            turn_server=turn.address if turn else None,
            turn_username=turn.username if turn else None,
            turn_password=turn.password if turn else None,
            use_ipv6=False,
            transport_policy=TransportPolicy.RELAY if relay_only else TransportPolicy.ALL,
        )
        self.stream = RtpStream()
        self.candidates: list[Candidate] = []
        self.gathering: float | None = None  # seconds prepare() took to gather candidates
        self.fallback: Fallback | None = None  # answered without ICE: plain RTP, where from, to
        self._plain: StunProtocol | None = None  # the fallback's socket: the default candidate's
        self._via_relay = False  # the fallback's destination is the PBX's relay
        self._receiver: asyncio.Task | None = None

    async def prepare(self) -> None:
        began = time.monotonic()
        servers = await stun_addresses(self.stun)
        await self.connection.gather_candidates()
        self.candidates = self.connection.local_candidates
        if servers:
            # aioice asks a single STUN server; a phone asks all of its servers at once.
            # Its host sockets are the (private) protocols whose local candidate is a host one.
            hosts = [p for p in self.connection._protocols if p.local_candidate.type == "host"]
            found = await asyncio.gather(*(self._reflexive(p, servers) for p in hosts))
            self.candidates += [c for c in found if c is not None]
        self.gathering = time.monotonic() - began
        if not self.candidates:
            raise MediaError("no ICE candidate could be gathered")

    async def _reflexive(
        self, protocol: StunProtocol, servers: Sequence[Endpoint]
    ) -> Candidate | None:
        tasks = [
            asyncio.create_task(server_reflexive_candidate(protocol, server)) for server in servers
        ]
        try:
            for finished in asyncio.as_completed(tasks, timeout=GATHER_TIMEOUT):
                try:
                    candidate, _ = await finished
                except (aioice.stun.TransactionError, OSError):
                    continue
                return candidate
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
        return None

    def local(self) -> MediaOffer:
        return MediaOffer(
            ufrag=self.connection.local_username,
            pwd=self.connection.local_password,
            candidates=tuple(c.to_sdp() for c in self.candidates),
        )

    async def connect(self, remote: MediaOffer) -> str | None:
        """Run the checks; "completed", or "failed" / "timeout" when no pair was nominated.

        None: the peer has no ICE, and RTP goes plainly (sdp_offer.ice_fallback).
        """
        self.fallback = ice_fallback(self.local(), remote)
        if self.fallback is not None:
            self._plain = self._socket_at(self.fallback.source)
            self._via_relay = remote.relay
            self._receiver = asyncio.create_task(self._receive())
            return None
        connection = self.connection
        connection.remote_username, connection.remote_password = remote.ufrag, remote.pwd
        for line in remote.candidates:
            try:
                candidate = Candidate.from_sdp(line)
            except ValueError:
                continue  # a peer's garbage candidate is its problem, not a crash of ours
            await connection.add_remote_candidate(candidate)
        await connection.add_remote_candidate(None)
        try:
            await asyncio.wait_for(connection.connect(), ICE_TIMEOUT)
        except TimeoutError:
            return "timeout"
        except ConnectionError:
            return "failed"
        self._receiver = asyncio.create_task(self._receive())
        return "completed"

    def _socket_at(self, source: Endpoint) -> StunProtocol:
        """The socket of our candidate at `source`: its own, or its base's (a srflx one)."""
        for candidate in self.candidates:
            if (candidate.host, candidate.port) == source:
                base = (candidate.related_address, candidate.related_port)
                for protocol in self.connection._protocols:
                    local = protocol.local_candidate
                    if (local.host, local.port) in (source, base):
                        return protocol
        raise MediaError(f"no socket of ours sends from {format_endpoint(source)}")

    async def _receive(self) -> None:
        while True:
            if self.fallback is not None:  # no pair: aioice queues what any socket received
                got = await self.connection._queue.get()
                data = got[0] if got is not None else None
            else:
                try:
                    data = await self.connection.recv()
                except ConnectionError:
                    data = None
            if data is None:
                return
            self.stream.receive(data, time.time())

    async def send(self, data: bytes) -> None:
        if self._plain is not None and self.fallback is not None:
            await self._plain.send_data(data, self.fallback.destination)
            return
        await self.connection.send(data)

    def selected(self) -> SelectedPair | None:
        if self._plain is not None and self.fallback is not None:
            kind = "relay" if self._via_relay else "host"
            remote = records.Candidate(format_endpoint(self.fallback.destination), kind)
            return SelectedPair(_side(self._plain.local_candidate), remote)
        pair = self.connection._nominated.get(1)  # aioice's selected pair
        if pair is None:
            return None
        return SelectedPair(_side(pair.local_candidate), _side(pair.remote_candidate))

    def checks(self) -> list[IceCheck]:
        """Every pair aioice kept in its check list, with the state it reached."""
        return [
            IceCheck(
                local=format_endpoint(pair.local_addr),
                remote=format_endpoint(pair.remote_addr),
                local_type=pair.local_candidate.type,
                remote_type=pair.remote_candidate.type,
                state=_state(pair),
            )
            for pair in self.connection._check_list
        ]

    def kind_of(self, address: str) -> str:
        """What kind of our candidates the peer saw us as: a known one, else peer-reflexive."""
        for candidate in self.candidates:
            if format_endpoint((candidate.host, candidate.port)) == address:
                return candidate.type
        return "prflx"

    async def close(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
        # A TURN server that does not answer the release: its allocation expires on its own.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connection.close(), CLOSE_TIMEOUT)


class _Counting(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.stream.receive(data, time.time())


class UdpMedia:
    """One UDP socket: offers its host address, or its STUN mapping, and no ICE at all."""

    def __init__(self, address: str, kind: str, stun: Sequence[Endpoint]) -> None:
        self.kind = kind  # "host" | "srflx"
        self.address = address
        self.stun = stun
        self.stream = RtpStream()
        self.offered: Endpoint | None = None
        self.destination: Endpoint | None = None
        self.via_relay = False
        self.gathering: float | None = None  # seconds prepare() took to find its address
        self._transport: asyncio.DatagramTransport | None = None

    async def prepare(self) -> None:
        began = time.monotonic()
        client = StunClient.open(Address.of(self.address, 0))
        sock = client.sock
        try:
            if self.kind == "srflx":
                if not self.stun:
                    raise MediaError("a STUN address needs a STUN server, and this lab has none")
                servers = [Address.of(host, port) for host, port in await stun_addresses(self.stun)]
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(None, client.first_answer, servers)
                if answer is None:
                    raise MediaError("no STUN server answered")
                self.offered = (str(answer.mapped.ip), answer.mapped.port)
            else:
                self.offered = sock.getsockname()[:2]
            self.gathering = time.monotonic() - began
            sock.setblocking(False)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Counting(self.stream), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._transport = transport

    def local(self) -> MediaOffer:
        return MediaOffer(rtp=self.offered)

    async def connect(self, remote: MediaOffer) -> str | None:
        """Send to the address the peer offered, or the PBX's relay that replaced it."""
        self.via_relay = remote.relay
        self.destination = remote.rtp
        return None

    async def send(self, data: bytes) -> None:
        if self._transport is not None and self.destination is not None:
            self._transport.sendto(data, self.destination)

    def selected(self) -> SelectedPair | None:
        if self.offered is None or self.destination is None:
            return None
        return SelectedPair(
            records.Candidate(format_endpoint(self.offered), self.kind),
            records.Candidate(
                format_endpoint(self.destination), "relay" if self.via_relay else self.kind
            ),
        )

    def checks(self) -> list[IceCheck]:
        return []

    def kind_of(self, address: str) -> str:
        return self.kind

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


Media = IceMedia | UdpMedia
