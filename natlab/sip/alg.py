"""The SIP ALG of a consumer router, as a pure rewrite of one outbound SIP payload.

It lives in natlab.sip, not natlab.core, because it needs the SIP and SDP
codecs and natlab.core imports nothing of natlab but errors.

Given the payload a private host sent (UDP or TCP to port 5060), the router's
mapping for that sender and a way to map media ports, `rewrite` mode does what
a working ALG does: every occurrence of the sender's private address in the top
Via, Contact and the SDP's c=, m= and a=candidate becomes the public one, media
ports get mappings (pinholes) through `map_media`, Content-Length follows the
new body. `broken` mode is the field's broken ALG: signalling is rewritten the
same way, but the SDP gets the public address with the private port and no
pinhole, so the call rings and the media goes nowhere.

Only the outbound direction (private -> public) is modelled here; the message
is re-serialised by natlab.sip.message (canonical header names, unfolded).
Payloads that are not SIP natlab can parse pass byte for byte, with an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from natlab.sip import message as sip
from natlab.sip import sdp
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via

AlgMode = Literal["rewrite", "broken"]
Address = tuple[str, int]
MediaMapper = Callable[[Address], Address]
"""Given a private (ip, port) of media, the public (ip, port) the router mapped it to."""


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
) -> AlgResult:
    """Rewrite one SIP payload the host at `private` sent, which leaves as `public`."""
    try:
        message = sip.parse(payload)
    except SipError as exc:
        return AlgResult(payload, (Untouched(f"not SIP natlab can parse: {exc.reason}"),))
    events: list[AlgEvent] = []
    headers = _rewrite_headers(message.headers, private, public, events)
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
            value = ", ".join(
                _rewrite_contact(item, private, public, events) for item in sip.split_list(value)
            )
        result.append((name, value))
    return tuple(result)


def _public_port(port: int | None, private: Address, public: Address) -> int | None:
    return public[1] if (port or 5060) == private[1] else port


def _rewrite_via(value: str, private: Address, public: Address, events: list[AlgEvent]) -> str:
    via = Via.parse(value)
    if via.host != private[0]:
        return value
    new = str(replace(via, host=public[0], port=_public_port(via.port, private, public)))
    events.append(Rewritten("Via", value, new))
    return new


def _rewrite_contact(value: str, private: Address, public: Address, events: list[AlgEvent]) -> str:
    address = NameAddr.parse(value)
    try:
        uri = SipUri.parse(address.uri)
    except SipError:
        return value
    if uri.host != private[0]:
        return value
    new_uri = replace(uri, host=public[0], port=_public_port(uri.port, private, public))
    new = str(address.with_uri(str(new_uri)))
    events.append(Rewritten("Contact", value, new))
    return new


def _rewrite_sdp(
    description: sdp.Sdp,
    mode: AlgMode,
    private: Address,
    public: Address,
    map_media: MediaMapper,
    events: list[AlgEvent],
) -> bytes:
    session = _rewrite_c_lines(description.session, private[0], public[0], "SDP c=", events)
    map_media = _once(map_media, events)
    media = []
    for section in description.media:
        lines = _rewrite_c_lines(section.lines, private[0], public[0], "SDP c=", events)
        port = section.port
        address = sdp.connection_address(description, section)
        if mode == "rewrite" and address == private[0] and port:
            port = map_media((private[0], port))[1]
            events.append(Rewritten(f"SDP m={section.kind}", str(section.port), str(port)))
        lines = tuple(
            _rewrite_candidate(kind, value, mode, private, public, map_media, events)
            for kind, value in lines
        )
        media.append(replace(section, port=port, lines=lines))
    return sdp.Sdp(session, tuple(media)).to_bytes()


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
