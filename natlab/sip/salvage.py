"""The 400 a server owes a request it could not parse (RFC 3261 8.2, 16.3), built from the
few header lines a response needs, when those can still be read.

A request the strict codec refused (a wrong Content-Length, a duplicated
To, a bad byte in some header...) is still answered if its request line,
top Via, From, To, Call-ID and CSeq can be read on their own: the response
goes back along that Via with the codec's reason. Otherwise (a response, an
ACK, no readable Via...) there is nobody to answer, and the caller drops it.

Pure: bytes in, bytes (or None) out; each line is read on its own, so a CR
or LF injected into a value cannot inject a header into the answer.
"""

from __future__ import annotations

import re

from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, Via
from natlab.sip.message import (
    MAX_MESSAGE_BYTES,
    SipMessage,
    StatusLine,
    canonical_name,
    check_call_id,
    parse_cseq,
)

NEEDED = ("Via", "From", "To", "Call-ID", "CSeq")
MAX_REASON = 120
_REQUEST = re.compile(r"([A-Za-z]+) (\S+) SIP/2\.0")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def bad_request(data: bytes, reason: str) -> bytes | None:
    """'SIP/2.0 400 Bad Request (reason)' for this request, or None if it cannot be answered."""
    head = data[:MAX_MESSAGE_BYTES].split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    start = _text(lines[0])
    match = _REQUEST.fullmatch(start or "")
    if match is None or match.group(1).upper() == "ACK":
        return None
    found: dict[str, str] = {}
    for raw in lines[1:]:
        text = _text(raw)
        if text is None or ":" not in text or text[:1] in (" ", "\t"):
            continue
        name, _, value = text.partition(":")
        name = canonical_name(name.strip())
        if name in NEEDED and name not in found:
            found[name] = value.strip()
    if any(name not in found for name in NEEDED):
        return None
    try:
        Via.parse(found["Via"].split(",")[0])
        NameAddr.parse(found["From"])
        NameAddr.parse(found["To"])
        check_call_id(found["Call-ID"])
        parse_cseq(found["CSeq"])
        headers = tuple((name, found[name]) for name in NEEDED)
        status = StatusLine(400, "Bad Request (" + _UNSAFE.sub("?", reason)[:MAX_REASON] + ")")
        message = SipMessage(status, (), b"").with_headers(headers)
    except SipError:
        return None
    return message.to_bytes()


def _text(raw: bytes) -> str | None:
    """A line as text, or None if it is not UTF-8 or carries control characters (CR, LF...)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", text) else text
