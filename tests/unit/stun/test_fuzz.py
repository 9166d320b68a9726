"""Property tests of the codec: what the wire can throw at it, and what it builds.

Decoding must raise StunDecodeError and nothing else, whatever arrives;
whatever decodes must re-encode to the same message; every attribute type
in the table survives a round trip; FINGERPRINT and MESSAGE-INTEGRITY catch
any single flipped bit in what they cover.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from natlab.stun import (
    ALTERNATE_SERVER,
    ATTRIBUTE_TYPES,
    CHANGE_REQUEST,
    CHANGED_ADDRESS,
    ERROR_CODE,
    FINGERPRINT,
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    MAGIC_COOKIE,
    MAPPED_ADDRESS,
    MESSAGE_INTEGRITY,
    NONCE,
    OTHER_ADDRESS,
    PADDING,
    PRIORITY,
    REALM,
    RESPONSE_ADDRESS,
    RESPONSE_ORIGIN,
    RESPONSE_PORT,
    SOFTWARE,
    SOURCE_ADDRESS,
    UNKNOWN_ATTRIBUTES,
    USERNAME,
    XOR_MAPPED_ADDRESS,
    Address,
    Attribute,
    ChangeRequest,
    ErrorCode,
    Message,
    MessageClass,
    StunDecodeError,
    decode,
    encode,
    short_term_key,
    verify_fingerprint,
    verify_integrity,
)

EXAMPLES = settings(max_examples=300, deadline=None)

ports = st.integers(0, 0xFFFF)
addresses = st.builds(
    Address,
    ip=st.one_of(
        st.integers(0, 2**32 - 1).map(IPv4Address),
        st.integers(0, 2**128 - 1).map(IPv6Address),
    ),
    port=ports,
)
texts = st.text(max_size=40)
u32 = st.integers(0, 2**32 - 1)

VALUES: dict[int, st.SearchStrategy[object]] = {
    MAPPED_ADDRESS.code: addresses,
    USERNAME.code: texts,
    MESSAGE_INTEGRITY.code: st.binary(min_size=20, max_size=20),
    ERROR_CODE.code: st.builds(ErrorCode, code=st.integers(300, 699), reason=texts),
    UNKNOWN_ATTRIBUTES.code: st.lists(st.integers(0, 0xFFFF), max_size=6).map(tuple),
    REALM.code: texts,
    NONCE.code: texts,
    XOR_MAPPED_ADDRESS.code: addresses,
    SOFTWARE.code: texts,
    ALTERNATE_SERVER.code: addresses,
    FINGERPRINT.code: u32,
    CHANGE_REQUEST.code: st.builds(ChangeRequest, st.booleans(), st.booleans()),
    PADDING.code: st.binary(max_size=64),
    RESPONSE_PORT.code: ports,
    RESPONSE_ORIGIN.code: addresses,
    OTHER_ADDRESS.code: addresses,
    RESPONSE_ADDRESS.code: addresses,
    SOURCE_ADDRESS.code: addresses,
    CHANGED_ADDRESS.code: addresses,
    PRIORITY.code: u32,
    ICE_CONTROLLED.code: st.integers(0, 2**64 - 1),
    ICE_CONTROLLING.code: st.integers(0, 2**64 - 1),
}
"""A value strategy per row of the attribute table; a new row needs one here."""

TRAILERS = (MESSAGE_INTEGRITY.code, FINGERPRINT.code)


def attribute_of(code: int) -> st.SearchStrategy[Attribute]:
    return VALUES[code].map(lambda value: Attribute(code, value))


known_attributes = st.sampled_from(sorted(set(VALUES) - set(TRAILERS))).flatmap(attribute_of)
unknown_attributes = st.builds(
    Attribute,
    code=st.integers(0, 0xFFFF).filter(lambda code: code not in ATTRIBUTE_TYPES),
    value=st.binary(max_size=40),
)
transaction_ids = st.one_of(
    st.binary(min_size=12, max_size=12),
    st.binary(min_size=16, max_size=16).filter(
        lambda tid: tid[:4] != MAGIC_COOKIE.to_bytes(4, "big")
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    """Any well-ordered message: known and unknown attributes, then MI and FINGERPRINT maybe."""
    body = draw(st.lists(st.one_of(known_attributes, unknown_attributes), max_size=8))
    for code in TRAILERS:
        if draw(st.booleans()):
            body.append(draw(attribute_of(code)))
    return Message(
        method=draw(st.integers(0, 0xFFF)),
        message_class=draw(st.sampled_from(MessageClass)),
        transaction_id=draw(transaction_ids),
        attributes=tuple(body),
    )


def decoded_or_none(data: bytes) -> Message | None:
    """Decode; StunDecodeError is the one allowed failure, anything else fails the test."""
    try:
        return decode(data)
    except StunDecodeError:
        return None


def checks(verify: Callable[[bytes], bool], data: bytes) -> bool:
    """A verify_* result, counting bytes too broken to frame as failing the check."""
    try:
        return verify(data)
    except StunDecodeError:
        return False


def flip(data: bytes, bit: int) -> bytes:
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutated)


def with_length_fixed(data: bytes) -> bytes:
    """Make the header's length field agree with the datagram, so parsing goes deeper."""
    if len(data) < 20:
        return data
    return data[:2] + struct.pack("!H", (len(data) - 20) & 0xFFFF) + data[4:]


def test_every_attribute_type_has_a_value_strategy() -> None:
    assert set(VALUES) == set(ATTRIBUTE_TYPES)


@EXAMPLES
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_only_stun_decode_error(data: bytes) -> None:
    decoded_or_none(data)
    checks(verify_fingerprint, data)
    checks(lambda d: verify_integrity(d, b"key"), data)


@st.composite
def framed_garbage(draw: st.DrawFn) -> bytes:
    """A well-framed header and TLVs of table codes with values of random size and content.

    Random bytes almost never get past the header; these reach every unpack function.
    """
    tlvs = b""
    for _ in range(draw(st.integers(0, 6))):
        code = draw(st.one_of(st.sampled_from(sorted(ATTRIBUTE_TYPES)), st.integers(0, 0xFFFF)))
        value = draw(st.binary(max_size=24))
        tlvs += struct.pack("!HH", code, len(value)) + value + bytes(-len(value) % 4)
    message_type = draw(st.integers(0, 0x3FFF))
    cookie = draw(
        st.one_of(st.just(MAGIC_COOKIE.to_bytes(4, "big")), st.binary(min_size=4, max_size=4))
    )
    head = (
        struct.pack("!HH", message_type, len(tlvs))
        + cookie
        + draw(st.binary(min_size=12, max_size=12))
    )
    return head + tlvs


@EXAMPLES
@given(framed_garbage())
def test_framed_garbage_decodes_or_raises_only_stun_decode_error(data: bytes) -> None:
    message = decoded_or_none(data)
    event("decoded" if message is not None else "refused")
    if message is not None:
        # Whatever decodes is a message the encoder accepts and that decodes the same.
        assert decode(encode(message)) == message


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20)),
    st.tuples(st.just("insert"), st.integers(0, 2**20), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("overwrite"), st.integers(0, 2**20), st.integers(0, 255)),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, where, *rest = mutation
    if not data and kind != "insert":
        return data
    if kind == "flip":
        return flip(data, where % (len(data) * 8))
    if kind == "truncate":
        return data[: where % len(data)]
    position = where % (len(data) + 1)
    if kind == "insert":
        return data[:position] + rest[0] + data[position:]
    position %= len(data)
    return data[:position] + bytes([rest[0]]) + data[position + 1 :]


@EXAMPLES
@given(messages(), st.lists(mutations, min_size=1, max_size=4), st.booleans())
def test_mutated_valid_messages_decode_or_raise_only_stun_decode_error(
    message: Message, changes: list[tuple], fix_length: bool
) -> None:
    data = encode(message)
    for change in changes:
        data = mutate(data, change)
    if fix_length:
        data = with_length_fixed(data)
    decoded = decoded_or_none(data)
    event("decoded" if decoded is not None else "refused")
    checks(verify_fingerprint, data)
    checks(lambda d: verify_integrity(d, b"key"), data)
    if decoded is not None:
        assert decode(encode(decoded)) == decoded


@EXAMPLES
@given(messages(), st.sampled_from([0x00, 0x20, 0xFF]))
def test_every_attribute_type_round_trips(message: Message, pad_byte: int) -> None:
    assert decode(encode(message, pad_byte=pad_byte)) == message


def without_trailers(message: Message) -> Message:
    body = tuple(a for a in message.attributes if a.code not in TRAILERS)
    return Message(message.method, message.message_class, message.transaction_id, body)


passwords = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24)


@EXAMPLES
@given(messages().map(without_trailers), st.integers(0, 2**20))
def test_fingerprint_verifies_and_catches_any_flipped_bit(message: Message, bit: int) -> None:
    data = encode(message, fingerprint=True)
    assert verify_fingerprint(data)
    assert decode(data).attributes[:-1] == message.attributes
    assert not checks(verify_fingerprint, flip(data, bit % (len(data) * 8)))


@EXAMPLES
@given(messages().map(without_trailers), passwords, st.booleans(), st.integers(0, 2**20))
def test_short_term_integrity_verifies_and_catches_any_flipped_bit_it_covers(
    message: Message, password: str, fingerprint: bool, bit: int
) -> None:
    key = short_term_key(password)
    data = encode(message, integrity_key=key, fingerprint=fingerprint)
    assert verify_integrity(data, key)
    assert not verify_integrity(data, key + b"x")
    # The HMAC covers everything up to and including its own value, not a FINGERPRINT after it.
    covered = len(data) - 8 * fingerprint
    assert not checks(lambda d: verify_integrity(d, key), flip(data, bit % (covered * 8)))
    if fingerprint:
        assert verify_integrity(flip(data, (covered * 8) + bit % 64), key)


@pytest.mark.parametrize(
    ("attribute", "named"),
    [
        (PRIORITY(2**32), "PRIORITY"),
        (ICE_CONTROLLING(-1), "ICE-CONTROLLING"),
        (RESPONSE_PORT(0x10000), "RESPONSE-PORT"),
        (Attribute(0x10000, b""), "attribute type 65536"),
    ],
)
def test_encode_refuses_values_that_do_not_fit_with_value_error(
    attribute: Attribute, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        encode(Message(0x001, MessageClass.REQUEST, bytes(12), (attribute,)))
