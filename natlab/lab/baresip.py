"""BaresipPhone: natlab's hand on a baresip phone in a lab node (`agent: baresip`).

baresip's ctrl_tcp module takes JSON commands framed as netstrings
(`LEN:{...},`) on the node's loopback and answers each with a response that
carries the command's token; it also pushes events down the newest
connection, which this client reads past. Every request opens its own
connection from inside the node's namespace, so any process (a test, a
scenario step, the CLI) can drive the phone without holding one open.

What natlab reads back is baresip's own word: `reginfo` for the
registration, `listcalls` for the call's state, and `audio_debug` for the
RTP packets its audio stream has sent and received (its RTCP session's
TX count and the packets received from each peer it has heard).
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass

from natlab.endpoints.baresip import CONTROL_PORT
from natlab.errors import NatlabError
from natlab.plumbing import namespaces
from natlab.records import PhoneStatus

TIMEOUT = 3.0  # seconds for an answer to one command
MAX_FRAME = 1 << 20  # bytes: a longer netstring is refused, not buffered
POLL = 0.1
CALL_LINE = re.compile(r"\[line \d+\]\s+\S+\s+(?P<state>[A-Z_]+)\s+(?P<peer>\S+)")
TX_PACKETS = re.compile(r"TX: packets=(\d+)")
RX_PACKETS = re.compile(r"\brcvd=(\d+)")


@dataclass(frozen=True)
class Call:
    """A call as `listcalls` shows it."""

    state: str  # INCOMING, OUTGOING, RINGING, EARLY, ESTABLISHED, ...
    peer: str  # the other side's URI


@dataclass(frozen=True)
class RtpCounts:
    """RTP packets of the current call's audio stream, as baresip counts them."""

    sent: int
    received: int


class BaresipPhone:
    """A baresip in node `name` (namespace `namespace`), driven over its control interface."""

    def __init__(
        self, name: str, namespace: str, port: int = CONTROL_PORT, timeout: float = TIMEOUT
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.port = port
        self.timeout = timeout
        self._token = 0

    def ask(self, command: str, params: str | None = None) -> str:
        """Run one command; its answer's text. A NatlabError if it fails or none comes."""
        self._token += 1
        token = f"natlab-{self._token}"
        request = json.dumps({"command": command, "params": params, "token": token}).encode()
        try:
            with namespaces.entered(self.namespace):  # the socket stays in the node's namespace
                connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with connection:
                connection.settimeout(self.timeout)
                connection.connect(("127.0.0.1", self.port))
                connection.sendall(b"%d:%s," % (len(request), request))
                answer = read_response(connection, token, time.monotonic() + self.timeout)
        except OSError as error:
            raise NatlabError(
                f"baresip of '{self.name}' does not answer on its control port {self.port}: "
                f"{error.strerror or error}",
                fix=f"see its log, nodes/{self.name}.log in the lab's state directory",
            ) from None
        if not answer.get("ok"):
            raise NatlabError(
                f"baresip of '{self.name}' refused '{command}': {answer.get('data', '')}".strip()
            )
        return str(answer.get("data") or "")

    # -- what it is doing ----------------------------------------------------------------

    def registered(self) -> bool:
        """Has its registrar accepted its account (reginfo says OK)?"""
        return parse_registered(self.ask("reginfo"))

    def status(self) -> PhoneStatus:
        """Its registration, in the shape natlab's own phones give theirs."""
        reginfo = self.ask("reginfo")
        if parse_registered(reginfo):
            return PhoneStatus(self.name, registered=True, transport="udp")
        return PhoneStatus(self.name, registered=False, error=_plain(reginfo).strip() or None)

    def calls(self) -> list[Call]:
        return parse_calls(self.ask("listcalls"))

    def call_state(self) -> str | None:
        """The state of its call (the first one listed); None without a call."""
        calls = self.calls()
        return calls[0].state if calls else None

    def rtp(self) -> RtpCounts:
        """RTP packets sent and received in the current call (0, 0 without one)."""
        return parse_rtp(self.ask("audio_debug"))

    # -- what it should do ---------------------------------------------------------------

    def dial(self, uri: str) -> None:
        """Call uri (sip:user@host, or a user of its own registrar's domain)."""
        self.ask("dial", uri)

    def answer(self) -> None:
        self.ask("accept")

    def hang_up(self) -> None:
        self.ask("hangup")

    def wait_for(self, state: str | None, timeout: float = 10.0) -> None:
        """Until its call is in `state` (None: it has no call); a NatlabError if time runs out."""
        deadline = time.monotonic() + timeout
        while (now := self.call_state()) != state:
            if time.monotonic() > deadline:
                raise NatlabError(
                    f"baresip of '{self.name}': its call is {now or 'gone'}, "
                    f"not {state or 'gone'}, after {timeout:g} s"
                )
            time.sleep(POLL)

    def wait_registered(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline:
                raise NatlabError(
                    f"baresip of '{self.name}' did not register in {timeout:g} s",
                    fix=f"its registration: {_plain(self.ask('reginfo')).strip()}",
                )
            time.sleep(POLL)


# -- reading baresip's answers -------------------------------------------------------------


def parse_registered(reginfo: str) -> bool:
    """`reginfo`'s answer: does its account's line say OK?"""
    return bool(re.search(r"\bOK\b", _plain(reginfo)))


def parse_calls(listcalls: str) -> list[Call]:
    """`listcalls`'s answer: each call's state and peer."""
    return [Call(m["state"], m["peer"]) for m in CALL_LINE.finditer(listcalls)]


def parse_rtp(audio_debug: str) -> RtpCounts:
    """`audio_debug`'s answer: RTP packets sent (TX) and received from every peer (rcvd)."""
    sent = sum(int(n) for n in TX_PACKETS.findall(audio_debug))
    received = sum(int(n) for n in RX_PACKETS.findall(audio_debug))
    return RtpCounts(sent, received)


def _plain(text: str) -> str:
    """baresip's text without its terminal colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def read_response(connection: socket.socket, token: str, deadline: float) -> dict:
    """Read netstrings until the response with our token (events are read past)."""
    buffer = b""
    while True:
        while (frame := split_netstring(buffer)) is not None:
            payload, buffer = frame
            try:
                message = json.loads(payload)
            except ValueError:
                raise OSError(f"not JSON: {payload[:80]!r}") from None
            if (
                isinstance(message, dict)
                and message.get("response")
                and (message.get("token") == token)
            ):
                return message
        if time.monotonic() > deadline:
            raise TimeoutError("no answer in time")
        data = connection.recv(65536)
        if not data:
            raise ConnectionResetError("it closed the connection")
        buffer += data


def split_netstring(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The first netstring's payload and what follows it; None if it is not whole yet."""
    length, colon, rest = buffer.partition(b":")
    if not colon:
        if len(buffer) > 10:
            raise OSError("a netstring without a length")
        return None
    if not length.isdigit() or int(length) > MAX_FRAME:
        raise OSError(f"a bad netstring length {length[:12]!r}")
    size = int(length)
    if len(rest) < size + 1:
        return None
    if rest[size : size + 1] != b",":
        raise OSError("a netstring without its closing comma")
    return rest[:size], rest[size + 1 :]
