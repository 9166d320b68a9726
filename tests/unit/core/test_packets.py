"""natlab's packet rewriting against scapy: every checksum, on random packets.

Each example builds a packet with scapy, rewrites an endpoint with
natlab.core.packets (incremental RFC 1624 updates), then lets scapy compute
every checksum from scratch and compares. For ICMP errors that quote only
the start of a datagram, scapy cannot recompute the quoted transport
checksum from what is quoted; it is compared instead with the checksum
scapy computes for the whole datagram with the same rewrite.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.utils import checksum as scapy_checksum

from natlab.core.checksum import incremental_update
from natlab.core.packets import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    Endpoint,
    PacketError,
    Proto,
    _parse_ip,
    _parse_plain,
    parse,
)

from .helpers import checksums

addresses = st.ip_addresses(v=4).map(str)
ports = st.integers(0, 65535)
endpoints = st.builds(Endpoint, addresses, ports)
payloads = st.binary(max_size=40)
options = st.sampled_from([[], [IPOption_NOP()] * 4, [IPOption_NOP()] * 8])
tcp_flags = st.sampled_from(["S", "SA", "A", "PA", "F", "R", "FA"])


@st.composite
def transport(draw, src: Endpoint, dst: Endpoint) -> IP:
    """A UDP datagram, TCP segment or ICMP echo between two endpoints, built by scapy."""
    ip = IP(src=src.address, dst=dst.address, options=draw(options))
    kind = draw(st.sampled_from(["udp", "tcp", "echo-request", "echo-reply"]))
    if kind == "udp":
        return ip / UDP(sport=src.port, dport=dst.port) / draw(payloads)
    if kind == "tcp":
        segment = TCP(sport=src.port, dport=dst.port, flags=draw(tcp_flags), seq=draw(ports))
        return ip / segment / draw(payloads)
    if kind == "echo-request":
        return ip / ICMP(type=ICMP_ECHO_REQUEST, id=src.port, seq=draw(ports)) / draw(payloads)
    return ip / ICMP(type=ICMP_ECHO_REPLY, id=dst.port, seq=draw(ports)) / draw(payloads)


def expected_port(packet: IP, side: str, port: int) -> int:
    """The port a rewrite leaves on `side`; sides without a port (ICMP peers) keep 0."""
    if ICMP in packet and packet[ICMP].type == ICMP_ECHO_REQUEST:
        return port if side == "src" else 0
    if ICMP in packet:
        return port if side == "dst" else 0
    return port


@settings(max_examples=400)
@given(
    src=endpoints,
    dst=endpoints,
    new=endpoints,
    side=st.sampled_from(["src", "dst"]),
    data=st.data(),
)
def test_rewrite_matches_scapys_checksums(src, dst, new, side, data) -> None:
    original = data.draw(transport(src, dst))
    packet = parse(bytes(original))
    if side == "src":
        packet.set_source(new)
    else:
        packet.set_destination(new)
    ours, theirs = checksums(packet.data)
    assert ours == theirs
    rewritten = getattr(packet, side)
    assert rewritten == Endpoint(new.address, expected_port(original, side, new.port))
    assert parse(packet.data).__getattribute__(side) == rewritten


@settings(max_examples=400)
@given(
    outer=st.builds(lambda a, b: (a, b), addresses, addresses),
    src=endpoints,
    dst=endpoints,
    new=endpoints,
    icmp_type=st.sampled_from([3, 11, 12]),
    quote=st.sampled_from(["8", "18", "all"]),
    direction=st.sampled_from(["inbound", "outbound"]),
    data=st.data(),
)
def test_icmp_error_rewrite_matches_scapy(outer, src, dst, new, icmp_type, quote, direction, data):
    """The engine's two rewrites of an error: outer dst + quoted src, or outer src + quoted dst."""
    inner = data.draw(transport(src, dst))
    inner_bytes = bytes(inner)
    header = IP(inner_bytes).ihl * 4
    quoted = inner_bytes if quote == "all" else inner_bytes[: header + int(quote)]
    error = IP(src=outer[0], dst=outer[1]) / ICMP(type=icmp_type, code=0) / quoted
    packet = parse(bytes(error))
    assert packet.embedded is not None
    if direction == "inbound":
        packet.embedded.set_source(new)
        packet.set_destination(Endpoint(new.address, 0))
    else:
        packet.embedded.set_destination(new)
        packet.set_source(Endpoint(new.address, 0))
    # outer IP, ICMP and quoted IP checksums: scapy recomputes them from what is there
    ours, theirs = checksums(packet.data, outermost=3)
    assert ours == theirs
    # the quoted transport checksum, when quoted: as for the whole rewritten datagram
    side = "src" if direction == "inbound" else "dst"
    moved = rebuilt_with(inner, side, new)
    checksum_at = header + {UDP: 6, TCP: 16, ICMP: 2}[type(inner.payload)]
    if checksum_at + 2 <= len(quoted):
        start = len(packet.data) - len(quoted)
        ours = packet.data[start + checksum_at : start + checksum_at + 2]
        theirs = moved[checksum_at : checksum_at + 2]
        if len(quoted) < len(inner_bytes):
            # The quote hides bytes the checksum covers, so a sum of -0 cannot
            # be told from a message of all zeros: 0x0000 and 0xFFFF are both
            # that one's complement zero.
            assert ours == theirs or {ours, theirs} == {b"\0\0", b"\xff\xff"}
        else:
            assert ours == theirs


@pytest.mark.parametrize("quoted", [False, True])
def test_an_echo_reply_rewritten_to_all_zeros_sums_as_scapy(quoted) -> None:
    """RFC 1624's update gives 0x0000 for an all-zero message; its checksum is 0xFFFF."""
    reply = IP(src="192.0.2.1", dst="198.51.100.2") / ICMP(type=ICMP_ECHO_REPLY, id=7, seq=0)
    if quoted:
        error = IP(src="192.0.2.9", dst="198.51.100.2") / ICMP(type=3, code=3) / bytes(reply)
        packet = parse(bytes(error))
        assert packet.embedded is not None
        packet.embedded.set_destination(Endpoint("198.51.100.2", 0))
    else:
        packet = parse(bytes(reply))
        packet.set_destination(Endpoint("198.51.100.2", 0))
    ours, theirs = checksums(packet.data)
    assert ours == theirs
    assert ours[-1] == 0xFFFF


def rebuilt_with(inner: IP, side: str, new: Endpoint) -> bytes:
    """The whole datagram rebuilt by scapy with one endpoint replaced, checksums fresh."""
    copy = IP(bytes(inner))
    setattr(copy, side, new.address)
    layer = copy.payload
    if isinstance(layer, (UDP, TCP)):
        setattr(layer, "sport" if side == "src" else "dport", new.port)
    elif expected_port(inner, side, 1):
        layer.id = new.port
    del copy.chksum
    del layer.chksum
    return bytes(copy)


@settings(max_examples=300)
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=32), data=st.data())
@example(words=[0xFFFF, 0xFFFF], data=None)  # needs the end-around carry twice
def test_incremental_update_agrees_with_recomputing(words, data) -> None:
    """RFC 1624 eqn. 3 against scapy's RFC 1071 checksum of the whole buffer."""
    buffer = b"".join(w.to_bytes(2, "big") for w in words)
    if data is None:
        start, new = 0, b"\xff\xff\x00\x01"
    else:
        start = 2 * data.draw(st.integers(0, len(words) - 1))
        new = data.draw(
            st.binary(min_size=2, max_size=len(buffer) - start).filter(lambda b: len(b) % 2 == 0)
        )
    changed = buffer[:start] + new + buffer[start + len(new) :]
    assume(any(changed))  # all zeros sums to -0 incrementally, +0 in full: never an IP header
    old = buffer[start : start + len(new)]
    assert incremental_update(scapy_checksum(buffer), old, new) == scapy_checksum(changed)


def test_udp_without_checksum_stays_without() -> None:
    packet = parse(bytes(IP(src="10.0.0.2", dst="198.51.100.1") / UDP(sport=1, dport=2, chksum=0)))
    packet.set_source(Endpoint("203.0.113.1", 40000))
    assert packet.data[26:28] == b"\x00\x00"
    assert checksums(packet.data)[0][0] == checksums(packet.data)[1][0]  # IP header still right


def test_a_udp_checksum_that_computes_to_zero_is_sent_as_ffff() -> None:
    """RFC 768: 0 means "no checksum", so a computed 0 goes out as all ones."""
    base = IP(src="10.0.0.2", dst="198.51.100.1") / UDP(sport=0, dport=2) / b"abc"
    with_zero_port = IP(bytes(base))[UDP].chksum
    folded = ~with_zero_port & 0xFFFF  # one's complement sum of everything but the port
    port = 0xFFFF - folded  # the port that makes the sum all ones: checksum 0
    packet = parse(bytes(base))
    packet.set_source(Endpoint("10.0.0.2", port))
    assert packet.data[26:28] == b"\xff\xff"
    scapy_built = IP(src="10.0.0.2", dst="198.51.100.1") / UDP(sport=port, dport=2) / b"abc"
    assert IP(bytes(scapy_built))[UDP].chksum == 0xFFFF


def test_parse_reads_endpoints_flags_and_the_quoted_packet() -> None:
    inner = IP(src="203.0.113.1", dst="198.51.100.1") / TCP(sport=5000, dport=443, flags="SA")
    packet = parse(
        bytes(IP(src="192.0.2.1", dst="203.0.113.1") / ICMP(type=3, code=1) / bytes(inner))
    )
    assert packet.proto == Proto.ICMP and packet.icmp_type == 3
    assert packet.embedded is not None
    assert (packet.embedded.src, packet.embedded.dst) == (
        Endpoint("203.0.113.1", 5000),
        Endpoint("198.51.100.1", 443),
    )
    assert packet.embedded.tcp_flags == 0x12


def test_ethernet_padding_is_cut_off() -> None:
    raw = bytes(IP(src="10.0.0.2", dst="198.51.100.1") / UDP(sport=1, dport=2))
    assert len(parse(raw + b"\x00" * 18).data) == len(raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x45" + b"\x00" * 10, "shorter than an IPv4 header"),
        (bytes(IP(dst="1.2.3.4") / UDP())[:-2], "exceeds"),
        (b"\x65" + bytes(IP(dst="1.2.3.4") / UDP())[1:], "version 6"),
        (b"\x44" + bytes(IP(dst="1.2.3.4") / UDP())[1:], "header length 16"),
        (bytes(IP(dst="1.2.3.4") / UDP(len=50)), "UDP length 50"),
        (bytes(IP(dst="1.2.3.4", proto=17) / b"1234"), "shorter than a UDP header"),
        (bytes(IP(dst="1.2.3.4") / TCP(dataofs=15)), "data offset"),
        (bytes(IP(dst="1.2.3.4", proto=6) / (b"\x00" * 12)), "shorter than a TCP header"),
        (bytes(IP(dst="1.2.3.4", proto=1) / b"\x08\x00"), "shorter than an ICMP header"),
        (bytes(IP(dst="1.2.3.4") / ICMP(type=3) / b"\x45\x00"), "shorter than an IPv4 header"),
    ],
)
def test_malformed_packets_raise_packet_error(data: bytes, message: str) -> None:
    with pytest.raises(PacketError, match=message):
        parse(data)


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_random_bytes_parse_or_raise_packet_error_only(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        parse(data)


PARSED_FIELDS = ("proto", "src", "dst", "fragment", "tcp_flags", "icmp_type", "embedded")


@settings(max_examples=300)
@given(src=endpoints, dst=endpoints, data=st.data(), mangle=st.binary(max_size=6))
def test_the_fast_path_reads_what_the_general_parser_reads(src, dst, data, mangle) -> None:
    """UDP and TCP without options take a shortcut; it must agree field for field."""
    original = data.draw(transport(src, dst))
    raw = bytearray(bytes(original))
    plain = not original.options and (UDP in original or TCP in original)
    if plain and not mangle:
        assert _parse_plain(bytearray(raw), len(raw)) is not None, "the common case takes it"
    raw[20 : 20 + len(mangle)] = mangle  # sometimes a header the shortcut must refuse
    try:
        general = _parse_ip(bytearray(raw), 0, None)
    except PacketError:
        general = None
    fast = _parse_plain(bytearray(raw), len(raw))
    if fast is None:
        return
    assert general is not None, "the shortcut took a packet the general parser refuses"
    for name in PARSED_FIELDS:
        assert getattr(fast, name) == getattr(general, name), name
    new = Endpoint("203.0.113.7", 4242)
    fast.set_source(new)
    general.set_source(new)
    assert fast.data == general.data
