"""STUN attributes: one table of type code, name, pack and unpack.

Every attribute the codec understands is one row of ATTRIBUTE_TYPES; the
message codec never names an attribute except MESSAGE-INTEGRITY and
FINGERPRINT, whose position it must check. Adding an attribute is adding a
row (and a sample to the tests, which insist on one per row).

Values are plain data: an Address for every address attribute, str for
text, int for numbers, ErrorCode, ChangeRequest, a tuple of type codes for
UNKNOWN-ATTRIBUTES, and bytes for opaque values (MESSAGE-INTEGRITY, PADDING,
and every type the table does not know, which the message keeps as is).

Unpack functions see the value without its padding and raise StunDecodeError
with a short reason; the codec adds the attribute's name and offset.

XOR-MAPPED-ADDRESS is an address whose port and address bytes are xored
with the 16 bytes that follow the header's length field: the magic cookie
and the transaction id (RFC 8489 section 14.2). An RFC 3489 message has a
128-bit transaction id in that place; no RFC defines the xor for it, and
using the same 16 bytes keeps encode and decode symmetric.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final, Generic, TypeVar, cast

from natlab.stun.errors import StunDecodeError

T = TypeVar("T")
IPAddress = IPv4Address | IPv6Address

FAMILY_IPV4: Final = 0x01
FAMILY_IPV6: Final = 0x02
XOR_KEY_SIZE: Final = 16
"""Magic cookie + 96-bit transaction id, or an RFC 3489 128-bit id."""


@dataclass(frozen=True)
class Address:
    """A transport address: what address attributes carry and what a responder answers to."""

    ip: IPAddress
    port: int

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is not in 0..65535")

    @classmethod
    def of(cls, ip: str | IPAddress, port: int) -> Address:
        """Build from text or an ipaddress object, the two forms callers hold."""
        return cls(ip_address(ip), port)

    def __str__(self) -> str:
        if self.ip.version == 6:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ErrorCode:
    """ERROR-CODE: a number 300..699 and a reason phrase for humans."""

    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not 300 <= self.code <= 699:
            raise ValueError(f"error code {self.code} is not in 300..699")


@dataclass(frozen=True)
class ChangeRequest:
    """CHANGE-REQUEST (RFC 5780, RFC 3489): answer from the other IP and/or port."""

    change_ip: bool = False
    change_port: bool = False


@dataclass(frozen=True)
class Attribute:
    """One attribute of a message, in wire order.

    `value` has the table's type for `code`; for a code the table does not
    know it is the raw value bytes, so unknown attributes survive a re-encode.
    """

    code: int
    value: object

    @property
    def name(self) -> str:
        kind = ATTRIBUTE_TYPES.get(self.code)
        return kind.name if kind else f"0x{self.code:04X}"


@dataclass(frozen=True)
class AttributeType(Generic[T]):
    """A row of the table: how one attribute type looks on the wire."""

    code: int
    name: str
    pack: Callable[[T], bytes] = field(repr=False)
    unpack: Callable[[bytes], T] = field(repr=False)
    xored: bool = False

    @property
    def comprehension_required(self) -> bool:
        """Codes below 0x8000 must be understood, or the request is refused (420)."""
        return self.code < 0x8000

    def __call__(self, value: T) -> Attribute:
        """XOR_MAPPED_ADDRESS(address) reads like the wire and keeps the value typed."""
        return Attribute(self.code, value)

    def encode_value(self, value: object, xor_key: bytes) -> bytes:
        packed = self.pack(cast(T, value))
        return _xor(packed, xor_key) if self.xored else packed

    def decode_value(self, raw: bytes, xor_key: bytes) -> T:
        return self.unpack(_xor(raw, xor_key) if self.xored else raw)


def _xor(value: bytes, key: bytes) -> bytes:
    # Bytes 0-1 (reserved, family) stay; the port takes the cookie's top 16 bits,
    # the address the cookie (IPv4) or cookie + transaction id (IPv6).
    pad = key[:2] + key
    head, body = value[:2], value[2:]
    return head + bytes(b ^ k for b, k in zip(body, pad, strict=False)) + body[len(pad) :]


def _expect_size(raw: bytes, size: int) -> None:
    if len(raw) != size:
        raise StunDecodeError(f"value is {len(raw)} bytes, expected {size}")


def _pack_address(address: Address) -> bytes:
    family = FAMILY_IPV4 if address.ip.version == 4 else FAMILY_IPV6
    return struct.pack("!BBH", 0, family, address.port) + address.ip.packed


def _unpack_address(raw: bytes) -> Address:
    if len(raw) < 4:
        raise StunDecodeError(f"value is {len(raw)} bytes, an address needs at least 8")
    _reserved, family, port = struct.unpack_from("!BBH", raw)
    if family == FAMILY_IPV4:
        _expect_size(raw, 8)
        return Address(IPv4Address(raw[4:]), port)
    if family == FAMILY_IPV6:
        _expect_size(raw, 20)
        return Address(IPv6Address(raw[4:]), port)
    raise StunDecodeError(f"address family 0x{family:02X} is neither IPv4 (0x01) nor IPv6 (0x02)")


def _pack_text(text: str) -> bytes:
    return text.encode("utf-8")


def _unpack_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StunDecodeError(
            f"not UTF-8: byte {error.start} is 0x{raw[error.start]:02X}"
        ) from None


def _pack_u32(number: int) -> bytes:
    return struct.pack("!I", number)


def _unpack_u32(raw: bytes) -> int:
    _expect_size(raw, 4)
    return int.from_bytes(raw, "big")


def _pack_u64(number: int) -> bytes:
    return struct.pack("!Q", number)


def _unpack_u64(raw: bytes) -> int:
    _expect_size(raw, 8)
    return int.from_bytes(raw, "big")


def _pack_bytes(raw: bytes) -> bytes:
    return raw


def _unpack_bytes(raw: bytes) -> bytes:
    return raw


def _unpack_sha1(raw: bytes) -> bytes:
    _expect_size(raw, 20)
    return raw


def _pack_error_code(error: ErrorCode) -> bytes:
    hundreds, rest = divmod(error.code, 100)
    return struct.pack("!HBB", 0, hundreds, rest) + error.reason.encode("utf-8")


def _unpack_error_code(raw: bytes) -> ErrorCode:
    if len(raw) < 4:
        raise StunDecodeError(f"value is {len(raw)} bytes, needs at least 4")
    hundreds, rest = raw[2] & 0x07, raw[3]
    if not 3 <= hundreds <= 6:
        raise StunDecodeError(f"class {hundreds} is not in 3..6")
    if rest > 99:
        raise StunDecodeError(f"number {rest} is not in 0..99")
    return ErrorCode(hundreds * 100 + rest, _unpack_text(raw[4:]))


def _pack_codes(codes: tuple[int, ...]) -> bytes:
    return struct.pack(f"!{len(codes)}H", *codes)


def _unpack_codes(raw: bytes) -> tuple[int, ...]:
    if len(raw) % 2:
        raise StunDecodeError(f"value is {len(raw)} bytes, not a whole number of 16-bit codes")
    return struct.unpack(f"!{len(raw) // 2}H", raw)


CHANGE_IP_FLAG: Final = 0x04
CHANGE_PORT_FLAG: Final = 0x02


def _pack_change_request(change: ChangeRequest) -> bytes:
    flags = (CHANGE_IP_FLAG if change.change_ip else 0) | (
        CHANGE_PORT_FLAG if change.change_port else 0
    )
    return struct.pack("!I", flags)


def _unpack_change_request(raw: bytes) -> ChangeRequest:
    flags = _unpack_u32(raw)
    return ChangeRequest(bool(flags & CHANGE_IP_FLAG), bool(flags & CHANGE_PORT_FLAG))


def _pack_port(port: int) -> bytes:
    return struct.pack("!HH", port, 0)


def _unpack_port(raw: bytes) -> int:
    # RFC 5780 7.5: a 16-bit port followed by 2 bytes of padding inside the value.
    _expect_size(raw, 4)
    return int.from_bytes(raw[:2], "big")


_TABLE: Final = (
    # RFC 5389 / 8489
    MAPPED_ADDRESS := AttributeType(0x0001, "MAPPED-ADDRESS", _pack_address, _unpack_address),
    USERNAME := AttributeType(0x0006, "USERNAME", _pack_text, _unpack_text),
    MESSAGE_INTEGRITY := AttributeType(0x0008, "MESSAGE-INTEGRITY", _pack_bytes, _unpack_sha1),
    ERROR_CODE := AttributeType(0x0009, "ERROR-CODE", _pack_error_code, _unpack_error_code),
    UNKNOWN_ATTRIBUTES := AttributeType(0x000A, "UNKNOWN-ATTRIBUTES", _pack_codes, _unpack_codes),
    REALM := AttributeType(0x0014, "REALM", _pack_text, _unpack_text),
    NONCE := AttributeType(0x0015, "NONCE", _pack_text, _unpack_text),
    XOR_MAPPED_ADDRESS := AttributeType(
        0x0020, "XOR-MAPPED-ADDRESS", _pack_address, _unpack_address, xored=True
    ),
    SOFTWARE := AttributeType(0x8022, "SOFTWARE", _pack_text, _unpack_text),
    ALTERNATE_SERVER := AttributeType(0x8023, "ALTERNATE-SERVER", _pack_address, _unpack_address),
    FINGERPRINT := AttributeType(0x8028, "FINGERPRINT", _pack_u32, _unpack_u32),
    # RFC 5780 (NAT behaviour discovery); CHANGE-REQUEST comes from RFC 3489
    CHANGE_REQUEST := AttributeType(
        0x0003, "CHANGE-REQUEST", _pack_change_request, _unpack_change_request
    ),
    PADDING := AttributeType(0x0026, "PADDING", _pack_bytes, _unpack_bytes),
    RESPONSE_PORT := AttributeType(0x0027, "RESPONSE-PORT", _pack_port, _unpack_port),
    RESPONSE_ORIGIN := AttributeType(0x802B, "RESPONSE-ORIGIN", _pack_address, _unpack_address),
    OTHER_ADDRESS := AttributeType(0x802C, "OTHER-ADDRESS", _pack_address, _unpack_address),
    # RFC 3489 (classic NAT-type clients)
    RESPONSE_ADDRESS := AttributeType(0x0002, "RESPONSE-ADDRESS", _pack_address, _unpack_address),
    SOURCE_ADDRESS := AttributeType(0x0004, "SOURCE-ADDRESS", _pack_address, _unpack_address),
    CHANGED_ADDRESS := AttributeType(0x0005, "CHANGED-ADDRESS", _pack_address, _unpack_address),
    # RFC 8445 (ICE connectivity checks, as in the RFC 5769 sample request)
    PRIORITY := AttributeType(0x0024, "PRIORITY", _pack_u32, _unpack_u32),
    ICE_CONTROLLED := AttributeType(0x8029, "ICE-CONTROLLED", _pack_u64, _unpack_u64),
    ICE_CONTROLLING := AttributeType(0x802A, "ICE-CONTROLLING", _pack_u64, _unpack_u64),
)

ATTRIBUTE_TYPES: Final[dict[int, AttributeType[Any]]] = {kind.code: kind for kind in _TABLE}
