"""The SIP ALG of a consumer router, as a pure rewrite of one SIP payload passing it.

It lives in natlab.sip, not natlab.core, because it needs the SIP and SDP
codecs and natlab.core imports nothing of natlab but errors.

Given the payload a private host sent (UDP or TCP to port 5060), the router's
mapping for that sender and a way to map media ports, `rewrite` mode does what
a working ALG does: the sender's private endpoint (address and port) in the top
Via and Contact becomes its public mapping (a Contact naming another port of the
host's stays, as with Linux's nf_nat_sip), its private address in the SDP's c=,
m= and a=candidate becomes the public one, media
ports get mappings (pinholes) through `map_media`, Content-Length follows the
new body. `broken` mode is the field's broken ALG: signalling is rewritten the
same way, but the SDP gets the public address with the private port and no
pinhole, so the call rings and the media goes nowhere.

For each media section `rewrite` mode maps the RTP port and the RTCP port
(a=rtcp's, else RTP + 1, RFC 3605) and writes a=rtcp when the public RTCP port
is not the public RTP port + 1, so the peer's RTCP finds its pinhole too.

A REGISTER's Contact that names the sender's address on another port (a
phone over TCP naming the port it listens on, or over UDP from another port)
gets, in `rewrite` mode, a signalling pinhole, as Linux's nf_conntrack_sip
expects the registrar's calls (sip_direct_signalling=1): `map_contact` opens
a mapping for the Contact's transport (udp, or tcp by its transport
parameter) that lets in only the registrar, for the registration's expiry
(the Contact's expires, else the Expires header, else REGISTRATION_LIFETIME,
and never longer), and the Contact names its public endpoint; an expiry of 0
closes it (the Contact still names it, for the registrar to find the binding
it removes). Only the first Contact, as Linux; other transports stay.

Inbound (`rewrite_inbound`, public -> private, both modes, as consumer ALGs
do it): the Request-URI of a request and the top Via of a response that name
the router's public endpoint of the host get the host's private address back,
so the host recognises its own transaction and its own URI.

The message is re-serialised by natlab.sip.message (canonical header names,
unfolded). Payloads that are not SIP natlab can parse pass byte for byte, with
an event; neither function raises on any input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from natlab.sip import message as sip
from natlab.sip import sdp
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via, asked_expiry, param, parse_params

AlgMode = Literal["rewrite", "broken"]
Address = tuple[str, int]
MediaMapper = Callable[[Address], Address]
"""Given a private (ip, port) of media, the public (ip, port) the router mapped it to."""
ContactMapper = Callable[[str, Address, float], Address | None]
"""Given a REGISTER's Contact transport ("udp" or "tcp"), the private (ip, port) it names and
the seconds the registration asks for (0: it ends), the public (ip, port) the router lets the
registrar reach it at (for 0: the one it did); None: no pinhole, the Contact stays."""

REGISTRATION_LIFETIME = 3600.0  # seconds a registration pinhole lives at most (Linux: sip_timeout)


@dataclass(frozen=True)
class Rewritten:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class PinholeOpened:
    private: Address
    public: Address


@dataclass(frozen=True)
class Untouched:
    reason: str


AlgEvent = Rewritten | PinholeOpened | Untouched


@dataclass(frozen=True)
class AlgResult:
    payload: bytes
    events: tuple[AlgEvent, ...]


def rewrite(
    payload: bytes,
    *,
    mode: AlgMode,
    private: Address,
    public: Address,
    map_media: MediaMapper,
    map_contact: ContactMapper | None = None,
) -> AlgResult:
    """Rewrite one SIP payload the host at `private` sent, which leaves as `public`;
    without `map_contact` a REGISTER's Contact gets no pinhole."""
    try:
        message = sip.parse(payload)
        register = None
        if mode == "rewrite" and map_contact is not None and _is_register(message):
            register = _registration(message, map_contact)
        return _rewrite_outbound(payload, message, mode, private, public, map_media, register)
    except SipError as exc:
        return AlgResult(payload, (Untouched(f"not SIP natlab can parse: {exc.reason}"),))


def rewrite_inbound(payload: bytes, *, public: Address, private: Address) -> AlgResult:
    """Rewrite one SIP payload that came in for `public`, on its way to the host at `private`."""
    try:
        message = sip.parse(payload)
    except SipError as exc:
        return AlgResult(payload, (Untouched(f"not SIP natlab can parse: {exc.reason}"),))
    events: list[AlgEvent] = []
    start = message.start
    headers = message.headers
    if isinstance(start, sip.RequestLine):
        uri = _uri_back(start.uri, public, private)
        if uri != start.uri:
            events.append(Rewritten("Request-URI", start.uri, uri))
            start = replace(start, uri=uri)
    else:
        headers = _top_via_back(headers, public, private, events)
    if not events:
        return AlgResult(payload, (Untouched(f"no {public[0]}:{public[1]} to rewrite"),))
    return AlgResult(replace(message, start=start, headers=headers).to_bytes(), tuple(events))


def _uri_back(text: str, public: Address, private: Address) -> str:
    try:
        uri = SipUri.parse(text)
    except SipError:
        return text
    if (uri.host, uri.port or 5060) != public:
        return text
    return str(replace(uri, host=private[0], port=private[1]))


def _top_via_back(
    headers: tuple[tuple[str, str], ...],
    public: Address,
    private: Address,
    events: list[AlgEvent],
) -> tuple[tuple[str, str], ...]:
    result = list(headers)
    for index, (name, value) in enumerate(headers):
        if name == "Via":
            values = sip.split_list(value)
            via = Via.parse(values[0])
            if (via.host, via.port or 5060) == public:
                new = str(replace(via, host=private[0], port=private[1]))
                events.append(Rewritten("Via", values[0], new))
                values[0] = new
                result[index] = (name, ", ".join(values))
            break
    return tuple(result)


def _rewrite_outbound(
    payload: bytes,
    message: sip.SipMessage,
    mode: AlgMode,
    private: Address,
    public: Address,
    map_media: MediaMapper,
    register: _Register | None,
) -> AlgResult:
    events: list[AlgEvent] = []
    headers = _rewrite_headers(message.headers, private, public, events, register)
    body = message.body
    content_type = (message.get("Content-Type") or "").split(";")[0].strip().lower()
    if body and content_type == "application/sdp":
        try:
            description = sdp.parse(body)
        except SipError as exc:
            return AlgResult(payload, (Untouched(f"SDP natlab cannot parse: {exc.reason}"),))
        body = _rewrite_sdp(description, mode, private, public, map_media, events)
    if not events:
        return AlgResult(payload, (Untouched(f"no {private[0]} to rewrite"),))
    old_length = message.get("Content-Length")
    if old_length is not None and int(old_length) != len(body):
        events.append(Rewritten("Content-Length", old_length, str(len(body))))
    rebuilt = replace(message, headers=headers, body=body).to_bytes()
    return AlgResult(rebuilt, tuple(events))


def _rewrite_headers(
    headers: tuple[tuple[str, str], ...],
    private: Address,
    public: Address,
    events: list[AlgEvent],
    register: _Register | None,
) -> tuple[tuple[str, str], ...]:
    result = []
    top_via_done = False
    for name, value in headers:
        if name == "Via" and not top_via_done:
            top_via_done = True
            values = sip.split_list(value)
            values[0] = _rewrite_via(values[0], private, public, events)
            value = ", ".join(values)
        elif name == "Contact" and value != "*":
            items = []
            for item in sip.split_list(value):
                items.append(_rewrite_contact(item, private, public, events, register))
                register = None  # only the first Contact gets a pinhole, as Linux's
            value = ", ".join(items)
        result.append((name, value))
    return tuple(result)


def _is_sender(host: str, port: int | None, private: Address) -> bool:
    """Does a header name the packet's own source? Only that is mapped (as Linux's
    nf_nat_sip does): another port of the host's (a phone's listening port, over TCP)
    has no mapping to name, so it stays as it is, and a NAT-aware registrar sees why."""
    return host == private[0] and (port or 5060) == private[1]


def _rewrite_via(value: str, private: Address, public: Address, events: list[AlgEvent]) -> str:
    via = Via.parse(value)
    if not _is_sender(via.host, via.port, private):
        return value
    new = str(replace(via, host=public[0], port=public[1]))
    events.append(Rewritten("Via", value, new))
    return new


def _rewrite_contact(
    value: str,
    private: Address,
    public: Address,
    events: list[AlgEvent],
    register: _Register | None,
) -> str:
    address = NameAddr.parse(value)
    try:
        uri = SipUri.parse(address.uri)
    except SipError:
        return value
    if _is_sender(uri.host, uri.port, private):
        target: Address | None = public
    elif register is not None and uri.host == private[0]:
        target = register(uri, address)
    else:
        target = None
    if target is None:
        return value
    new_uri = replace(uri, host=target[0], port=target[1])
    new = str(address.with_uri(str(new_uri)))
    events.append(Rewritten("Contact", value, new))
    return new


_Register = Callable[[SipUri, NameAddr], Address | None]
"""A REGISTER's pinhole for a Contact naming the sender's address: its public endpoint, or None."""


def _is_register(message: sip.SipMessage) -> bool:
    return isinstance(message.start, sip.RequestLine) and message.start.method == "REGISTER"


def _registration(message: sip.SipMessage, map_contact: ContactMapper) -> _Register:
    """The pinhole of a REGISTER's Contact, for its transport and the expiry it asks."""
    header = message.get("Expires")

    def register(uri: SipUri, address: NameAddr) -> Address | None:
        try:
            params = parse_params(uri.rest.partition("?")[0])
        except SipError:
            return None
        transport = (param(params, "transport") or "udp").lower()
        if transport not in ("udp", "tcp"):
            return None  # TLS: no ALG reads it; others: nothing natlab routes
        return map_contact(transport, (uri.host, uri.port or 5060), _expiry(address, header))

    return register


def _expiry(contact: NameAddr, header: str | None) -> float:
    """The seconds a REGISTER asks for this Contact, at most REGISTRATION_LIFETIME; that
    when it asks none."""
    asked = asked_expiry(contact, header)
    return REGISTRATION_LIFETIME if asked is None else min(float(asked), REGISTRATION_LIFETIME)


def _rewrite_sdp(
    description: sdp.Sdp,
    mode: AlgMode,
    private: Address,
    public: Address,
    map_media: MediaMapper,
    events: list[AlgEvent],
) -> bytes:
    # every a=rtcp read first: a bad one refuses the message before any pinhole is opened
    rtcps = [
        _rtcp_of(section.lines, section.port, private[0]) if mode == "rewrite" else None
        for section in description.media
    ]
    session = _rewrite_c_lines(description.session, private[0], public[0], "SDP c=", events)
    map_media = _once(map_media, events)
    media = []
    for section, rtcp in zip(description.media, rtcps, strict=True):
        lines = _rewrite_c_lines(section.lines, private[0], public[0], "SDP c=", events)
        port = section.port
        address = sdp.connection_address(description, section)
        if mode == "rewrite" and address == private[0] and port:
            public_rtp = map_media((private[0], port))
            port = public_rtp[1]
            events.append(Rewritten(f"SDP m={section.kind}", str(section.port), str(port)))
            if rtcp is not None:
                lines = _rewrite_rtcp(lines, rtcp, public_rtp, private[0], map_media, events)
        lines = tuple(
            _rewrite_candidate(kind, value, mode, private, public, map_media, events)
            for kind, value in lines
        )
        media.append(replace(section, port=port, lines=lines))
    return sdp.Sdp(session, tuple(media)).to_bytes()


@dataclass(frozen=True)
class _Rtcp:
    """Where a media section's RTCP goes: a=rtcp's line (None: RTP + 1, unsaid), its port."""

    line: int | None
    port: int
    address: str  # a=rtcp's "IN IP4 x" part, or ""


def _rtcp_of(lines: tuple[tuple[str, str], ...], rtp: int, private_ip: str) -> _Rtcp | None:
    """The host's RTCP port of a section (RFC 3605), read before anything is mapped;
    None when RTCP goes to another address or has no port."""
    for index, (kind, value) in enumerate(lines):
        if kind == "a" and value.startswith("rtcp:"):
            port_text, _, rest = value.removeprefix("rtcp:").partition(" ")
            if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
                raise SipError(f"bad a=rtcp port {port_text!r}")
            if rest and rest.split(" ")[2:3] != [private_ip]:
                return None
            return _Rtcp(index, int(port_text), rest)
    return _Rtcp(None, rtp + 1, "") if rtp < 65535 else None


def _rewrite_rtcp(
    lines: tuple[tuple[str, str], ...],
    rtcp: _Rtcp,
    public_rtp: Address,
    private_ip: str,
    map_media: MediaMapper,
    events: list[AlgEvent],
) -> tuple[tuple[str, str], ...]:
    """Map the RTCP port and say it in a=rtcp when it is not the public RTP port + 1."""
    public_rtcp = map_media((private_ip, rtcp.port))[1]
    if rtcp.line is None and public_rtcp == public_rtp[1] + 1:
        return lines
    new = f"rtcp:{public_rtcp}" + (f" IN IP4 {public_rtp[0]}" if rtcp.address else "")
    result = list(lines)
    if rtcp.line is None:
        result.append(("a", new))
        events.append(Rewritten("SDP a=rtcp", "(none)", new))
    else:
        events.append(Rewritten("SDP a=rtcp", lines[rtcp.line][1], new))
        result[rtcp.line] = ("a", new)
    return tuple(result)


def _once(map_media: MediaMapper, events: list[AlgEvent]) -> MediaMapper:
    """map_media asked once per private address in a message, each pinhole an event."""
    mapped: dict[Address, Address] = {}

    def cached(private: Address) -> Address:
        if private not in mapped:
            mapped[private] = map_media(private)
            events.append(PinholeOpened(private, mapped[private]))
        return mapped[private]

    return cached


def _rewrite_c_lines(
    lines: tuple[tuple[str, str], ...],
    private_ip: str,
    public_ip: str,
    label: str,
    events: list[AlgEvent],
) -> tuple[tuple[str, str], ...]:
    result = []
    for kind, value in lines:
        if kind == "c" and value.split(" ")[2:3] == [private_ip]:
            new = f"IN IP4 {public_ip}"
            events.append(Rewritten(label, value, new))
            value = new
        result.append((kind, value))
    return tuple(result)


def _rewrite_candidate(
    kind: str,
    value: str,
    mode: AlgMode,
    private: Address,
    public: Address,
    map_media: MediaMapper,
    events: list[AlgEvent],
) -> tuple[str, str]:
    if kind != "a" or not value.startswith("candidate:"):
        return kind, value
    candidate = sdp.Candidate.parse(value.removeprefix("candidate:"))
    if candidate.address != private[0]:
        return kind, value
    port = candidate.port
    if mode == "rewrite":
        port = map_media((candidate.address, candidate.port))[1]
    new = f"candidate:{replace(candidate, address=public[0], port=port)}"
    events.append(Rewritten("SDP a=candidate", value, new))
    return kind, new
