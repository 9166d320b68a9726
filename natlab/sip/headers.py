"""Typed values of the SIP headers natlab reads: Via (RFC 3261 20.42, RFC 3581
rport/received), name-addr headers (From, To, Contact with tags) and the host
and port of a SIP URI. Each parses one list element (SipMessage.values) and
writes itself back.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from natlab.sip.errors import SipError

Params = tuple[tuple[str, str | None], ...]

_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^\s;]+)\s*((?:;.*)?)")
_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?")
_PARAM_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
MEMO_SIZE = 128  # values each remembering parser keeps...
MEMO_MAX_LENGTH = 256  # ...of at most this many characters: a flood of long ones costs nothing

Parsed = TypeVar("Parsed")


def remembering(parse: Callable[[str], Parsed]) -> Callable[[str], Parsed]:
    """`parse`, remembering what it made of the last MEMO_SIZE short values.

    A proxy reads each Via and address several times per message (the codec's
    checks, rport, routing, the answer); the parsed values are frozen, so sharing
    them is safe. Refusals (SipError) are not remembered: they are raised again.
    """
    remembered = functools.lru_cache(maxsize=MEMO_SIZE)(parse)

    def lookup(value: str) -> Parsed:
        return remembered(value) if len(value) <= MEMO_MAX_LENGTH else parse(value)

    lookup.__doc__ = parse.__doc__
    return lookup


def parse_params(text: str) -> Params:
    """';name=value;flag' into ((name, value), (flag, None)); names keep their case."""
    params: list[tuple[str, str | None]] = []
    for part in text.split(";")[1:]:
        name, equals, value = part.strip().partition("=")
        name = name.strip()
        if not _PARAM_NAME.fullmatch(name):
            raise SipError(f"bad parameter {part!r}")
        params.append((name, value.strip() if equals else None))
    return tuple(params)


def format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def param(params: Params, name: str) -> str | None:
    """The value of the parameter `name` (lower case): "" when it has none, None when absent."""
    for key, value in params:
        if key.lower() == name:
            return value if value is not None else ""
    return None


def asked_expiry(contact: NameAddr | None, expires: str | None) -> int | None:
    """The seconds a REGISTER asks for a Contact (RFC 3261 10.2.1.1): its `expires`
    parameter, else the Expires header; None when neither is a number (of at most 10
    ASCII digits: what int() takes and nothing unbounded)."""
    for value in (None if contact is None else param(contact.params, "expires"), expires):
        value = (value or "").strip()
        if value.isascii() and value.isdigit() and len(value) <= 10:
            return int(value)
    return None


def _set_param(params: Params, name: str, value: str | None) -> Params:
    kept = tuple((key, val) for key, val in params if key.lower() != name)
    present = any(key.lower() == name for key, _ in params)
    if not present:
        return (*kept, (name, value))
    return tuple((key, value) if key.lower() == name else (key, val) for key, val in params)


def parse_hostport(text: str) -> tuple[str, int | None]:
    match = _HOSTPORT.fullmatch(text)
    if not match:
        raise SipError(f"bad host[:port] {text!r}")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipError(f"bad port in {text!r}")
    return match.group(1), port


def format_hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: Params = ()

    @classmethod
    def parse(cls, value: str) -> Via:
        return _parse_via(value)

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param(self.params, "received")

    @property
    def rport(self) -> int | str | None:
        """The rport value; "" when asked for (a bare ;rport), None when absent."""
        value = param(self.params, "rport")
        if value is None or value == "":
            return value
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise SipError(f"bad rport {value!r}")
        return int(value)

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=_set_param(self.params, name, value))

    def __str__(self) -> str:
        sent_by = format_hostport(self.host, self.port)
        return f"SIP/2.0/{self.transport} {sent_by}{format_params(self.params)}"


@dataclass(frozen=True)
class SipUri:
    """sip:/sips: URI split at its host and port; `user` and `rest` (;params?headers) kept."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    rest: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, remainder = text.partition(":")
        if not colon or scheme.lower() not in ("sip", "sips"):
            raise SipError(f"not a sip: URI {text!r}")
        user, at, hostpart = remainder.rpartition("@")
        cut = min((i for i in (hostpart.find(";"), hostpart.find("?")) if i >= 0), default=-1)
        hostport, rest = (hostpart, "") if cut < 0 else (hostpart[:cut], hostpart[cut:])
        host, port = parse_hostport(hostport)
        return cls(scheme, user if at else None, host, port, rest)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{format_hostport(self.host, self.port)}{self.rest}"


@dataclass(frozen=True)
class NameAddr:
    """From, To or one Contact: optional display name, a URI, header parameters."""

    display: str | None
    uri: str
    params: Params = ()
    bracketed: bool = True

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        return _parse_name_addr(value)

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def with_uri(self, uri: str) -> NameAddr:
        return replace(self, uri=uri)

    def __str__(self) -> str:
        params = format_params(self.params)
        if not self.bracketed and self.display is None:
            return f"{self.uri}{params}"
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{params}"


def read_via(value: str) -> Via:
    """One Via value, read afresh (Via.parse remembers what this made of recent ones)."""
    match = _VIA.fullmatch(value.strip())
    if not match:
        raise SipError(f"bad Via {value!r}")
    host, port = parse_hostport(match.group(2))
    return Via(match.group(1).upper(), host, port, parse_params(match.group(3)))


def read_name_addr(value: str) -> NameAddr:
    """One From, To or Contact value, read afresh (NameAddr.parse remembers recent ones)."""
    text = value.strip()
    if "<" in text:
        display, _, after = text.partition("<")
        uri, closing, params = after.partition(">")
        if not closing or not uri:
            raise SipError(f"bad address {value!r}")
        return NameAddr(display.strip() or None, uri.strip(), parse_params(params))
    uri, _, params = text.partition(";")
    if not uri or " " in uri:
        raise SipError(f"bad address {value!r}")
    return NameAddr(None, uri, parse_params(";" + params if params else ""), bracketed=False)


_parse_via = remembering(read_via)
_parse_name_addr = remembering(read_name_addr)
