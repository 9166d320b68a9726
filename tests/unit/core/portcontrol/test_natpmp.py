"""NAT-PMP (RFC 6886) server: address, map, renew, delete, and its result codes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.engine import Action
from natlab.core.packets import Endpoint, Proto
from natlab.core.portcontrol.natpmp import MAX_LIFETIME, NatPmpServer, Result

from ..helpers import S1, WAN, A, B, ep, nat, udp

CLIENT = Endpoint(A, 40000)


def mapping(opcode: int = 1, internal: int = 5000, external: int = 0, lifetime: int = 3600):
    return struct.pack("!BBHHHI", 0, opcode, 0, internal, external, lifetime)


def read_map(data: bytes) -> tuple[int, int, int, int, int, int]:
    """(opcode, result, epoch, internal, external, lifetime) of a mapping answer."""
    version, opcode, result, epoch, internal, external, lifetime = struct.unpack("!BBHIHHI", data)
    assert version == 0
    return opcode, result, epoch, internal, external, lifetime


def server(engine=None) -> NatPmpServer:
    return NatPmpServer(engine or nat(), started=50.0)


def test_the_external_address():
    reply = server().handle(b"\x00\x00", CLIENT, 60.0)
    assert reply == struct.pack("!BBHI4s", 0, 128, 0, 10, bytes([203, 0, 113, 1]))


def test_a_mapping_is_made_reached_renewed_and_deleted():
    natpmp = server()
    reply = read_map(natpmp.handle(mapping(1, 5000, 6000, 60), CLIENT, 50.0))
    assert reply == (129, Result.SUCCESS, 0, 5000, 6000, 60)
    packet = udp(f"{S1}:1", f"{WAN}:6000")
    assert natpmp.engine.inbound(packet, 51.0).action is Action.FORWARD_IN
    [view] = natpmp.engine.mappings(51.0)
    assert (view.origin, view.lifetime, view.internal) == ("natpmp", 60.0, ep(f"{A}:5000"))
    renewed = read_map(natpmp.handle(mapping(1, 5000, 7000, 120), CLIENT, 100.0))
    assert renewed[4:] == (6000, 120), "a renewal keeps the port"
    deleted = read_map(natpmp.handle(mapping(1, 5000, 0, 0), CLIENT, 101.0))
    assert deleted[1:] == (Result.SUCCESS, 51, 5000, 0, 0)
    assert natpmp.engine.mappings(101.0) == []


def test_tcp_and_lifetimes_capped():
    natpmp = server()
    reply = read_map(natpmp.handle(mapping(2, 80, 8080, 2**32 - 1), CLIENT, 50.0))
    assert reply[0] == 130 and reply[5] == MAX_LIFETIME
    assert natpmp.engine.explicit_mapping(Proto.TCP, ep(f"{A}:80"), 50.0) is not None


def test_a_mapping_expires_with_its_lifetime():
    natpmp = server()
    natpmp.handle(mapping(lifetime=30), CLIENT, 0.0)
    assert natpmp.engine.expire(29.0) == 0
    assert natpmp.engine.expire(30.0) == 1


def test_internal_port_zero_and_lifetime_zero_delete_all_of_the_clients():
    natpmp = server()
    for port in (1, 2, 3):
        natpmp.handle(mapping(1, port), CLIENT, 0.0)
    natpmp.handle(mapping(2, 1), CLIENT, 0.0)
    natpmp.handle(mapping(1, 1), Endpoint(B, 1), 0.0)
    natpmp.handle(mapping(1, 0, 0, 0), CLIENT, 1.0)
    left = {(v.proto, v.internal) for v in natpmp.engine.mappings(1.0)}
    assert left == {(Proto.TCP, ep(f"{A}:1")), (Proto.UDP, ep(f"{B}:1"))}


def test_another_protocols_mapping_is_not_authorized():
    engine = nat()
    engine.map_port(Proto.UDP, ep(f"{A}:5000"), 60.0, "upnp", 0.0)
    natpmp = server(engine)
    assert read_map(natpmp.handle(mapping(), CLIENT, 1.0))[1] == Result.NOT_AUTHORIZED
    assert read_map(natpmp.handle(mapping(lifetime=0), CLIENT, 1.0))[1] == Result.NOT_AUTHORIZED
    assert engine.mappings(1.0)


@pytest.mark.parametrize(
    ("data", "result", "opcode"),
    [
        (b"\x02\x00", Result.UNSUPPORTED_VERSION, 128),
        (b"\x01\x01" + bytes(10), Result.UNSUPPORTED_VERSION, 129),
        (b"\x00\x03" + bytes(10), Result.UNSUPPORTED_OPCODE, 131),
    ],
)
def test_bad_requests_get_their_result_code(data, result, opcode):
    reply = server().handle(data, CLIENT, 60.0)
    assert struct.unpack("!BBHI", reply) == (0, opcode, result, 10)


def test_internal_port_zero_maps_nothing():
    reply = read_map(server().handle(mapping(1, 0, 0, 60), CLIENT, 60.0))
    assert reply == (129, Result.NOT_AUTHORIZED, 10, 0, 0, 0)


def test_no_port_left_is_out_of_resources():
    natpmp = server(nat(port_range=(6000, 6000)))
    natpmp.handle(mapping(), CLIENT, 0.0)
    reply = natpmp.handle(mapping(), Endpoint(B, 1), 0.0)
    assert read_map(reply)[1] == Result.OUT_OF_RESOURCES


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x80", b"\x00\x01" + bytes(9)])
def test_what_has_no_answer_gets_none(data):
    assert server().handle(data, CLIENT, 0.0) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_get_an_answer_of_the_right_form_or_none(data):
    reply = server().handle(data, CLIENT, 0.0)
    if reply is not None:
        assert reply[0] == 0 and reply[1] & 0x80 and len(reply) in (8, 12, 16)


@settings(max_examples=300, deadline=None)
@given(
    opcode=st.sampled_from((1, 2)),
    internal=st.integers(0, 65535),
    external=st.integers(0, 65535),
    lifetime=st.integers(0, 2**32 - 1),
)
def test_success_always_means_the_mapping_the_answer_names(opcode, internal, external, lifetime):
    natpmp = server()
    _, result, _, port, mapped, granted = (
        read_map(natpmp.handle(mapping(opcode, internal, external, lifetime), CLIENT, 0.0))
        if internal or not lifetime
        else (0, -1, 0, 0, 0, 0)
    )
    if result != Result.SUCCESS:
        return
    views = natpmp.engine.mappings(0.0)
    if not lifetime:
        assert views == [] and (mapped, granted) == (0, 0)
        return
    [view] = views
    assert (view.internal.port, view.external.port) == (port, mapped)
    assert granted == min(lifetime, MAX_LIFETIME)
