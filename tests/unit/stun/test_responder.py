"""The pure Binding responder: what it answers, from where, to where, and what it refuses.

Every reply is checked on the wire bytes (decoded again), since that is what
a client sees; RFC 5780 section 6.1 and RFC 3489 section 8.2 are the spec.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.stun import (
    CHANGE_REQUEST,
    CHANGED_ADDRESS,
    ERROR_CODE,
    FINGERPRINT,
    MAPPED_ADDRESS,
    OTHER_ADDRESS,
    PADDING,
    RESPONSE_ADDRESS,
    RESPONSE_ORIGIN,
    RESPONSE_PORT,
    SOFTWARE,
    SOURCE_ADDRESS,
    UNKNOWN_ATTRIBUTES,
    XOR_MAPPED_ADDRESS,
    Address,
    Attribute,
    ChangeRequest,
    Grid,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    answer,
    decode,
    encode,
    read_request,
    respond,
    verify_fingerprint,
)

CLIENT = Address.of("198.51.100.7", 40000)
GRID = Grid((ip_address("203.0.113.10"), ip_address("203.0.113.11")), (3478, 3479))
PRIMARY = Address.of("203.0.113.10", 3478)
OTHER = Address.of("203.0.113.11", 3479)
TID = bytes(range(12))
CLASSIC_TID = bytes(range(100, 116))


def request(*attributes: Attribute, tid: bytes = TID, method: int = Method.BINDING) -> Message:
    return Message(method, MessageClass.REQUEST, tid, attributes)


def error_code(data: bytes) -> int | None:
    code = decode(data).get(ERROR_CODE)
    return None if code is None else code.code


def test_success_carries_mapped_origin_and_other_address() -> None:
    reply = respond(request(), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    assert (reply.source, reply.destination) == (PRIMARY, CLIENT)
    response = decode(reply.data)
    assert response.message_class is MessageClass.SUCCESS
    assert response.method == Method.BINDING
    assert response.transaction_id == TID
    assert response.get(XOR_MAPPED_ADDRESS) == CLIENT
    assert response.get(MAPPED_ADDRESS) == CLIENT
    assert response.get(RESPONSE_ORIGIN) == PRIMARY
    assert response.get(OTHER_ADDRESS) == OTHER
    assert response.get(SOFTWARE) == "natlab"
    assert verify_fingerprint(reply.data)


def test_ipv6_client_gets_its_ipv6_mapping() -> None:
    client = Address.of("2001:db8::7", 5060)
    reply = respond(request(), client, PRIMARY)
    assert reply is not None
    assert decode(reply.data).get(XOR_MAPPED_ADDRESS) == client


def test_single_address_server_names_no_other_address() -> None:
    reply = respond(request(), CLIENT, PRIMARY, software=None)
    assert reply is not None
    response = decode(reply.data)
    assert response.get(OTHER_ADDRESS) is None
    assert response.get(SOFTWARE) is None
    assert response.get(XOR_MAPPED_ADDRESS) == CLIENT


@pytest.mark.parametrize(
    ("change", "sent_from"),
    [
        (ChangeRequest(False, False), PRIMARY),
        (ChangeRequest(change_ip=True), Address.of("203.0.113.11", 3478)),
        (ChangeRequest(change_port=True), Address.of("203.0.113.10", 3479)),
        (ChangeRequest(True, True), OTHER),
    ],
)
def test_change_request_picks_the_local_address_and_port(
    change: ChangeRequest, sent_from: Address
) -> None:
    reply = respond(request(CHANGE_REQUEST(change)), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    assert reply.source == sent_from
    assert reply.destination == CLIENT
    assert decode(reply.data).get(RESPONSE_ORIGIN) == sent_from


def test_change_request_without_an_alternate_address_is_refused_with_420() -> None:
    reply = respond(request(CHANGE_REQUEST(ChangeRequest(True, True))), CLIENT, PRIMARY)
    assert reply is not None
    assert reply.source == PRIMARY
    assert error_code(reply.data) == 420
    assert decode(reply.data).get(UNKNOWN_ATTRIBUTES) == (CHANGE_REQUEST.code,)
    assert verify_fingerprint(reply.data)


def test_classic_request_is_answered_in_rfc3489_form() -> None:
    reply = respond(request(tid=CLASSIC_TID), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    response = decode(reply.data)
    assert response.classic
    assert response.transaction_id == CLASSIC_TID
    assert response.get(MAPPED_ADDRESS) == CLIENT
    assert response.get(SOURCE_ADDRESS) == PRIMARY
    assert response.get(CHANGED_ADDRESS) == OTHER
    for modern in (XOR_MAPPED_ADDRESS, RESPONSE_ORIGIN, OTHER_ADDRESS, FINGERPRINT):
        assert response.get(modern) is None


def test_classic_change_request_is_sent_from_the_changed_address() -> None:
    change = CHANGE_REQUEST(ChangeRequest(True, True))
    reply = respond(request(change, tid=CLASSIC_TID), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    assert reply.source == OTHER
    assert decode(reply.data).get(SOURCE_ADDRESS) == OTHER


def test_unknown_comprehension_required_attributes_get_420_listing_them() -> None:
    unknown = (Attribute(0x0041, b"x"), Attribute(0x7FFF, b""), Attribute(0x0041, b"y"))
    reply = respond(request(*unknown), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    assert error_code(reply.data) == 420
    assert decode(reply.data).get(UNKNOWN_ATTRIBUTES) == (0x0041, 0x7FFF)


def test_unknown_comprehension_optional_attributes_are_ignored() -> None:
    reply = respond(request(Attribute(0xC001, b"ignore me")), CLIENT, PRIMARY)
    assert reply is not None
    assert decode(reply.data).message_class is MessageClass.SUCCESS


def test_response_address_is_refused_so_nothing_is_reflected_to_a_third_party() -> None:
    elsewhere = RESPONSE_ADDRESS(Address.of("192.0.2.99", 9))
    reply = respond(request(elsewhere), CLIENT, PRIMARY, other=OTHER)
    assert reply is not None
    assert reply.destination == CLIENT
    assert error_code(reply.data) == 420
    assert decode(reply.data).get(UNKNOWN_ATTRIBUTES) == (RESPONSE_ADDRESS.code,)


def test_response_port_redirects_to_the_same_ip_only() -> None:
    reply = respond(request(RESPONSE_PORT(50000)), CLIENT, PRIMARY)
    assert reply is not None
    assert reply.destination == Address(CLIENT.ip, 50000)
    assert decode(reply.data).get(XOR_MAPPED_ADDRESS) == CLIENT


def test_padding_is_answered_with_padding_of_the_mtu() -> None:
    reply = respond(request(PADDING(b"\0" * 8)), CLIENT, PRIMARY, mtu=1001)
    assert reply is not None
    assert len(decode(reply.data).get(PADDING) or b"") == 1004


def test_padding_with_response_port_is_a_bad_request() -> None:
    reply = respond(request(PADDING(b""), RESPONSE_PORT(50000)), CLIENT, PRIMARY)
    assert reply is not None
    assert reply.destination == CLIENT
    assert error_code(reply.data) == 400


def test_other_methods_are_bad_requests() -> None:
    reply = respond(request(method=0x003), CLIENT, PRIMARY)
    assert reply is not None
    response = decode(reply.data)
    assert response.method == 0x003
    assert response.message_class is MessageClass.ERROR
    assert error_code(reply.data) == 400


@pytest.mark.parametrize(
    "message_class", [MessageClass.INDICATION, MessageClass.SUCCESS, MessageClass.ERROR]
)
def test_indications_and_responses_get_no_answer(message_class: MessageClass) -> None:
    message = Message(Method.BINDING, message_class, TID)
    assert respond(message, CLIENT, PRIMARY, other=OTHER) is None


@pytest.mark.parametrize("local", GRID.endpoints)
def test_grid_other_is_the_diagonal_endpoint(local: Address) -> None:
    other = GRID.other(local)
    assert other is not None
    assert other.ip != local.ip
    assert other.port != local.port
    assert other in GRID.endpoints
    assert GRID.other(other) == local


def test_grid_with_one_address_has_no_other() -> None:
    grid = Grid((ip_address("203.0.113.1"),), (3478, 3479))
    assert grid.endpoints == (
        Address.of("203.0.113.1", 3478),
        Address.of("203.0.113.1", 3479),
    )
    assert grid.other(Address.of("203.0.113.1", 3479)) is None


@pytest.mark.parametrize(
    ("addresses", "ports"),
    [
        ((), (3478,)),
        (("203.0.113.1",), ()),
        (("203.0.113.1",) * 2, (3478,)),
        (("1.1.1.1",), (1,) * 2),
    ],
)
def test_grid_refuses_empty_or_repeated_addresses_and_ports(
    addresses: tuple[str, ...], ports: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="one or two distinct"):
        Grid(tuple(ip_address(a) for a in addresses), ports)


def test_grid_refuses_mixed_address_families() -> None:
    with pytest.raises(ValueError, match="one family"):
        Grid((ip_address("203.0.113.1"), ip_address("2001:db8::1")), (3478, 3479))


def test_grid_refuses_an_endpoint_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="not one of"):
        GRID.other(Address.of("203.0.113.10", 9999))


def test_answer_uses_the_grid_for_the_endpoint_the_request_came_in_on() -> None:
    arrived_on = Address.of("203.0.113.11", 3478)
    change = CHANGE_REQUEST(ChangeRequest(change_port=True))
    reply = answer(request(change), CLIENT, arrived_on, GRID, software="lab")
    assert reply is not None
    assert reply.source == Address.of("203.0.113.11", 3479)
    response = decode(reply.data)
    assert response.get(OTHER_ADDRESS) == Address.of("203.0.113.10", 3479)
    assert response.get(SOFTWARE) == "lab"


def test_read_request_refuses_a_wrong_fingerprint_and_garbage() -> None:
    data = encode(request(), fingerprint=True)
    assert read_request(data) == decode(data)
    broken = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(StunDecodeError, match="FINGERPRINT"):
        read_request(broken)
    with pytest.raises(StunDecodeError):
        read_request(b"GET / HTTP/1.1\r\n\r\n")


def test_read_request_accepts_a_request_without_fingerprint() -> None:
    data = encode(request(tid=CLASSIC_TID))
    assert read_request(data).transaction_id == CLASSIC_TID


RESPONDER_CODES = [
    CHANGE_REQUEST.code,
    PADDING.code,
    RESPONSE_PORT.code,
    RESPONSE_ADDRESS.code,
    XOR_MAPPED_ADDRESS.code,
    ERROR_CODE.code,
    FINGERPRINT.code,
    0x0041,
    0xC001,
]


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    """Framed messages of any type whose attributes the responder looks at hold random values."""
    tlvs = b""
    for _ in range(draw(st.integers(0, 4))):
        code = draw(st.sampled_from(RESPONDER_CODES))
        value = draw(st.binary(max_size=12))
        tlvs += code.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
        tlvs += bytes(-len(value) % 4)
    message_type = draw(st.sampled_from([0x0001, 0x0011, 0x0101, 0x0111, 0x0003]))
    cookie = draw(st.sampled_from([bytes.fromhex("2112A442"), b"\x01\x02\x03\x04"]))
    head = message_type.to_bytes(2, "big") + len(tlvs).to_bytes(2, "big") + cookie
    return head + bytes(12) + tlvs


@settings(max_examples=300, deadline=None)
@given(datagrams(), st.sampled_from([None, OTHER]))
def test_any_datagram_is_dropped_answered_well_or_ignored_never_an_exception(
    data: bytes, other: Address | None
) -> None:
    try:
        message = read_request(data)
    except StunDecodeError:
        return  # the server's counted drop
    reply = respond(message, CLIENT, PRIMARY, other=other)
    if message.message_class is not MessageClass.REQUEST:
        assert reply is None
        return
    assert reply is not None
    response = decode(reply.data)
    assert response.transaction_id == message.transaction_id
    assert response.method == message.method
    assert response.message_class in (MessageClass.SUCCESS, MessageClass.ERROR)
