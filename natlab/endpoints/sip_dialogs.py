"""Building and reading the SIP messages natlab's phones and PBX exchange (RFC 3261), pure.

Requests carry what a generic UA and proxy expect: Via with a magic-cookie
branch and rport (RFC 3581), Max-Forwards, From/To with tags, Call-ID, CSeq,
Contact; responses copy Via, From, To, Call-ID and CSeq from their request.

Two things are natlab's own, in extension headers a generic UA ignores:
- X-Natlab-Call: mode=...;seconds=...[;ring=...][;answer=...] on an INVITE: the
  call's mode and how long its media runs, so a natlab callee answers in the
  caller's mode, or in `answer`'s when the caller asks for another (after
  ringing `ring` seconds, when the caller means to CANCEL before the answer);
- the end-of-call RTP counts, in BYE and in its 200 OK, as Cisco phones
  report them: RTP-TxStat: Pkt=N and RTP-RxStat: Pkt=N[,First=T] (First:
  when the first packet came, natlab's addition), and X-Natlab-Pair: the
  pair the sender used ("LOCAL TYPE REMOTE TYPE"), for the peer's report.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import cast

from natlab.endpoints.sdp_offer import MODES, MediaOffer
from natlab.records import Candidate, RtpCounts, SelectedPair, SipSeen
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via
from natlab.sip.message import RequestLine, SipMessage, StatusLine, parse_cseq

BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7
MAX_FORWARDS = 70
USER_AGENT = "natlab"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"
CALL_HEADER = "X-Natlab-Call"
PAIR_HEADER = "X-Natlab-Pair"
MAX_SECONDS = 3600.0
MAX_RING = 5.0  # seconds a callee may be asked to ring: within the caller's INVITE timeout
DEFAULT_PASSWORD = "natlab"  # a phone's digest password unless the topology gives one

Headers = tuple[tuple[str, str], ...]


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def via(transport: str, host: str, port: int, branch: str | None = None) -> str:
    """Our Via: sent-by is our own (private) address; rport asks for the source port back."""
    params = (("branch", branch or new_branch()), ("rport", None))
    return str(Via(transport.upper(), host, port, params))


def request(
    method: str,
    uri: str,
    *,
    via_value: str,
    from_value: str,
    to_value: str,
    call_id: str,
    cseq: int,
    headers: Headers = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    fields: list[tuple[str, str]] = [
        ("Via", via_value),
        ("Max-Forwards", str(MAX_FORWARDS)),
        ("From", from_value),
        ("To", to_value),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        *headers,
        ("User-Agent", USER_AGENT),
    ]
    if body and content_type:
        fields.append(("Content-Type", content_type))
    return SipMessage(RequestLine(method, uri), (), body).with_headers(tuple(fields))


def response(
    to: SipMessage,
    code: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: Headers = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    """A response to the request `to`: its Vias, From, To (tagged), Call-ID and CSeq."""
    fields: list[tuple[str, str]] = [("Via", value) for value in to.values("Via")]
    to_value = to.get("To") or ""
    if to_tag is not None and NameAddr.parse(to_value).tag is None:
        to_value = f"{to_value};tag={to_tag}"
    fields += [
        ("From", to.get("From") or ""),
        ("To", to_value),
        ("Call-ID", to.get("Call-ID") or ""),
        ("CSeq", to.get("CSeq") or ""),
        *headers,
        ("Server", USER_AGENT),
    ]
    if body and content_type:
        fields.append(("Content-Type", content_type))
    return SipMessage(StatusLine(code, clean_reason(reason)), (), body).with_headers(tuple(fields))


def of_invite(invite: SipMessage, method: str, to_value: str) -> SipMessage:
    """The CANCEL or non-2xx ACK of an INVITE: its Request-URI, top Via, From, Call-ID and
    CSeq number (RFC 3261 9.1, 17.1.1.3), so it matches the INVITE's transaction."""
    return request(
        method,
        cast(RequestLine, invite.start).uri,
        via_value=invite.values("Via")[0],
        from_value=invite.get("From") or "",
        to_value=to_value,
        call_id=invite.get("Call-ID") or "",
        cseq=cseq_number(invite),
    )


def seen(direction: str, message: SipMessage, at: float) -> SipSeen:
    """What a trace tells of a message: method or status, top Via, Contact, SDP address."""
    code = status(message)
    summary = method_of(message) if code is None else f"{code} {message.start.reason}"  # type: ignore[union-attr]
    vias = message.values("Via")
    contact = contact_uri(message)
    sdp = None
    if message.body:
        try:
            offer = MediaOffer.from_sdp(message.body)
        except SipError:
            sdp = "not SDP natlab reads"
        else:
            host, port = offer.default()
            sdp = f"{host}:{port}" + (
                f", ICE with {len(offer.candidates)} candidates" if offer.ice else ""
            )
            sdp += ", the PBX's relay" if offer.relay else ""
    return SipSeen(
        at,
        "sent" if direction == "sent" else "received",
        summary,
        vias[0] if vias else None,
        str(contact) if contact else None,
        sdp,
    )


def clean_reason(text: str) -> str:
    """A reason phrase: one line of printable text, bounded (it often quotes what was wrong)."""
    printable = "".join(char if char.isprintable() else "?" for char in text)
    return printable[:200] or "Error"


def method_of(message: SipMessage) -> str:
    """The request's method, or the method a response answers (its CSeq's)."""
    if isinstance(message.start, RequestLine):
        return message.start.method
    return parse_cseq(message.get("CSeq") or "")[1]


def cseq_number(message: SipMessage) -> int:
    return parse_cseq(message.get("CSeq") or "")[0]


def status(message: SipMessage) -> int | None:
    return message.start.code if isinstance(message.start, StatusLine) else None


def user_of(value: str) -> str | None:
    """The user part of a name-addr or URI value: From, To, Contact or a Request-URI."""
    try:
        address = NameAddr.parse(value)
        return SipUri.parse(address.uri).user
    except SipError:
        return None


def tag_of(message: SipMessage, header: str) -> str | None:
    value = message.get(header)
    return NameAddr.parse(value).tag if value else None


def top_via(message: SipMessage) -> Via:
    values = message.values("Via")
    if not values:
        raise SipError("no Via")
    return Via.parse(values[0])


def contact_uri(message: SipMessage) -> SipUri | None:
    value = message.get("Contact")
    if not value or value == "*":
        return None
    try:
        return SipUri.parse(NameAddr.parse(value).uri)
    except SipError:
        return None


def with_top_via_received(message: SipMessage, host: str, port: int) -> SipMessage:
    """RFC 3581 4: the server notes where the request really came from in the top Via."""
    vias = message.values("Via")
    top = Via.parse(vias[0])
    if top.host != host:
        top = top.with_param("received", host)
    if top.rport is not None:
        top = top.with_param("rport", str(port))
    return replace_vias(message, [str(top), *vias[1:]])


def replace_vias(message: SipMessage, vias: list[str]) -> SipMessage:
    """The message with these Via values (one field each) where its Vias were."""
    fields: list[tuple[str, str]] = []
    placed = False
    for name, value in message.headers:
        if name != "Via":
            fields.append((name, value))
        elif not placed:
            fields += [("Via", one) for one in vias]
            placed = True
    if not placed:
        fields = [("Via", one) for one in vias] + fields
    return SipMessage(message.start, tuple(fields), message.body)


def without(message: SipMessage, *names: str) -> SipMessage:
    return replace(message, headers=tuple(f for f in message.headers if f[0] not in names))


def call_header(
    mode: str, seconds: float, ring: float = 0.0, answer: str | None = None
) -> tuple[str, str]:
    value = f"mode={mode};seconds={seconds:g}" + (f";ring={ring:g}" if ring else "")
    return CALL_HEADER, value + (f";answer={answer}" if answer else "")


def read_ring(message: SipMessage) -> float:
    """How long the caller asked a natlab callee to ring before answering (X-Natlab-Call's
    ring=, bounded by MAX_RING); 0 when not asked or not readable."""
    for part in (message.get(CALL_HEADER) or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "ring":
            try:
                ring = float(value)
            except ValueError:
                return 0.0
            return ring if 0 <= ring <= MAX_RING else 0.0
    return 0.0


def read_call_header(message: SipMessage) -> tuple[str | None, float | None]:
    """(mode, seconds) from X-Natlab-Call, the mode the callee answers in (answer=, else
    the caller's mode=); (None, None) for a generic UA's INVITE."""
    value = message.get(CALL_HEADER)
    if value is None:
        return None, None
    fields = dict(part.strip().partition("=")[::2] for part in value.split(";"))
    mode = fields.get("answer") if fields.get("answer") in MODES else fields.get("mode")
    mode = mode if mode in MODES else None
    try:
        seconds: float | None = float(fields.get("seconds", ""))
    except ValueError:
        seconds = None
    if seconds is not None and not 0 <= seconds <= MAX_SECONDS:
        seconds = None
    return mode, seconds


def stats_headers(counts: RtpCounts, pair: SelectedPair | None) -> Headers:
    received = f"Pkt={counts.received},Lost={counts.lost},Late={counts.late}"
    received += f",Jitter={counts.jitter_ms!r}"  # ms, RFC 3550's interarrival jitter
    if counts.first_received_at is not None:
        received += f",First={counts.first_received_at!r}"  # repr: the exact float back
    out: list[tuple[str, str]] = [("RTP-RxStat", received), ("RTP-TxStat", f"Pkt={counts.sent}")]
    if pair is not None:
        sides = (pair.local.address, pair.local.type, pair.remote.address, pair.remote.type)
        out.append((PAIR_HEADER, " ".join(sides)))
    return tuple(out)


def read_stats(message: SipMessage) -> tuple[RtpCounts | None, SelectedPair | None]:
    """The sender's RTP counts and pair from a BYE or its 200; None where absent or bad."""
    counts = None
    received = _stat_fields(message.get("RTP-RxStat"))
    sent = _stat_fields(message.get("RTP-TxStat"))
    if "Pkt" in received and "Pkt" in sent:
        try:
            first = float(received["First"]) if "First" in received else None
            counts = RtpCounts(
                int(sent["Pkt"]),
                int(received["Pkt"]),
                first,
                lost=int(received.get("Lost", 0)),
                late=int(received.get("Late", 0)),
                jitter_ms=float(received.get("Jitter", 0.0)),
            )
            if not math.isfinite(counts.jitter_ms) or min(counts.lost, counts.late) < 0:
                counts = None
        except ValueError:
            counts = None
    pair = None
    parts = (message.get(PAIR_HEADER) or "").split()
    if len(parts) == 4:
        pair = SelectedPair(Candidate(parts[0], parts[1]), Candidate(parts[2], parts[3]))
    return counts, pair


def _stat_fields(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    return {
        key.strip(): val.strip() for key, _, val in (p.partition("=") for p in value.split(","))
    }
