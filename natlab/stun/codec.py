"""STUN messages: bytes to Message and back, and the two checks on raw bytes.

Sans-IO: no sockets, no clock, no randomness (the caller brings the
transaction id). The rules, from RFC 8489 (RFC 5389) and RFC 3489:

- A message is a 20-byte header and attributes. The header holds the type
  (2 bits that must be 0, then method and class interleaved), the length of
  the attributes, and either the magic cookie 0x2112A442 with a 96-bit
  transaction id or, from a classic RFC 3489 client, a 128-bit transaction
  id. Message.transaction_id is 12 bytes for the first, 16 for the second,
  so a response built from the request's id goes back in the request's form.
- The length must match the datagram exactly and be a multiple of 4; every
  attribute is type, length, value, padded to 4 bytes (padding may be any
  value; encode writes `pad_byte`).
- Only FINGERPRINT may follow MESSAGE-INTEGRITY: decode ignores (drops)
  anything else after it, as RFC 8489 14.5 says agents must, so no caller
  can act on an attribute the HMAC does not cover. FINGERPRINT must be the
  last attribute: anything after it is a decode error.
- Decoding malformed input raises StunDecodeError and nothing else, with the
  offset and the reason. Unknown attributes are kept as raw bytes;
  Message.unknown_comprehension_required lists the ones a responder must
  refuse with 420.
- MESSAGE-INTEGRITY and FINGERPRINT are checked on the received bytes, not
  on a re-encoding, since padding and dropped attributes are not kept.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeVar, cast

from natlab.stun.attributes import (
    ATTRIBUTE_TYPES,
    FINGERPRINT,
    MESSAGE_INTEGRITY,
    Attribute,
    AttributeType,
)
from natlab.stun.errors import StunDecodeError

T = TypeVar("T")

MAGIC_COOKIE: Final = 0x2112A442
HEADER_SIZE: Final = 20
FINGERPRINT_XOR: Final = 0x5354554E
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
_INTEGRITY_SIZE: Final = 4 + 20
_FINGERPRINT_SIZE: Final = 4 + 4
_MAX_LENGTH: Final = 0xFFFF


class MessageClass(IntEnum):
    """The two class bits, C1 C0."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class Method(IntEnum):
    """Methods natlab speaks; others decode as plain ints."""

    BINDING = 0x001


@dataclass(frozen=True)
class Message:
    """A STUN message as data: method, class, transaction id, attributes in order."""

    method: int
    message_class: MessageClass
    transaction_id: bytes
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.method <= 0xFFF:
            raise ValueError(f"method 0x{self.method:X} does not fit in 12 bits")
        if len(self.transaction_id) not in (12, 16):
            raise ValueError(
                f"transaction id is {len(self.transaction_id)} bytes, expected 12 "
                "(or 16 for an RFC 3489 message)"
            )
        if self.classic and self.transaction_id.startswith(_COOKIE_BYTES):
            raise ValueError("a 16-byte transaction id must not start with the magic cookie")

    @property
    def classic(self) -> bool:
        """An RFC 3489 message (no magic cookie), to be answered in the same form."""
        return len(self.transaction_id) == 16

    def get(self, kind: AttributeType[T]) -> T | None:
        """The value of the first attribute of this type (later ones are ignored)."""
        for attribute in self.attributes:
            if attribute.code == kind.code:
                return cast(T, attribute.value)
        return None

    @property
    def unknown_comprehension_required(self) -> tuple[int, ...]:
        """Codes of unknown attributes below 0x8000, once each: a request with any gets 420."""
        codes = (a.code for a in self.attributes if a.code not in ATTRIBUTE_TYPES)
        return tuple(dict.fromkeys(code for code in codes if code < 0x8000))


def _message_type(method: int, message_class: int) -> int:
    # M11..M7 C1 M6..M4 C0 M3..M0
    return (
        (method & 0xF80) << 2
        | (method & 0x070) << 1
        | (method & 0x00F)
        | (message_class & 0b10) << 7
        | (message_class & 0b01) << 4
    )


def _split_type(message_type: int) -> tuple[int, MessageClass]:
    method = (message_type >> 2) & 0xF80 | (message_type >> 1) & 0x070 | message_type & 0x00F
    message_class = (message_type >> 7) & 0b10 | (message_type >> 4) & 0b01
    return method, MessageClass(message_class)


def _xor_key(transaction_id: bytes) -> bytes:
    return transaction_id if len(transaction_id) == 16 else _COOKIE_BYTES + transaction_id


def _with_length(prefix: bytes, trailing: int) -> bytes:
    # MESSAGE-INTEGRITY and FINGERPRINT are computed with the length field
    # counting the message up to and including the attribute being computed.
    length = len(prefix) - HEADER_SIZE + trailing
    return prefix[:2] + length.to_bytes(2, "big") + prefix[4:]


def integrity_tag(prefix: bytes, key: bytes) -> bytes:
    """HMAC-SHA1 of the message bytes that precede its MESSAGE-INTEGRITY."""
    return hmac.new(key, _with_length(prefix, _INTEGRITY_SIZE), hashlib.sha1).digest()


def fingerprint_of(prefix: bytes) -> int:
    """CRC-32 xor 0x5354554E of the message bytes that precede its FINGERPRINT."""
    return zlib.crc32(_with_length(prefix, _FINGERPRINT_SIZE)) ^ FINGERPRINT_XOR


def _describe(code: int) -> str:
    kind = ATTRIBUTE_TYPES.get(code)
    return f"{kind.name} (0x{code:04X})" if kind else f"attribute 0x{code:04X}"


def _spans(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Check the framing; yield (code, offset, value) for every attribute."""
    if len(data) < HEADER_SIZE:
        raise StunDecodeError(f"truncated header: {len(data)} bytes, a STUN header has 20")
    message_type, length = struct.unpack_from("!HH", data)
    if message_type & 0xC000:
        raise StunDecodeError(
            f"not STUN: message type 0x{message_type:04X} does not start with two 0 bits"
        )
    if length != len(data) - HEADER_SIZE:
        raise StunDecodeError(
            f"length field says {length} bytes of attributes, {len(data) - HEADER_SIZE} follow"
        )
    if length % 4:
        raise StunDecodeError(f"length {length} is not a multiple of 4")
    offset = HEADER_SIZE
    while offset < len(data):
        # Offsets stay 4-aligned and so does the end: a 4-byte attribute header always fits.
        code, size = struct.unpack_from("!HH", data, offset)
        start = offset + 4
        if start + size > len(data):
            raise StunDecodeError(
                f"{_describe(code)} at offset {offset} declares {size} bytes, "
                f"{len(data) - start} remain"
            )
        yield code, offset, data[start : start + size]
        offset = start + size + (-size % 4)


def _decode_attribute(code: int, offset: int, raw: bytes, xor_key: bytes) -> Attribute:
    kind = ATTRIBUTE_TYPES.get(code)
    if kind is None:
        return Attribute(code, raw)
    try:
        return Attribute(code, kind.decode_value(raw, xor_key))
    except StunDecodeError as error:
        raise StunDecodeError(f"{_describe(code)} at offset {offset}: {error}") from None


def decode(data: bytes) -> Message:
    """Parse one datagram; raise StunDecodeError, and only that, if it is malformed."""
    attributes: list[Attribute] = []
    after_integrity = seen_fingerprint = False
    for code, offset, raw in _spans(data):
        if seen_fingerprint:
            raise StunDecodeError(
                f"{_describe(code)} at offset {offset} follows FINGERPRINT, "
                "which must be the last attribute"
            )
        if code == FINGERPRINT.code:
            seen_fingerprint = True
        elif after_integrity:
            continue
        elif code == MESSAGE_INTEGRITY.code:
            after_integrity = True
        attributes.append(_decode_attribute(code, offset, raw, data[4:HEADER_SIZE]))
    message_type = int.from_bytes(data[:2], "big")
    method, message_class = _split_type(message_type)
    classic = data[4:8] != _COOKIE_BYTES
    transaction_id = data[4:HEADER_SIZE] if classic else data[8:HEADER_SIZE]
    return Message(_known(method), message_class, transaction_id, tuple(attributes))


def _known(method: int) -> int:
    try:
        return Method(method)
    except ValueError:
        return method


def _check_order(codes: list[int]) -> None:
    if FINGERPRINT.code in codes and codes.index(FINGERPRINT.code) != len(codes) - 1:
        raise ValueError("FINGERPRINT must be the last attribute, and only once")
    if MESSAGE_INTEGRITY.code in codes:
        after = codes[codes.index(MESSAGE_INTEGRITY.code) + 1 :]
        if any(code != FINGERPRINT.code for code in after):
            raise ValueError("only FINGERPRINT may follow MESSAGE-INTEGRITY")


def _tlv(code: int, value: bytes, pad_byte: int) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"attribute type {code} does not fit in 16 bits")
    if len(value) > _MAX_LENGTH:
        raise ValueError(f"{_describe(code)} value is {len(value)} bytes, at most 65535 fit")
    return struct.pack("!HH", code, len(value)) + value + bytes([pad_byte]) * (-len(value) % 4)


def _encode_value(attribute: Attribute, xor_key: bytes) -> bytes:
    kind = ATTRIBUTE_TYPES.get(attribute.code)
    if kind is not None:
        try:
            return kind.encode_value(attribute.value, xor_key)
        except struct.error as error:  # a number too large for its field
            raise ValueError(f"{kind.name}: {error}") from None
    if not isinstance(attribute.value, bytes):
        raise ValueError(
            f"{_describe(attribute.code)} is not in the table: its value must be bytes"
        )
    return attribute.value


def _header(message: Message, length: int) -> bytes:
    message_type = _message_type(message.method, message.message_class)
    return struct.pack("!HH", message_type, length) + _xor_key(message.transaction_id)


def encode(
    message: Message,
    *,
    integrity_key: bytes | None = None,
    fingerprint: bool = False,
    pad_byte: int = 0,
) -> bytes:
    """Serialise; append MESSAGE-INTEGRITY (with `integrity_key`) and FINGERPRINT if asked.

    `pad_byte` fills attribute padding: 0 normally, 0x20 to reproduce RFC 5769.
    Raises ValueError for a message that breaks the ordering rules or does not fit.
    """
    codes = [attribute.code for attribute in message.attributes]
    codes += [MESSAGE_INTEGRITY.code] * (integrity_key is not None)
    codes += [FINGERPRINT.code] * fingerprint
    _check_order(codes)
    xor_key = _xor_key(message.transaction_id)
    body = b"".join(
        _tlv(attribute.code, _encode_value(attribute, xor_key), pad_byte)
        for attribute in message.attributes
    )
    extra = _INTEGRITY_SIZE * (integrity_key is not None) + _FINGERPRINT_SIZE * fingerprint
    if len(body) + extra > _MAX_LENGTH:
        raise ValueError(f"attributes take {len(body) + extra} bytes, at most 65535 fit")
    data = _header(message, len(body)) + body
    if integrity_key is not None:
        data += _tlv(MESSAGE_INTEGRITY.code, integrity_tag(data, integrity_key), pad_byte)
    if fingerprint:
        data += _tlv(FINGERPRINT.code, fingerprint_of(data).to_bytes(4, "big"), pad_byte)
    return _with_length(data, 0)  # the header's length now counts what was appended


def verify_fingerprint(data: bytes) -> bool:
    """True if the last attribute is a FINGERPRINT that matches; False if absent or wrong.

    `data` must be a whole message: malformed framing raises StunDecodeError.
    """
    spans = list(_spans(data))
    if not spans or spans[-1][0] != FINGERPRINT.code:
        return False
    _code, offset, value = spans[-1]
    return value == fingerprint_of(data[:offset]).to_bytes(4, "big")


def verify_integrity(data: bytes, key: bytes) -> bool:
    """True if the first MESSAGE-INTEGRITY matches `key`; False if absent or wrong.

    The HMAC covers the bytes before the attribute; what follows it is not
    covered, which is why decode drops everything there but FINGERPRINT.
    """
    for code, offset, value in _spans(data):
        if code == MESSAGE_INTEGRITY.code:
            return hmac.compare_digest(value, integrity_tag(data[:offset], key))
    return False
