"""PCP (RFC 6887) server: MAP, PEER, ANNOUNCE, nonces, lifetimes, and every error code."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.engine import Action
from natlab.core.packets import Endpoint, Proto
from natlab.core.portcontrol import pcp
from natlab.core.portcontrol.pcp import Opcode, PcpServer, Result

from ..helpers import S1, WAN, A, B, ep, nat, udp

NONCE = b"0123456789ab"
CLIENT = Endpoint(A, 40000)


def request(
    opcode: int = Opcode.MAP,
    lifetime: int = 600,
    *,
    client: str = A,
    nonce: bytes = NONCE,
    protocol: int = 17,
    internal_port: int = 5000,
    external_port: int = 0,
    external: str | None = None,
    remote: Endpoint | None = None,
    options: bytes = b"",
    version: int = 2,
) -> bytes:
    header = struct.pack("!BBHI16s", version, opcode, 0, lifetime, pcp.mapped(client))
    if opcode == Opcode.ANNOUNCE:
        return header + options
    body = struct.pack(
        "!12sB3xHH16s",
        nonce,
        protocol,
        internal_port,
        external_port,
        bytes(16) if external is None else pcp.mapped(external),
    )
    if remote is not None:
        body += struct.pack("!H2x16s", remote.port, pcp.mapped(remote.address))
    return header + body + options


def answer(data: bytes) -> tuple[int, int, int, int, bytes]:
    """(R|opcode, result, lifetime, epoch, body) of a response."""
    version, opcode, _, result, lifetime, epoch = struct.unpack_from("!BBBBII", data)
    assert version == 2 and len(data) % 4 == 0 and len(data) <= 1100
    return opcode, result, lifetime, epoch, data[24:]


def assigned(body: bytes) -> Endpoint:
    return Endpoint(pcp.ipv4_of(body[20:36]), int.from_bytes(body[18:20], "big"))


def server(**overrides) -> PcpServer:
    return PcpServer(nat(**overrides) if overrides else nat(), started=100.0)


def test_map_opens_a_port_every_remote_reaches():
    pcp_server = server()
    opcode, result, lifetime, epoch, body = answer(
        pcp_server.handle(request(external_port=6000), CLIENT, 110.0)
    )
    assert (opcode, result, lifetime, epoch) == (0x81, Result.SUCCESS, 600, 10)
    assert assigned(body) == ep(f"{WAN}:6000")
    assert body[:12] == NONCE
    packet = udp(f"{S1}:9", f"{WAN}:6000")
    assert pcp_server.engine.inbound(packet, 111.0).action is Action.FORWARD_IN
    [view] = pcp_server.engine.mappings(111.0)
    assert (view.origin, view.lifetime) == ("pcp", 600.0)


def test_lifetimes_are_capped_and_zero_deletes():
    pcp_server = server()
    *_, lifetime, _, _ = answer(pcp_server.handle(request(lifetime=10**9), CLIENT, 0.0))
    assert lifetime == pcp.MAX_LIFETIME
    _, result, lifetime, _, _ = answer(pcp_server.handle(request(lifetime=0), CLIENT, 1.0))
    assert (result, lifetime) == (Result.SUCCESS, 0)
    assert pcp_server.engine.mappings(1.0) == []
    _, result, *_ = answer(pcp_server.handle(request(lifetime=0), CLIENT, 2.0))
    assert result == Result.SUCCESS, "deleting what is not there succeeds"


def test_mappings_expire_with_their_lifetime():
    pcp_server = server()
    pcp_server.handle(request(lifetime=60), CLIENT, 0.0)
    assert pcp_server.engine.expire(59.0) == 0
    assert pcp_server.engine.expire(60.0) == 1


def test_renewing_or_deleting_needs_the_same_nonce():
    pcp_server = server()
    first = assigned(answer(pcp_server.handle(request(), CLIENT, 0.0))[4])
    _, result, lifetime, _, _ = answer(pcp_server.handle(request(nonce=b"x" * 12), CLIENT, 1.0))
    assert (result, lifetime) == (Result.NOT_AUTHORIZED, 1800)
    _, result, *_ = answer(pcp_server.handle(request(lifetime=0, nonce=b"x" * 12), CLIENT, 1.0))
    assert result == Result.NOT_AUTHORIZED
    assert pcp_server.engine.mappings(2.0), "the mapping survived"
    renewed = answer(pcp_server.handle(request(lifetime=900), CLIENT, 3.0))
    assert renewed[1] == Result.SUCCESS and assigned(renewed[4]) == first


def test_another_protocols_mapping_is_not_pcps_to_change():
    pcp_server = server()
    pcp_server.engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "natpmp", 0.0)
    _, result, *_ = answer(pcp_server.handle(request(), CLIENT, 1.0))
    assert result == Result.NOT_AUTHORIZED


def test_the_header_must_name_the_sender():
    _, result, *_ = answer(server().handle(request(client=B), CLIENT, 0.0))
    assert result == Result.ADDRESS_MISMATCH


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (request(version=1), Result.UNSUPP_VERSION),
        (request(version=0), Result.UNSUPP_VERSION),
        (request()[:-4], Result.MALFORMED_REQUEST),
        (request() + b"\0\0", Result.MALFORMED_REQUEST),
        (request() + bytes(1100), Result.MALFORMED_REQUEST),
        (request(opcode=3), Result.UNSUPP_OPCODE),
        (request(protocol=1), Result.UNSUPP_PROTOCOL),
        (request(internal_port=0), Result.UNSUPP_PROTOCOL),
        (request(options=b"\x01\x00\x00\x10" + bytes(16)), Result.NOT_AUTHORIZED),  # THIRD_PARTY
        (request(options=b"\x03\x00\x00\x14" + bytes(20)), Result.UNSUPP_OPTION),  # FILTER
        (request(options=b"\x05\x00\x00\x00"), Result.UNSUPP_OPTION),
        (request(options=b"\x02\x00\x00\x08" + bytes(8)), Result.MALFORMED_OPTION),
        (request(options=b"\x80\x00\x00\x08" + bytes(4)), Result.MALFORMED_OPTION),
        (request(Opcode.PEER, remote=None) + bytes(20), Result.MALFORMED_REQUEST),
        (request(Opcode.PEER, 0, remote=ep(f"{S1}:1")), Result.MALFORMED_REQUEST),
    ],
)
def test_bad_requests_get_their_error_code(data, expected):
    opcode, result, lifetime, _, body = answer(server().handle(data, CLIENT, 0.0))
    assert result == expected
    assert opcode & 0x80
    assert lifetime in (30, 1800)
    assert body == data[24:1100] + bytes(-len(data[24:1100]) % 4), "the request is copied back"


def test_optional_options_are_ignored_and_prefer_failure_is_honoured():
    pcp_server = server()
    ignored = request(options=b"\x80\x00\x00\x04" + bytes(4), external_port=6000)
    assert answer(pcp_server.handle(ignored, CLIENT, 0.0))[1] == Result.SUCCESS
    taken = request(client=B, external_port=6000, options=b"\x02\x00\x00\x00", internal_port=1)
    _, result, lifetime, _, _ = answer(pcp_server.handle(taken, Endpoint(B, 1), 0.0))
    assert (result, lifetime) == (Result.CANNOT_PROVIDE_EXTERNAL, 30)
    elsewhere = request(client=B, external=S1, options=b"\x02\x00\x00\x00", internal_port=1)
    assert answer(pcp_server.handle(elsewhere, Endpoint(B, 1), 0.0))[1] == (
        Result.CANNOT_PROVIDE_EXTERNAL
    )


def test_no_ports_and_quota_are_short_term_errors():
    full = PcpServer(nat(port_range=(6000, 6000)), 0.0)
    assert answer(full.handle(request(), CLIENT, 0.0))[1] == Result.SUCCESS
    other = request(client=B)
    assert answer(full.handle(other, Endpoint(B, 1), 0.0))[1:3] == (Result.NO_RESOURCES, 30)
    quota = PcpServer(nat(max_mappings_per_host=1), 0.0)
    quota.handle(request(), CLIENT, 0.0)
    assert answer(quota.handle(request(internal_port=2), CLIENT, 0.0))[1] == Result.USER_EX_QUOTA


def test_peer_maps_towards_one_remote_and_checks_its_nonce():
    pcp_server = server()
    data = request(Opcode.PEER, 300, remote=ep(f"{S1}:3478"))
    opcode, result, lifetime, _, body = answer(pcp_server.handle(data, CLIENT, 0.0))
    assert (opcode, result, lifetime) == (0x82, Result.SUCCESS, 300)
    assert len(body) == 56 and body[36:] == data[24 + 36 :]
    external = assigned(body)
    assert pcp_server.engine.inbound(udp(f"{S1}:3478", str(external)), 250.0).action is (
        Action.FORWARD_IN
    )
    again = request(Opcode.PEER, 300, remote=ep(f"{S1}:3478"), nonce=b"y" * 12)
    assert answer(pcp_server.handle(again, CLIENT, 1.0))[1] == Result.NOT_AUTHORIZED


def test_announce_and_the_unsolicited_announce():
    pcp_server = server()
    opcode, result, lifetime, epoch, body = answer(
        pcp_server.handle(request(Opcode.ANNOUNCE, 0), CLIENT, 105.0)
    )
    assert (opcode, result, lifetime, epoch, body) == (0x80, Result.SUCCESS, 0, 5, b"")
    assert answer(pcp.announce(0)) == (0x80, Result.SUCCESS, 0, 0, b"")


@pytest.mark.parametrize("data", [b"", b"\x02", request()[:1], b"\x02\x81" + bytes(58)])
def test_what_the_rfc_says_to_ignore_gets_no_answer(data):
    assert server().handle(data, CLIENT, 0.0) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1200))
def test_any_bytes_get_a_well_formed_answer_or_none(data):
    reply = server().handle(data, CLIENT, 0.0)
    if reply is not None:
        opcode, result, *_ = answer(reply)
        assert opcode & 0x80 and result in set(Result)


@settings(max_examples=300, deadline=None)
@given(
    opcode=st.sampled_from(list(Opcode)),
    lifetime=st.integers(0, 2**32 - 1),
    protocol=st.sampled_from((0, 6, 17, 132)),
    internal_port=st.integers(0, 65535),
    external_port=st.integers(0, 65535),
    options=st.binary(max_size=40).map(lambda b: b + bytes(-len(b) % 4)),
)
def test_any_well_framed_request_is_answered_and_success_means_a_mapping(
    opcode, lifetime, protocol, internal_port, external_port, options
):
    pcp_server = server()
    data = request(
        opcode,
        lifetime,
        protocol=protocol,
        internal_port=internal_port,
        external_port=external_port,
        remote=ep(f"{S1}:1") if opcode == Opcode.PEER else None,
        options=options,
    )
    _, result, granted, _, body = answer(pcp_server.handle(data, CLIENT, 0.0))
    if result != Result.SUCCESS or opcode == Opcode.ANNOUNCE:
        assert opcode == Opcode.ANNOUNCE or not pcp_server.engine.mappings(0.0)
        return
    assert granted <= pcp.MAX_LIFETIME
    if lifetime:
        [view] = pcp_server.engine.mappings(0.0)
        assert view.external == assigned(body)
        assert view.internal == Endpoint(A, internal_port)
