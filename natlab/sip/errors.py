"""The one error every SIP, SDP and digest decoder raises on bad input.

A PBX turns it into "400 <reason>"; a phone or a router's ALG drops the
message and records the reason. Nothing else escapes the decoders.
"""

from __future__ import annotations


class SipError(ValueError):
    """Bytes that are not the SIP (or SDP, or digest) natlab accepts; `reason` says why."""

    status = 400

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
