"""SIP messages (RFC 3261): a strict, bounded parser and a serialiser.

Why our own parser: of the package index's SIP libraries, only `sipmessage`
(BSD-2, 0.7.x, beta) parses without doing I/O; it is lenient where natlab must
be strict (no size or header-count bound, the body is whatever follows the blank
line whatever Content-Length says, folded lines are split on their first colon,
duplicated single-valued headers pass). sippy, pyVoIP, rfcvoip and aiosip are
whole stacks with their own sockets; sip-core 0.0.1 is empty. Wrapping
sipmessage would leave every check natlab needs to us, so natlab parses the
subset it speaks itself, and fuzzes it (tests/unit/sip).

Rules (each refusal is one SipError whose reason a PBX sends back in a 400):
- at most MAX_MESSAGE_BYTES bytes and MAX_HEADERS header fields;
- the header block is UTF-8 text without control characters (HTAB aside);
  a bare CR or LF inside a line is refused (CRLF injection);
- folded lines (RFC 3261 7.3.1: CRLF followed by SP or HTAB) are legal SIP, so
  they are unfolded into one SP, not refused;
- header names are case-insensitive; compact forms are expanded; the
  single-valued headers (SINGLE_VALUED) may appear once;
- Via, From, To, Call-ID and CSeq are required and must parse (natlab.sip.headers),
  as must every Contact; CSeq's method is the request's;
- Content-Length, when present, is exactly the body's length. RFC 3261 18.3 lets
  a UDP receiver cut extra bytes; natlab refuses them so that an ALG that
  forgot to fix Content-Length is seen, not hidden.

Serialising writes canonical names, one field per parsed field, and
Content-Length from the body: build(parse(x)) is stable under a second round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, Via

MAX_MESSAGE_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_CSEQ = 2**31 - 1

COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Accept",
        "Allow",
        "Authorization",
        "Call-ID",
        "Contact",
        "Content-Encoding",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Expires",
        "From",
        "Max-Forwards",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Record-Route",
        "Require",
        "Route",
        "Server",
        "Subject",
        "Supported",
        "To",
        "User-Agent",
        "Via",
        "WWW-Authenticate",
    )
}
SINGLE_VALUED = frozenset(
    {"Call-ID", "Content-Length", "Content-Type", "CSeq", "Expires", "From", "Max-Forwards", "To"}
)
LIST_VALUED = frozenset(
    {"Accept", "Allow", "Contact", "Record-Route", "Require", "Route", "Supported", "Via"}
)
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_REQUEST_URI = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:\S+")
_PAIRED_ANGLES = re.compile(r"[^<>]*(?:<[^<>]*>[^<>]*)*")  # "<" and ">" alternate, paired


def canonical_name(name: str) -> str:
    """The header's name as natlab writes it: compact forms expanded, known names cased."""
    known = _SPELLED.get(name)  # the usual case: a name already as natlab writes it
    if known is not None:
        return known
    lowered = name.lower()
    return COMPACT_FORMS.get(lowered) or _CANONICAL.get(lowered, name)


_SPELLED = {name: name for name in _CANONICAL.values()} | COMPACT_FORMS


@dataclass(frozen=True)
class RequestLine:
    method: str
    uri: str

    def __str__(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(frozen=True)
class StatusLine:
    code: int
    reason: str

    def __str__(self) -> str:
        return f"SIP/2.0 {self.code} {self.reason}"


@dataclass(frozen=True)
class SipMessage:
    """A request or a response: its first line, its header fields in order, its body."""

    start: RequestLine | StatusLine
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    # values() by canonical name, as found on first lookup (the raw fields gathered in one
    # pass): a proxy reads many headers of each message, most of them more than once.
    _raw: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _found: dict[str, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def is_request(self) -> bool:
        return isinstance(self.start, RequestLine)

    def values(self, name: str) -> list[str]:
        """Every value of a header, fields in order; LIST_VALUED ones split at commas."""
        return list(self._lookup(canonical_name(name)))

    def get(self, name: str) -> str | None:
        """A single-valued header's value, or the first value of a list header; None if absent."""
        found = self._lookup(canonical_name(name))
        return found[0] if found else None

    def _lookup(self, wanted: str) -> tuple[str, ...]:
        found = self._found.get(wanted)
        if found is None:
            raw = self._raw
            if not raw:
                for field_name, value in self.headers:
                    raw.setdefault(field_name, []).append(value)
            values = raw.get(wanted, [])
            if wanted in LIST_VALUED:
                values = [element for value in values for element in split_list(value)]
            found = self._found[wanted] = tuple(values)
        return found

    def with_headers(self, headers: tuple[tuple[str, str], ...]) -> SipMessage:
        for name, value in headers:
            _check_value(name, value)
        return SipMessage(self.start, headers, self.body)

    def to_bytes(self) -> bytes:
        lines = [str(self.start)]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, leaving commas in quotes and <...> alone."""
    # the usual case, without walking every character: no quote, no comma, <> paired
    if '"' not in value and "," not in value and _PAIRED_ANGLES.fullmatch(value) and value.strip():
        return [value.strip()]
    return split_list_walking(value)


def split_list_walking(value: str) -> list[str]:
    """split_list, one character at a time: what its fast path must equal."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">":
            angle = max(0, angle - 1)
        elif char == "," and not quoted and angle == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    if quoted or angle:
        raise SipError(f"unbalanced quote or <> in {value!r}")
    if any(not part for part in parts):
        raise SipError(f"empty element in list {value!r}")
    return parts


def parse(data: bytes) -> SipMessage:
    """One complete SIP message (a datagram, or one framed by split_stream)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise SipError("truncated: no empty line ends the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError(f"header bytes are not UTF-8 (at byte {exc.start})") from None
    lines = text.split("\r\n")
    start = _parse_start(lines[0])
    headers = _parse_fields(lines[1:])
    message = SipMessage(start, headers, body)
    _check_message(message)
    return message


def split_stream(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Cut the first message off a stream (TCP, TLS): (message, rest), or None if incomplete.

    Content-Length is mandatory on streams (RFC 3261 20.14); a buffer that
    grows past MAX_MESSAGE_BYTES without a whole message is refused.
    """
    end = buffer.find(b"\r\n\r\n", 0, MAX_MESSAGE_BYTES)
    if end < 0:
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise SipError(f"no end of headers within {MAX_MESSAGE_BYTES} bytes")
        return None
    head = buffer[:end]
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            length = _content_length(value.decode("ascii", "replace").strip())
    if length is None:
        raise SipError("Content-Length is required on a stream transport")
    total = end + 4 + length
    if total > MAX_MESSAGE_BYTES:
        raise SipError(f"message of {total} bytes exceeds {MAX_MESSAGE_BYTES}")
    if len(buffer) < total:
        return None
    return buffer[:total], buffer[total:]


def _parse_start(line: str) -> RequestLine | StatusLine:
    _check_line(line)
    if line.startswith("SIP/2.0 "):
        parts = line.split(" ", 2)
        if len(parts) != 3 or not re.fullmatch(r"[1-6][0-9][0-9]", parts[1]):
            raise SipError(f"bad status line {line!r}")
        return StatusLine(int(parts[1]), parts[2])
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0":
        raise SipError(f"bad request line {line!r} (want METHOD URI SIP/2.0)")
    method, uri, _ = parts
    if not _TOKEN.fullmatch(method):
        raise SipError(f"bad method {method!r}")
    if not _REQUEST_URI.fullmatch(uri):
        raise SipError(f"bad Request-URI {uri!r}")
    return RequestLine(method, uri)


def _parse_fields(lines: list[str]) -> tuple[tuple[str, str], ...]:
    unfolded: list[str] = []
    clean = not _CONTROL.search("".join(lines))  # the usual case: one search, not one a line
    for line in lines:
        if not clean:
            _check_line(line)
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise SipError("continuation line before any header")
            unfolded[-1] = unfolded[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            unfolded.append(line)
        if len(unfolded) > MAX_HEADERS:
            raise SipError(f"more than {MAX_HEADERS} header fields")
    fields: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line in unfolded:
        raw_name, colon, value = line.partition(":")
        raw_name = raw_name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(raw_name):
            raise SipError(f"bad header line {line!r}")
        name = canonical_name(raw_name)
        if name in SINGLE_VALUED and name in seen:
            raise SipError(f"duplicated {name} header")
        seen.add(name)
        fields.append((name, value.strip(" \t")))
    return tuple(fields)


def _check_line(line: str) -> None:
    bad = _CONTROL.search(line)
    if bad:
        what = "bare CR or LF" if bad.group() in "\r\n" else f"control byte {ord(bad.group()):#04x}"
        raise SipError(f"{what} in line {line[:80]!r}")


def _check_value(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise SipError(f"bad header name {name!r}")
    if _CONTROL.search(value) or value != value.strip(" \t"):
        raise SipError(f"header {name} value {value[:80]!r} has control characters or padding")


def _check_message(message: SipMessage) -> None:
    names = {name for name, _ in message.headers}
    for name in REQUIRED:
        if name not in names:
            raise SipError(f"missing {name} header")
    for value in message.values("Via"):
        Via.parse(value)
    for name in ("From", "To"):
        NameAddr.parse(message.get(name) or "")
    for value in message.values("Contact"):
        if value != "*":
            NameAddr.parse(value)
    cseq = parse_cseq(message.get("CSeq") or "")
    if isinstance(message.start, RequestLine) and cseq[1] != message.start.method:
        raise SipError(f"CSeq method {cseq[1]} differs from the request's {message.start.method}")
    check_call_id(message.get("Call-ID") or "")
    length = message.get("Content-Length")
    if length is not None and _content_length(length) != len(message.body):
        raise SipError(f"Content-Length {length} but the body has {len(message.body)} bytes")


def parse_cseq(value: str) -> tuple[int, str]:
    """CSeq: (sequence number, method)."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise SipError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number > MAX_CSEQ or not _TOKEN.fullmatch(parts[1]):
        raise SipError(f"bad CSeq {value!r}")
    return number, parts[1]


def _content_length(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 8:
        raise SipError(f"bad Content-Length {value!r}")
    return int(value)


def check_call_id(call_id: str) -> None:
    """A Call-ID is one word (RFC 3261 25.1): not empty, no white space."""
    if not call_id or any(char in call_id for char in " \t"):
        raise SipError(f"bad Call-ID {call_id!r}")
