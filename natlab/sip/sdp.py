"""SDP (RFC 4566) for the subset natlab's calls use, with ICE attributes (RFC 8839).

Kept as ordered lines, so that what natlab does not model (codecs' rtpmap,
unknown attributes) passes through unchanged, with typed views on what it
does: c=, m= and a=candidate. Our own rather than sdp-transform (MIT, last
release 2024): that one drops lines it cannot match and never refuses input,
where natlab must refuse malformed SDP with a reason.

Strict: version 0 first, then o= and s=; only the line types in LINE_TYPES;
at most MAX_LINES lines; CRLF line ends (a bare LF is accepted, as RFC 4566 5
allows); ASCII/UTF-8 text without control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from natlab.sip.errors import SipError

MAX_LINES = 200
LINE_TYPES = frozenset("vosiuepcbtrzkam")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class Media:
    """One m= section: its m= line and the lines that follow it."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    lines: tuple[tuple[str, str], ...] = ()

    @property
    def m_line(self) -> str:
        return " ".join((self.kind, str(self.port), self.proto, *self.formats))


@dataclass(frozen=True)
class Sdp:
    session: tuple[tuple[str, str], ...]
    media: tuple[Media, ...] = field(default=())

    def to_bytes(self) -> bytes:
        lines = [f"{kind}={value}" for kind, value in self.session]
        for section in self.media:
            lines.append(f"m={section.m_line}")
            lines += [f"{kind}={value}" for kind, value in section.lines]
        return ("\r\n".join(lines) + "\r\n").encode()


def parse(data: bytes) -> Sdp:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError(f"SDP is not UTF-8 (at byte {exc.start})") from None
    raw_lines = text.replace("\r\n", "\n").split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    if len(raw_lines) > MAX_LINES:
        raise SipError(f"SDP of more than {MAX_LINES} lines")
    session: list[tuple[str, str]] = []
    media: list[Media] = []
    for number, line in enumerate(raw_lines, 1):
        if _CONTROL.search(line) or len(line) < 2 or line[1] != "=" or line[0] not in LINE_TYPES:
            raise SipError(f"bad SDP line {number}: {line[:80]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            media.append(parse_m_line(value))
        elif media:
            last = media[-1]
            media[-1] = replace(last, lines=(*last.lines, (kind, value)))
        else:
            session.append((kind, value))
    if [kind for kind, _ in session[:3]] != ["v", "o", "s"] or session[0][1] != "0":
        raise SipError("SDP must start with v=0, o=, s=")
    result = Sdp(tuple(session), tuple(media))
    connection_address(result)
    for section in media:
        connection_address(result, section)
        for value in attribute_values(section, "candidate"):
            Candidate.parse(value)
    return result


def parse_m_line(value: str) -> Media:
    parts = value.split(" ")
    if len(parts) < 4 or not all(_TOKEN.fullmatch(part) for part in parts):
        raise SipError(f"bad m= line {value!r}")
    port = parts[1].split("/")[0]
    if not port.isdigit() or int(port) > 65535:
        raise SipError(f"bad port in m= line {value!r}")
    return Media(parts[0], int(port), parts[2], tuple(parts[3:]))


def connection_address(sdp: Sdp, section: Media | None = None) -> str | None:
    """The c= address that applies (the section's, else the session's); None if none."""
    lines = (section.lines if section else ()) + sdp.session
    for kind, value in lines:
        if kind == "c":
            parts = value.split(" ")
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SipError(f"bad c= line {value!r}")
            return parts[2].split("/")[0]
    return None


def attribute_values(section: Media | Sdp, name: str) -> list[str]:
    """The values of a=name:value (or "" for a=name) in a section or the session."""
    lines = section.lines if isinstance(section, Media) else section.session
    found = []
    for kind, value in lines:
        if kind == "a":
            key, _, rest = value.partition(":")
            if key == name:
                found.append(rest)
    return found


@dataclass(frozen=True)
class Candidate:
    """a=candidate (RFC 8839 5.1): foundation component transport priority address port
    typ type [raddr a rport p] [extension pairs]."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> Candidate:
        parts = value.split()
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise SipError(f"bad candidate {value!r}")
        foundation, component, transport, priority, address, port = parts[:6]
        if not (component.isdigit() and priority.isdigit() and port.isdigit()):
            raise SipError(f"bad candidate {value!r}")
        if not 1 <= int(component) <= 256 or int(priority) >= 2**32 or int(port) > 65535:
            raise SipError(f"candidate out of range {value!r}")
        pairs = list(zip(parts[8::2], parts[9::2], strict=True))
        related = dict(pairs)
        related_port = related.get("rport")
        if related_port is not None and not (related_port.isdigit() and int(related_port) < 65536):
            raise SipError(f"bad rport in candidate {value!r}")
        return cls(
            foundation,
            int(component),
            transport,
            int(priority),
            address,
            int(port),
            parts[7],
            related.get("raddr"),
            int(related_port) if related_port is not None else None,
            tuple((k, v) for k, v in pairs if k not in ("raddr", "rport")),
        )

    def __str__(self) -> str:
        text = (
            f"{self.foundation} {self.component} {self.transport} {self.priority} "
            f"{self.address} {self.port} typ {self.type}"
        )
        if self.related_address is not None:
            text += f" raddr {self.related_address}"
        if self.related_port is not None:
            text += f" rport {self.related_port}"
        return text + "".join(f" {key} {value}" for key, value in self.extensions)


def ice_lines(
    ufrag: str, pwd: str, candidates: list[Candidate], *, complete: bool = True
) -> tuple[tuple[str, str], ...]:
    """The a= lines an ICE offer or answer carries for one media section."""
    lines = [("a", f"ice-ufrag:{ufrag}"), ("a", f"ice-pwd:{pwd}")]
    lines += [("a", f"candidate:{candidate}") for candidate in candidates]
    if complete:
        lines.append(("a", "end-of-candidates"))
    return tuple(lines)
