"""An ICE agent (RFC 8445) cut down to what decides whether two NATs let a call through.

One component, one local UDP socket, full ICE on both sides, time from the
simulated network (network.py):

- Gathering: the host candidate, and a server-reflexive one learnt by a
  STUN Binding to the STUN server from that same socket, retransmitted as
  RFC 8489 6.2.1 says (RTO 500 ms doubling, 7 requests, then 16 RTO).
- Checks: one pair per remote candidate, since a local server-reflexive
  candidate is pruned to its base, the socket (RFC 8445 6.1.2.4). Every Ta
  the agent sends its next triggered check, else its highest-priority
  waiting pair: a Binding request with USERNAME, PRIORITY,
  ICE-CONTROLLING/-CONTROLLED, MESSAGE-INTEGRITY and FINGERPRINT,
  retransmitted like any STUN request.
- A request received is answered (XOR-MAPPED-ADDRESS of its source); a
  source that is no remote candidate yet is learnt as peer-reflexive, and a
  triggered check goes back on that pair unless it already succeeded
  (7.3.1.3, 7.3.1.4). Checks may arrive before the remote's candidates do
  (the answerer starts first); they are answered and their triggered
  checks wait for `start_checks`, whose candidates then take the place of
  the peer-reflexive ones learnt at the same addresses.
- A pair is valid when its request got a success response whose source is
  the address the request went to (7.2.5.2.1: otherwise the pair fails).
  The valid pair's local candidate is the mapped address the response
  reports: host, server-reflexive or a new peer-reflexive one.

Each agent then sends media to the remote address of its best valid pair,
if it has one; the call's verdict is the lab's own (natlab.endpoints.media)
from RTP counts alone. Left out, because they do not change what a NAT lets
through: candidate freezing and foundations, nomination, role conflicts,
keepalives, TURN.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from natlab.core.packets import Endpoint
from natlab.endpoints.media import INTERVAL, RtpStream
from natlab.stun import (
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    PRIORITY,
    USERNAME,
    XOR_MAPPED_ADDRESS,
    Address,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decode,
    encode,
    short_term_key,
    verify_fingerprint,
    verify_integrity,
)

from .network import Host, Network

TA = 0.050  # pacing of new checks (RFC 8445 14.2)
RTO = 0.5  # first retransmission timeout (RFC 8489 6.2.1)
RC = 7  # requests per transaction
RM = 16  # after the last request, wait RM * RTO for its response
TYPE_PREFERENCE = {"host": 126, "prflx": 110, "srflx": 100}  # RFC 8445 5.1.2.2


def priority(kind: str) -> int:
    """RFC 8445 5.1.2.1 for component 1 and the one local interface."""
    return (TYPE_PREFERENCE[kind] << 24) + (65535 << 8) + 255


@dataclass(frozen=True)
class Candidate:
    kind: str  # host, srflx, prflx
    address: Endpoint
    priority: int

    def __str__(self) -> str:
        return f"{self.kind} {self.address}"


@dataclass(frozen=True)
class Offer:
    """What one agent tells the other out of band (SDP, in a phone)."""

    ufrag: str
    password: str
    candidates: tuple[Candidate, ...]


@dataclass
class Pair:
    remote: Candidate
    state: str = "waiting"  # waiting, in-progress, succeeded, failed


@dataclass(frozen=True)
class ValidPair:
    local: Candidate
    remote: Candidate
    priority: int

    def __str__(self) -> str:
        return f"{self.local} -> {self.remote}"


@dataclass
class _Transaction:
    destination: Endpoint
    request: bytes
    on_response: Callable[[Endpoint, bytes, Message], None]
    on_timeout: Callable[[], None]
    sent: int = 0
    done: bool = False


@dataclass
class Agent:
    """One phone's ICE agent on `host`:`port`; the caller is the controlling one."""

    network: Network
    host: Host
    port: int
    name: str
    controlling: bool
    stun_server: Endpoint
    offer_host: bool = True  # False: keep the host candidate out of the offer
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.socket = self.host.bind(self.port, self._receive)
        self.ufrag = self.name
        self.password = f"{self.name}-password-of-22-chars-or-more"
        self.local = [Candidate("host", self.socket.endpoint, priority("host"))]
        self.gathered = False
        self.remote: Offer | None = None
        self.pairs: dict[Endpoint, Pair] = {}
        self.valid: list[ValidPair] = []
        self.media = RtpStream(ssrc=zlib.crc32(self.name.encode()))
        self._random = random.Random(self.name)
        self._transactions: dict[bytes, _Transaction] = {}
        self._triggered: deque[Pair] = deque()
        self._pacing = False

    # -- gathering ----------------------------------------------------------------------------

    def gather(self) -> None:
        request = Message(Method.BINDING, MessageClass.REQUEST, self._transaction_id())
        self._start(self.stun_server, request, self._gathered, self._gathering_failed)

    def _gathered(self, source: Endpoint, data: bytes, response: Message) -> None:
        mapped = response.get(XOR_MAPPED_ADDRESS)
        if response.message_class is MessageClass.SUCCESS and mapped is not None:
            reflexive = Endpoint(str(mapped.ip), mapped.port)
            self.log.append(f"t={self.network.now:.3f} server-reflexive {reflexive}")
            if reflexive != self.socket.endpoint:  # else redundant with the host candidate
                self.local.append(Candidate("srflx", reflexive, priority("srflx")))
        self.gathered = True

    def _gathering_failed(self) -> None:
        self.log.append(f"t={self.network.now:.3f} no answer from STUN server {self.stun_server}")
        self.gathered = True

    def offer(self) -> Offer:
        shown = [c for c in self.local if self.offer_host or c.kind != "host"]
        return Offer(self.ufrag, self.password, tuple(shown))

    # -- checks -------------------------------------------------------------------------------

    def start_checks(self, remote: Offer) -> None:
        """The remote's offer arrived: pair up and start checking."""
        self.remote = remote
        self.log.append(
            f"t={self.network.now:.3f} remote offers {', '.join(map(str, remote.candidates))}"
        )
        for candidate in remote.candidates:
            pair = self.pairs.setdefault(candidate.address, Pair(candidate))
            pair.remote = candidate  # a peer-reflexive one learnt early is this one
        self._pace()

    def _pace(self) -> None:
        """Send one check now and come back in Ta, while there is a check to send."""
        if self.remote is None:
            return
        pair = self._next_pair()
        if pair is None:
            self._pacing = False
            return
        self._pacing = True
        self._check(pair)
        self.network.later(TA, self._pace)

    def _next_pair(self) -> Pair | None:
        while self._triggered:
            pair = self._triggered.popleft()
            if pair.state != "succeeded":
                return pair
        waiting = [p for p in self.pairs.values() if p.state == "waiting"]
        return max(
            waiting, key=lambda p: self._pair_priority(self.local[0], p.remote), default=None
        )

    def _check(self, pair: Pair) -> None:
        assert self.remote is not None
        pair.state = "in-progress"
        role = ICE_CONTROLLING if self.controlling else ICE_CONTROLLED
        request = Message(
            Method.BINDING,
            MessageClass.REQUEST,
            self._transaction_id(),
            (
                USERNAME(f"{self.remote.ufrag}:{self.ufrag}"),
                PRIORITY(priority("prflx")),
                role(self._random.getrandbits(64)),
            ),
        )
        key = short_term_key(self.remote.password)
        self.log.append(f"t={self.network.now:.3f} check {pair.remote}")

        def answered(source: Endpoint, data: bytes, response: Message) -> None:
            self._answered(pair, source, data, response)

        def failed() -> None:
            if pair.state == "in-progress":
                pair.state = "failed"
                self.log.append(f"t={self.network.now:.3f} check {pair.remote} timed out")

        self._start(pair.remote.address, request, answered, failed, key)

    def _answered(self, pair: Pair, source: Endpoint, data: bytes, response: Message) -> None:
        assert self.remote is not None
        now = f"t={self.network.now:.3f}"
        mapped = response.get(XOR_MAPPED_ADDRESS)
        if source != pair.remote.address:
            pair.state = "failed"
            self.log.append(f"{now} check {pair.remote}: answered from {source}, not symmetric")
            return
        if (
            response.message_class is not MessageClass.SUCCESS
            or mapped is None
            or not verify_integrity(data, short_term_key(self.remote.password))
        ):
            pair.state = "failed"
            self.log.append(f"{now} check {pair.remote}: refused or not authentic")
            return
        address = Endpoint(str(mapped.ip), mapped.port)
        local = next((c for c in self.local if c.address == address), None)
        if local is None:
            local = Candidate("prflx", address, priority("prflx"))
            self.local.append(local)
        pair.state = "succeeded"
        valid = ValidPair(local, pair.remote, self._pair_priority(local, pair.remote))
        self.valid.append(valid)
        self.log.append(f"{now} valid {valid}")

    def _pair_priority(self, local: Candidate, remote: Candidate) -> int:
        """RFC 8445 6.1.2.3: G is the controlling agent's candidate, D the controlled one's."""
        g, d = (local, remote) if self.controlling else (remote, local)
        return (
            (min(g.priority, d.priority) << 32)
            + 2 * max(g.priority, d.priority)
            + (g.priority > d.priority)
        )

    @property
    def selected(self) -> ValidPair | None:
        return max(self.valid, key=lambda v: v.priority, default=None)

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, source: Endpoint, data: bytes) -> None:
        if data[:1] and data[0] >> 6 == 0:  # STUN (RFC 7983); RTP starts with version 2
            self._receive_stun(source, data)
        else:
            self.media.receive(data, self.network.now)

    def _receive_stun(self, source: Endpoint, data: bytes) -> None:
        try:
            message = decode(data)
        except StunDecodeError:
            return
        if message.message_class is MessageClass.REQUEST:
            self._answer_check(source, data, message)
            return
        transaction = self._transactions.get(message.transaction_id)
        if transaction is not None and not transaction.done:
            transaction.done = True
            transaction.on_response(source, data, message)

    def _answer_check(self, source: Endpoint, data: bytes, request: Message) -> None:
        """Answer a check from the peer and check back on its pair (a triggered check)."""
        username = request.get(USERNAME) or ""
        key = short_term_key(self.password)
        if not username.startswith(f"{self.ufrag}:") or not verify_integrity(data, key):
            self.log.append(f"t={self.network.now:.3f} ignored a request from {source}")
            return
        if not verify_fingerprint(data):
            return
        response = Message(
            Method.BINDING,
            MessageClass.SUCCESS,
            request.transaction_id,
            (XOR_MAPPED_ADDRESS(Address.of(source.address, source.port)),),
        )
        self.socket.send(source, encode(response, integrity_key=key, fingerprint=True))
        pair = self.pairs.get(source)
        if pair is None:
            prflx = Candidate("prflx", source, request.get(PRIORITY) or priority("prflx"))
            pair = self.pairs[source] = Pair(prflx)
            self.log.append(f"t={self.network.now:.3f} learnt {prflx} from its check")
        if pair.state != "succeeded" and pair not in self._triggered:
            if pair.state == "failed":
                pair.state = "waiting"
            self._triggered.append(pair)
            if not self._pacing:
                self._pace()

    # -- STUN transactions --------------------------------------------------------------------

    def _transaction_id(self) -> bytes:
        return self._random.randbytes(12)

    def _start(
        self,
        destination: Endpoint,
        request: Message,
        on_response: Callable[[Endpoint, bytes, Message], None],
        on_timeout: Callable[[], None],
        key: bytes | None = None,
    ) -> None:
        data = encode(request, integrity_key=key, fingerprint=True)
        transaction = _Transaction(destination, data, on_response, on_timeout)
        self._transactions[request.transaction_id] = transaction
        self._transmit(transaction)

    def _transmit(self, transaction: _Transaction) -> None:
        """Send (again) and schedule the next retransmission, or the final timeout."""
        if transaction.done:
            return
        if transaction.sent == RC:
            transaction.done = True
            transaction.on_timeout()
            return
        self.socket.send(transaction.destination, transaction.request)
        transaction.sent += 1
        wait = RTO * RM if transaction.sent == RC else RTO * 2 ** (transaction.sent - 1)
        self.network.later(wait, lambda: self._transmit(transaction))

    # -- media --------------------------------------------------------------------------------

    def send_media(self, packets: int) -> None:
        """A call's RTP to the best valid pair's remote, one packet every 20 ms; none without."""
        selected = self.selected
        if selected is None:
            return
        for n in range(packets):
            self.network.later(
                n * INTERVAL,
                lambda: self.socket.send(selected.remote.address, self.media.next_packet()),
            )
