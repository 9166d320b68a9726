"""RFC 5769 test vectors: decoded field by field, rebuilt byte for byte, verified.

The vectors (data/*.hex) are typed from RFC 5769 section 2; that their
MESSAGE-INTEGRITY and FINGERPRINT verify is the check that they were typed
right. Sections 2.1-2.3 pad with spaces (0x20) on purpose, hence pad_byte.
"""

from ipaddress import ip_address
from pathlib import Path

import pytest

from natlab.stun import (
    FINGERPRINT,
    ICE_CONTROLLED,
    MESSAGE_INTEGRITY,
    NONCE,
    PRIORITY,
    REALM,
    SOFTWARE,
    USERNAME,
    XOR_MAPPED_ADDRESS,
    Address,
    Message,
    MessageClass,
    Method,
    decode,
    encode,
    long_term_key,
    short_term_key,
    verify_fingerprint,
    verify_integrity,
)

DATA = Path(__file__).parent / "data"
PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def vector(name: str) -> bytes:
    return bytes.fromhex((DATA / f"rfc5769-{name}.hex").read_text())


def without_integrity_and_fingerprint(message: Message) -> Message:
    rest = tuple(
        a for a in message.attributes if a.code not in (MESSAGE_INTEGRITY.code, FINGERPRINT.code)
    )
    return Message(message.method, message.message_class, message.transaction_id, rest)


def test_sample_request_decodes_field_by_field() -> None:
    message = decode(vector("2.1-request"))
    assert message.method is Method.BINDING
    assert message.message_class is MessageClass.REQUEST
    assert message.transaction_id == TRANSACTION_ID
    assert not message.classic
    assert [a.name for a in message.attributes] == [
        "SOFTWARE",
        "PRIORITY",
        "ICE-CONTROLLED",
        "USERNAME",
        "MESSAGE-INTEGRITY",
        "FINGERPRINT",
    ]
    assert message.get(SOFTWARE) == "STUN test client"
    assert message.get(PRIORITY) == 0x6E0001FF
    assert message.get(ICE_CONTROLLED) == 0x932FF9B151263B36
    assert message.get(USERNAME) == "evtj:h6vY"
    assert message.get(MESSAGE_INTEGRITY) == bytes.fromhex(
        "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    )
    assert message.get(FINGERPRINT) == 0xE57A3BCF
    assert message.unknown_comprehension_required == ()


@pytest.mark.parametrize(
    ("name", "mapped"),
    [
        ("2.2-ipv4-response", Address(ip_address("192.0.2.1"), 32853)),
        (
            "2.3-ipv6-response",
            Address(ip_address("2001:db8:1234:5678:11:2233:4455:6677"), 32853),
        ),
    ],
)
def test_sample_responses_decode_field_by_field(name: str, mapped: Address) -> None:
    message = decode(vector(name))
    assert message.method is Method.BINDING
    assert message.message_class is MessageClass.SUCCESS
    assert message.transaction_id == TRANSACTION_ID
    assert [a.name for a in message.attributes] == [
        "SOFTWARE",
        "XOR-MAPPED-ADDRESS",
        "MESSAGE-INTEGRITY",
        "FINGERPRINT",
    ]
    assert message.get(SOFTWARE) == "test vector"
    assert message.get(XOR_MAPPED_ADDRESS) == mapped


def test_long_term_request_decodes_field_by_field() -> None:
    message = decode(vector("2.4-long-term-request"))
    assert message.message_class is MessageClass.REQUEST
    assert message.transaction_id == bytes.fromhex("78ad3433c6ad72c029da412e")
    assert message.get(USERNAME) == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.get(NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert message.get(REALM) == "example.org"
    assert message.get(FINGERPRINT) is None


SHORT_TERM = ["2.1-request", "2.2-ipv4-response", "2.3-ipv6-response"]


@pytest.mark.parametrize("name", SHORT_TERM)
def test_short_term_vectors_verify(name: str) -> None:
    data = vector(name)
    assert verify_integrity(data, short_term_key(PASSWORD))
    assert not verify_integrity(data, short_term_key(PASSWORD.lower()))
    assert verify_fingerprint(data)


def test_long_term_vector_verifies_with_saslprep_password() -> None:
    data = vector("2.4-long-term-request")
    username = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    # "The<SOFT HYPHEN>M<FEMININE ORDINAL>tr<ROMAN NUMERAL NINE>" prepares to "TheMatrIX".
    key = long_term_key(username, "example.org", "The\u00adM\u00aatr\u2168")
    assert key == long_term_key(username, "example.org", "TheMatrIX")
    assert verify_integrity(data, key)
    assert not verify_integrity(data, long_term_key(username, "example.org", "thematrix"))
    assert not verify_fingerprint(data)


@pytest.mark.parametrize("name", SHORT_TERM)
def test_short_term_vectors_reencode_byte_exact(name: str) -> None:
    data = vector(name)
    message = decode(data)
    assert encode(message, pad_byte=0x20) == data
    rebuilt = encode(
        without_integrity_and_fingerprint(message),
        integrity_key=short_term_key(PASSWORD),
        fingerprint=True,
        pad_byte=0x20,
    )
    assert rebuilt == data


def test_long_term_vector_reencodes_byte_exact() -> None:
    data = vector("2.4-long-term-request")
    message = decode(data)
    assert encode(message) == data
    key = long_term_key(message.get(USERNAME) or "", message.get(REALM) or "", "TheMatrIX")
    assert encode(without_integrity_and_fingerprint(message), integrity_key=key) == data


def test_padding_is_covered_by_integrity() -> None:
    # Re-encoded with zero padding, the bytes (and so the HMAC input) differ.
    data = vector("2.1-request")
    zero_padded = encode(decode(data))
    assert zero_padded != data
    assert len(zero_padded) == len(data)
    assert not verify_integrity(zero_padded, short_term_key(PASSWORD))
    assert not verify_fingerprint(zero_padded)
