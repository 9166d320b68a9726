"""HTTP digest authentication as SIP uses it for REGISTER (RFC 2617, RFC 7616 and
RFC 8760: MD5 and SHA-256, qop=auth or none).

Pure: nonces and cnonces are arguments, so the registrar and phones choose them
and tests replay the RFCs' examples.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from natlab.sip.errors import SipError

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
MAX_PARAMS = 20
_ESCAPED = re.compile(r"\\(.)")
_PARAM = re.compile(r'\s*([A-Za-z0-9\-_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(,|$)')


@dataclass(frozen=True)
class Challenge:
    """A WWW-Authenticate / Proxy-Authenticate: Digest ... header."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: str | None = "auth"
    opaque: str | None = None

    def to_header(self) -> str:
        parts = [f'realm="{self.realm}"', f'nonce="{self.nonce}"', f"algorithm={self.algorithm}"]
        if self.qop:
            parts.append(f'qop="{self.qop}"')
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class Credentials:
    """An Authorization / Proxy-Authorization: Digest ... header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def to_header(self) -> str:
        parts = [
            f'username="{self.username}"',
            f'realm="{self.realm}"',
            f'nonce="{self.nonce}"',
            f'uri="{self.uri}"',
            f'response="{self.response}"',
            f"algorithm={self.algorithm}",
        ]
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f'cnonce="{self.cnonce}"']
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)


def parse_params(value: str) -> dict[str, str]:
    """'Digest a="x", b=y' into {"a": "x", "b": "y"} (names lower-cased)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"not a Digest header: {value[:80]!r}")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or len(params) >= MAX_PARAMS:
            raise SipError(f"bad Digest parameters {rest[:80]!r}")
        name = match.group(1).lower()
        if name in params:
            raise SipError(f"duplicated Digest parameter {name}")
        quoted = match.group(2)
        if quoted is None:
            params[name] = match.group(3)
        else:
            params[name] = _ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted
        position = match.end()
    return params


def _require(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise SipError(f"Digest header without {name}")
    return params[name]


def _algorithm(params: dict[str, str]) -> str:
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise SipError(f"unsupported Digest algorithm {algorithm}")
    return algorithm


def parse_challenge(value: str) -> Challenge:
    params = parse_params(value)
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise SipError(f"no qop natlab supports in {params['qop']!r}")
    return Challenge(
        _require(params, "realm"),
        _require(params, "nonce"),
        _algorithm(params),
        "auth" if qops else None,
        params.get("opaque"),
    )


def parse_credentials(value: str) -> Credentials:
    params = parse_params(value)
    qop = params.get("qop")
    if qop not in (None, "auth"):
        raise SipError(f"unsupported qop {qop!r}")
    if qop and not re.fullmatch(r"[0-9a-fA-F]{8}", params.get("nc", "")):
        raise SipError("qop=auth without an 8-hex-digit nc")
    return Credentials(
        _require(params, "username"),
        _require(params, "realm"),
        _require(params, "nonce"),
        _require(params, "uri"),
        _require(params, "response"),
        _algorithm(params),
        qop,
        params.get("nc"),
        _require(params, "cnonce") if qop else None,
        params.get("opaque"),
    )


def _hash(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def response(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The request-digest (RFC 2617 3.2.2.1, RFC 7616 3.4.1)."""
    a1 = _hash(challenge.algorithm, f"{username}:{challenge.realm}:{password}")
    a2 = _hash(challenge.algorithm, f"{method}:{uri}")
    if challenge.qop:
        if cnonce is None:
            raise ValueError("qop=auth needs a cnonce")
        data = f"{challenge.nonce}:{nc:08x}:{cnonce}:{challenge.qop}:{a2}"
    else:
        data = f"{challenge.nonce}:{a2}"
    return _hash(challenge.algorithm, f"{a1}:{data}")


def answer(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> Credentials:
    """What a phone sends back to a challenge."""
    digest = response(
        challenge,
        username=username,
        password=password,
        method=method,
        uri=uri,
        cnonce=cnonce,
        nc=nc,
    )
    return Credentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        digest,
        challenge.algorithm,
        challenge.qop,
        f"{nc:08x}" if challenge.qop else None,
        cnonce if challenge.qop else None,
        challenge.opaque,
    )


def verify(credentials: Credentials, *, challenge: Challenge, password: str, method: str) -> bool:
    """Whether the credentials answer this challenge with this password (registrar side)."""
    if (credentials.realm, credentials.nonce) != (challenge.realm, challenge.nonce):
        return False
    if credentials.algorithm != challenge.algorithm or credentials.qop != challenge.qop:
        return False
    expected = response(
        challenge,
        username=credentials.username,
        password=password,
        method=method,
        uri=credentials.uri,
        cnonce=credentials.cnonce,
        nc=int(credentials.nc, 16) if credentials.nc else 1,
    )
    return hmac.compare_digest(expected, credentials.response)
