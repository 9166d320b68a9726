"""Is a SIP phone behind NAT? What a NAT-aware PBX or SBC asks of each message it gets.

The addresses a phone writes into its Contact, its top Via and its SDP's c=
are where it believes it is; the source the PBX saw the message come from is
where it really is. When one of them is an IP address other than the source,
a NAT stood in between: kamailio nathelper's nat_uac_test makes the same
comparisons (received differs from the Via, Contact differs from the source,
a private SDP address). Addresses only, never ports: over TCP and TLS the
source port is the connection's, never the Contact's, and RTP's port is
never SIP's. A hostname says nothing about NAT, nor does the 0.0.0.0 of a
held call or of ICE's placeholder: neither is compared.

An ALG that rewrites those addresses to the router's public one (both
natlab's `rewrite` and its `broken` mode do) hides the NAT from the PBX,
which then sees no reason to relay; over TLS the ALG cannot read them, and
the PBX sees the private address again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from ipaddress import ip_address

from natlab.endpoints.sdp_offer import MediaOffer
from natlab.sip.errors import SipError
from natlab.sip.headers import NameAddr, SipUri, Via
from natlab.sip.message import SipMessage


@dataclass(frozen=True)
class NatEvidence:
    """The field that gave the NAT away, the address it names, and where the message came from."""

    field: str  # "Contact", "Via" or "SDP c="
    written: str
    seen: str

    def __str__(self) -> str:
        return f"{self.field} {self.written}, seen from {self.seen}"


def behind_nat(message: SipMessage, source: str) -> NatEvidence | None:
    """The first of Contact, top Via and SDP c= naming an address other than `source`; else None."""
    for field, written in _written_addresses(message):
        if written is not None and _is_address(written) and written != source:
            return NatEvidence(field, written, source)
    return None


def _written_addresses(message: SipMessage) -> list[tuple[str, str | None]]:
    return [
        ("Contact", _contact_host(message)),
        ("Via", _via_host(message)),
        ("SDP c=", _sdp(message)),
    ]


def _contact_host(message: SipMessage) -> str | None:
    value = message.get("Contact")
    if not value or value.strip() == "*":
        return None
    with contextlib.suppress(SipError):
        return SipUri.parse(NameAddr.parse(value).uri).host
    return None


def _via_host(message: SipMessage) -> str | None:
    vias = message.values("Via")
    with contextlib.suppress(SipError):
        return Via.parse(vias[0]).host if vias else None
    return None


def _sdp(message: SipMessage) -> str | None:
    if not message.body:
        return None
    with contextlib.suppress(SipError):
        rtp = MediaOffer.from_sdp(message.body).rtp
        return rtp[0] if rtp else None
    return None


def _is_address(text: str) -> bool:
    try:
        return not ip_address(text).is_unspecified
    except ValueError:
        return False
