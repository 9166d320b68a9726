"""Keys for MESSAGE-INTEGRITY: SASLprep and the short- and long-term formulas.

RFC 5389 section 15.4: with short-term credentials the HMAC key is
SASLprep(password); with long-term credentials it is
MD5(username ":" realm ":" SASLprep(password)). SASLprep (RFC 4013) is
done here in full with the stdlib's stringprep tables (Unicode 3.2), so a
password such as "The<U+00AD>M<U+00AA>tr<U+2168>" gives the same key as
"TheMatrIX", which is what RFC 5769's long-term vector checks. RFC 8489's
OpaqueString profile (PRECIS) is not implemented; for the ASCII passwords
a lab uses, both give the plain UTF-8 bytes.

Passwords come from configuration, not from the wire, so a password that
SASLprep prohibits raises ValueError, not StunDecodeError.
"""

from __future__ import annotations

import hashlib
import stringprep
import unicodedata
from collections.abc import Callable
from typing import Final

_PROHIBITED: Final[tuple[tuple[str, Callable[[str], bool]], ...]] = (
    ("non-ASCII space", stringprep.in_table_c12),
    ("control character", stringprep.in_table_c21_c22),
    ("private use character", stringprep.in_table_c3),
    ("non-character code point", stringprep.in_table_c4),
    ("surrogate code point", stringprep.in_table_c5),
    ("inappropriate for plain text", stringprep.in_table_c6),
    ("inappropriate for canonical representation", stringprep.in_table_c7),
    ("change display property or deprecated", stringprep.in_table_c8),
    ("tagging character", stringprep.in_table_c9),
    ("unassigned in Unicode 3.2", stringprep.in_table_a1),
)


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep for stored strings: map, NFKC, prohibit, check bidi."""
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in normalized:
        for what, in_table in _PROHIBITED:
            if in_table(char):
                raise ValueError(f"SASLprep: U+{ord(char):04X} is prohibited ({what})")
    right_to_left = [stringprep.in_table_d1(char) for char in normalized]
    if any(right_to_left):
        if any(stringprep.in_table_d2(char) for char in normalized):
            raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (right_to_left[0] and right_to_left[-1]):
            raise ValueError("SASLprep: right-to-left text must start and end right-to-left")
    return normalized


def short_term_key(password: str) -> bytes:
    """The HMAC key for short-term credentials (ICE, RFC 5769 2.1-2.3)."""
    return saslprep(password).encode("utf-8")


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """The HMAC key for long-term credentials (RFC 5389 15.4, RFC 5769 2.4)."""
    return hashlib.md5(f"{username}:{realm}:{saslprep(password)}".encode()).digest()
