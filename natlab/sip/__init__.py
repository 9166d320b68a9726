"""Pure SIP: a strict codec for messages (RFC 3261), SDP with ICE (RFC 4566, 8839),
digest authentication (RFC 2617, 7616, 8760) and the SIP ALG's rewrite.

No sockets, no clock: bytes and values in, bytes and values out. Every decoder
raises SipError on bad input and nothing else.
"""
