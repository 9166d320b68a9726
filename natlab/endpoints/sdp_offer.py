"""What a phone offers or answers for media, as SDP (RFC 4566, RFC 3264) with ICE (RFC 8839).

A MediaOffer is the phone's view: ICE credentials and candidates, or one
plain address for RTP, and whether the PBX relays it. On the wire it is one
audio section, PCMU (payload type 0) over RTP/AVP: c= and m= carry the
address RTP goes to (the first candidate's in the ICE modes, which is the
phone's own private host address, as real phones send it), and in the ICE
modes a=ice-ufrag, a=ice-pwd, every a=candidate and a=end-of-candidates.

The PBX's media relay rewrites an SDP as an SBC does (relay_sdp): c= and
m= point at its relay port, the ICE lines go (the relay is the only path),
and `a=x-natlab-relay` tells natlab's phones that the address is the relay's,
so their reports name the pair's remote side "relay". Other lines (a
generic UA's codecs) pass unchanged.

An ICE offer answered without ICE (no a=ice-ufrag: a UA without ICE, or the
PBX's relay) falls back as RFC 8839 3.2.3 says (ice_fallback): RTP goes to
the answer's c=/m= from the offer's own c=/m= address (its default
candidate), the only address of ours the answerer knows.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, replace

from natlab.endpoints.sip_transport import Endpoint
from natlab.sip import sdp
from natlab.sip.errors import SipError

MODES = ("ice", "turn", "host", "srflx", "relay")
RELAY_ATTRIBUTE = "x-natlab-relay"
ICE_ATTRIBUTES = ("ice-ufrag", "ice-pwd", "candidate", "end-of-candidates", "ice-options")
CONTENT_TYPE = "application/sdp"


@dataclass(frozen=True)
class MediaOffer:
    """ufrag/pwd/candidates: ICE; rtp: where RTP goes; relay: rtp is the PBX's relay."""

    ufrag: str = ""
    pwd: str = ""
    candidates: tuple[str, ...] = ()
    rtp: Endpoint | None = None
    relay: bool = False

    @property
    def ice(self) -> bool:
        return bool(self.ufrag and self.pwd and self.candidates)

    def default(self) -> Endpoint:
        """Where RTP goes without ICE: rtp, else the first candidate's address."""
        if self.rtp is not None:
            return self.rtp
        for line in self.candidates:
            with contextlib.suppress(SipError):  # skipped, as ICE agents skip what they cannot read
                candidate = sdp.Candidate.parse(line)
                return candidate.address, candidate.port
        return "0.0.0.0", 9  # RFC 8839 4.2.1's placeholder: no address yet

    def to_sdp(self, session: int | None = None) -> bytes:
        host, port = self.default()
        version = session if session is not None else secrets.randbelow(1 << 31)
        lines: list[tuple[str, str]] = [("a", "rtpmap:0 PCMU/8000"), ("a", "sendrecv")]
        if self.ice:
            candidates = [sdp.Candidate.parse(line) for line in self.candidates]
            lines += sdp.ice_lines(self.ufrag, self.pwd, candidates)
        if self.relay:
            lines.append(("a", RELAY_ATTRIBUTE))
        description = sdp.Sdp(
            (
                ("v", "0"),
                ("o", f"- {version} {version} IN IP4 {host}"),
                ("s", "natlab"),
                ("c", f"IN IP4 {host}"),
                ("t", "0 0"),
            ),
            (sdp.Media("audio", port, "RTP/AVP", ("0",), tuple(lines)),),
        )
        return description.to_bytes()

    @classmethod
    def from_sdp(cls, body: bytes) -> MediaOffer:
        """The first audio section of an SDP; SipError if there is none or it is malformed."""
        description = sdp.parse(body)
        audio = next((m for m in description.media if m.kind == "audio"), None)
        if audio is None:
            raise SipError("SDP without an m=audio section")
        address = sdp.connection_address(description, audio)
        if address is None:
            raise SipError("SDP without a c= address for its audio")
        ufrag = _attribute(description, audio, "ice-ufrag")
        pwd = _attribute(description, audio, "ice-pwd")
        candidates = tuple(sdp.attribute_values(audio, "candidate"))
        relay = bool(sdp.attribute_values(audio, RELAY_ATTRIBUTE))
        return cls(ufrag, pwd, candidates, (address, audio.port), relay)


@dataclass(frozen=True)
class Fallback:
    """Plain RTP after an ICE offer met an answer without ICE: from where, to where."""

    source: Endpoint  # the offer's default candidate: what its c=/m= said
    destination: Endpoint  # the answer's c=/m=


def ice_fallback(offer: MediaOffer, answer: MediaOffer) -> Fallback | None:
    """None when both sides do ICE (the checks decide); else where plain RTP goes.

    Whoever answers without ICE sends its RTP to the address in our c=/m=,
    so that is the one address we may send from (RFC 8839 3.2.3).
    """
    if answer.ice and offer.ice:
        return None
    return Fallback(offer.default(), answer.default())


def _attribute(description: sdp.Sdp, section: sdp.Media, name: str) -> str:
    """A media-level attribute, else the session-level one (RFC 8839 5.4), else ""."""
    found = sdp.attribute_values(section, name) or sdp.attribute_values(description, name)
    return found[0] if found else ""


def relay_sdp(body: bytes, relay: Endpoint) -> bytes:
    """The SDP with its audio sent to the PBX's relay: c=, m= rewritten, ICE lines gone."""
    description = sdp.parse(body)
    connection = ("c", f"IN IP4 {relay[0]}")
    session = tuple(
        connection if kind == "c" else (kind, value) for kind, value in description.session
    )
    media = []
    for section in description.media:
        if section.kind != "audio":
            media.append(section)
            continue
        lines = tuple(
            connection if kind == "c" else (kind, value)
            for kind, value in section.lines
            if not (kind == "a" and value.partition(":")[0] in ICE_ATTRIBUTES)
        )
        media.append(replace(section, port=relay[1], lines=(*lines, ("a", RELAY_ATTRIBUTE))))
    if not any(kind == "c" for kind, _ in session):  # c= goes before t= (RFC 4566 5)
        at = next((i for i, (kind, _) in enumerate(session) if kind == "t"), len(session))
        session = (*session[:at], connection, *session[at:])
    return sdp.Sdp(session, tuple(media)).to_bytes()
