"""Classic RFC 3489 answers, read the way a naive RFC 3489 client reads them.

RFC 3489 has no attribute padding: every attribute it defines has a value
that is a multiple of 4 bytes, so a client written to it takes each length
literally and steps to the next attribute right after the value. Such a
client crashed on natlab's classic answers, which carried SOFTWARE ("natlab",
6 bytes and 2 of padding). The parser below is that client: it must read
every classic answer of the responder and of the STUN server to its end,
finding only attributes RFC 3489 defines, each of the size RFC 3489 gives it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from ipaddress import ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.endpoints.stun_server import StunServer
from natlab.stun import (
    CHANGE_REQUEST,
    PADDING,
    RESPONSE_ADDRESS,
    Address,
    Attribute,
    ChangeRequest,
    Grid,
    Message,
    MessageClass,
    Method,
    answer,
    encode,
    read_request,
    respond,
)

RFC3489_ATTRIBUTES = {
    0x0001: "MAPPED-ADDRESS",
    0x0002: "RESPONSE-ADDRESS",
    0x0003: "CHANGE-REQUEST",
    0x0004: "SOURCE-ADDRESS",
    0x0005: "CHANGED-ADDRESS",
    0x0006: "USERNAME",
    0x0007: "PASSWORD",
    0x0008: "MESSAGE-INTEGRITY",
    0x0009: "ERROR-CODE",
    0x000A: "UNKNOWN-ATTRIBUTES",
    0x000B: "REFLECTED-FROM",
}
ADDRESSES = (0x0001, 0x0002, 0x0004, 0x0005, 0x000B)
COOKIE = bytes.fromhex("2112A442")

CLIENT = Address.of("198.51.100.7", 40000)
GRID = Grid((ip_address("203.0.113.10"), ip_address("203.0.113.11")), (3478, 3479))
PRIMARY = Address.of("203.0.113.10", 3478)
OTHER = Address.of("203.0.113.11", 3479)


def naive_classic_parse(data: bytes) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """An RFC 3489 client's parser: attribute lengths taken literally, no padding skipped.

    Like such a client it steps over attributes it does not know (RFC 3489
    lets it ignore those above 0x7fff), and fails (struct.error,
    AssertionError) where it would choke. Every attribute must be RFC 3489's.
    """
    message_type, length = struct.unpack("!HH", data[:4])
    transaction_id, body = data[4:20], data[20:]
    assert len(body) == length, "the header's length is the attributes' length"
    attributes, offset = [], 0
    while offset < len(body):
        kind, size = struct.unpack("!HH", body[offset : offset + 4])
        value = body[offset + 4 : offset + 4 + size]
        assert len(value) == size, f"attribute 0x{kind:04x} runs past the message"
        if kind in ADDRESSES:
            assert size == 8 and value[1] == 1, f"{RFC3489_ATTRIBUTES[kind]} is not IPv4"
        elif kind == 0x0009:  # ERROR-CODE: class, number, reason of a multiple of 4 bytes
            assert size >= 4 and size % 4 == 0 and 3 <= value[2] <= 6
        elif kind == 0x000A:  # UNKNOWN-ATTRIBUTES: 16-bit codes, an even number of them
            assert size % 4 == 0
        attributes.append((kind, value))
        offset += 4 + size
    for kind, _ in attributes:
        assert kind in RFC3489_ATTRIBUTES, f"attribute 0x{kind:04x} is not RFC 3489's"
    return message_type, transaction_id, attributes


def mapped(value: bytes) -> Address:
    port, ip = struct.unpack("!H4s", value[2:8])
    return Address(ip_address(ip), port)


classic_ids = st.binary(min_size=16, max_size=16).filter(lambda tid: not tid.startswith(COOKIE))
changes = st.one_of(st.none(), st.builds(ChangeRequest, st.booleans(), st.booleans()))
unknown_codes = st.lists(st.integers(0x0030, 0x7FFF), max_size=3)  # none of them known


@st.composite
def classic_requests(draw: st.DrawFn) -> Message:
    """Classic Binding requests, some with what makes an error answer, some of other methods."""
    attributes: list[Attribute] = []
    change = draw(changes)
    if change is not None:
        attributes.append(CHANGE_REQUEST(change))
    attributes += [Attribute(code, b"\0\0\0\0") for code in draw(unknown_codes)]
    if draw(st.booleans()):
        attributes.append(RESPONSE_ADDRESS(CLIENT))
    if draw(st.booleans()):
        attributes.append(PADDING(bytes(8)))
    method = draw(st.sampled_from([Method.BINDING, Method.BINDING, 0x002]))
    return Message(method, MessageClass.REQUEST, draw(classic_ids), tuple(attributes))


@given(request=classic_requests(), other=st.sampled_from([None, OTHER]))
def test_every_classic_answer_reads_to_its_end_with_a_naive_rfc3489_parser(
    request: Message, other: Address | None
) -> None:
    reply = respond(read_request(encode(request)), CLIENT, PRIMARY, other=other)
    assert reply is not None
    message_type, transaction_id, attributes = naive_classic_parse(reply.data)
    assert transaction_id == request.transaction_id
    kinds = [kind for kind, _ in attributes]
    if message_type == 0x0101:  # Binding success: where the client is, and where from
        assert kinds[:2] == [0x0001, 0x0004]
        assert mapped(attributes[0][1]) == CLIENT
    else:
        assert 0x0009 in kinds


def test_a_plain_classic_binding_answer_is_exactly_what_rfc3489_lists() -> None:
    request = Message(Method.BINDING, MessageClass.REQUEST, bytes(range(100, 116)), ())
    reply = answer(request, CLIENT, PRIMARY, GRID)
    assert reply is not None
    _, _, attributes = naive_classic_parse(reply.data)
    assert [RFC3489_ATTRIBUTES[kind] for kind, _ in attributes] == [
        "MAPPED-ADDRESS",
        "SOURCE-ADDRESS",
        "CHANGED-ADDRESS",
    ]
    assert [mapped(value) for _, value in attributes] == [CLIENT, PRIMARY, OTHER]


def test_a_classic_420_pads_its_reason_and_repeats_an_odd_unknown_code() -> None:
    request = Message(
        Method.BINDING, MessageClass.REQUEST, bytes(16), (Attribute(0x0041, b"\0\0\0\0"),)
    )
    reply = respond(request, CLIENT, PRIMARY)
    assert reply is not None
    _, _, attributes = naive_classic_parse(reply.data)
    error, unknown = dict(attributes)[0x0009], dict(attributes)[0x000A]
    assert (error[2], error[3], error[4:].decode().rstrip()) == (4, 20, "Unknown Attribute")
    assert struct.unpack("!2H", unknown) == (0x0041, 0x0041)


def test_modern_answers_keep_software() -> None:
    request = Message(Method.BINDING, MessageClass.REQUEST, bytes(12), ())
    reply = respond(request, CLIENT, PRIMARY)
    assert reply is not None
    assert b"natlab" in reply.data


@pytest.fixture
def server() -> Iterator[StunServer]:
    with StunServer((ip_address("127.0.0.1"), ip_address("127.0.0.2")), (0, 0)) as opened:
        yield opened


@pytest.mark.parametrize("change", [None, ChangeRequest(True, True), ChangeRequest(False, True)])
def test_the_stun_server_s_classic_answers_read_with_a_naive_rfc3489_parser(
    server: StunServer, change: ChangeRequest | None
) -> None:
    attributes = () if change is None else (CHANGE_REQUEST(change),)
    request = Message(Method.BINDING, MessageClass.REQUEST, bytes(range(16)), attributes)
    local = server.grid.endpoints[0]
    client = Address.of("127.0.0.1", 40000)
    reply = server.handle(encode(request), client, local)
    assert reply is not None
    _, _, found = naive_classic_parse(reply.data)
    assert [kind for kind, _ in found] == [0x0001, 0x0004, 0x0005]
    assert mapped(found[0][1]) == client
