"""ICMP: echo identifiers mapped like ports, and errors about translated flows both ways."""

from __future__ import annotations

from dataclasses import replace

from scapy.layers.inet import ICMP, IP, IPerror, TCPerror, UDPerror

from natlab.core.engine import Action, DropReason, StaticMap
from natlab.core.packets import Endpoint, parse

from .helpers import (
    ROUTER,
    WAN,
    assert_checksums_valid,
    echo,
    ep,
    icmp_error,
    nat,
    tcp,
    udp,
)

A = "10.0.0.2"
S1 = "198.51.100.1"
S2 = "198.51.100.2"


def test_echo_identifier_is_mapped_like_a_port() -> None:
    engine = nat("port-restricted")
    engine.outbound(echo(A, S1, 77), 0.0)  # takes identifier 77 on the WAN
    request = echo("10.0.0.3", S1, 77)
    assert engine.outbound(request, 0.1).action is Action.FORWARD_OUT
    assert request.src == (WAN, 78)
    assert_checksums_valid(request)
    reply = echo(S1, WAN, 78, reply=True)
    assert engine.inbound(reply, 0.2).action is Action.FORWARD_IN
    assert reply.dst == ("10.0.0.3", 77)
    assert IP(bytes(reply.data))[ICMP].id == 77
    assert_checksums_valid(reply)


def test_identifiers_ignore_the_port_range_and_parity() -> None:
    engine = nat("full-cone", port_range=(40000, 40001), parity=True)
    request = echo(A, S1, 77)
    engine.outbound(request, 0.0)
    assert request.src == (WAN, 77)
    second = echo("10.0.0.3", S1, 77)
    engine.outbound(second, 0.0)
    assert second.src == (WAN, 78)


def test_echo_reply_from_another_host_is_filtered() -> None:
    engine = nat("restricted")
    engine.outbound(echo(A, S1, 77), 0.0)
    assert engine.inbound(echo(S2, WAN, 77, reply=True), 0.1).reason is (
        DropReason.FILTERED_ADDRESS
    )


def test_inbound_echo_requests_and_outbound_replies_are_not_translated() -> None:
    engine = nat("full-cone")
    engine.outbound(echo(A, S1, 77), 0.0)
    assert engine.inbound(echo(S1, WAN, 77), 0.1).reason is DropReason.UNSUPPORTED
    assert engine.outbound(echo(A, S1, 77, reply=True), 0.2).reason is DropReason.UNSUPPORTED


def test_ping_to_the_routers_external_address_from_the_lan_is_not_hairpinned() -> None:
    engine = nat("full-cone")
    assert engine.outbound(echo(A, WAN, 77), 0.0).reason is DropReason.UNSUPPORTED
    assert engine.mappings(0.0) == []


def sent_out(engine, packet, now: float = 0.0):
    assert engine.outbound(packet, now).action is Action.FORWARD_OUT
    return packet


def test_inbound_error_goes_back_to_the_internal_host() -> None:
    engine = nat("port-restricted")
    translated = sent_out(engine, udp(f"{A}:5000", f"{S1}:3478", b"hello"))
    error = icmp_error(ROUTER, WAN, translated, icmp_type=11)
    assert engine.inbound(error, 0.1).action is Action.FORWARD_IN
    assert error.dst == (A, 0)
    assert error.embedded.src == (A, 5000)
    assert error.embedded.dst == (S1, 3478)
    assert_checksums_valid(error)
    quoted = IP(bytes(error.data))[IPerror]
    assert (quoted.src, quoted[UDPerror].sport) == (A, 5000)
    assert engine.counters["translated_in"] == 1


def test_inbound_error_about_tcp_and_echo() -> None:
    engine = nat("symmetric")
    syn = sent_out(engine, tcp(f"{A}:5000", f"{S1}:443", "S"))
    error = icmp_error(S1, WAN, syn)
    assert engine.inbound(error, 0.1).action is Action.FORWARD_IN
    assert IP(bytes(error.data))[TCPerror].sport == 5000
    assert_checksums_valid(error)
    ping = sent_out(engine, echo(A, S2, 99))
    error = icmp_error(ROUTER, WAN, ping, icmp_type=11)
    assert engine.inbound(error, 0.2).action is Action.FORWARD_IN
    assert error.embedded.src == (A, 99)
    assert_checksums_valid(error)


def test_inbound_error_quoting_only_eight_bytes_of_tcp() -> None:
    engine = nat("full-cone")
    syn = sent_out(engine, tcp(f"{A}:5000", f"{S1}:443", "S"))
    short = bytes(syn.data[:28])  # IP header + ports + sequence number, no TCP checksum
    error = icmp_error(ROUTER, WAN, short, icmp_type=11)
    assert engine.inbound(error, 0.1).action is Action.FORWARD_IN
    assert bytes(error.data[-8:-6]) == (5000).to_bytes(2, "big")
    outer = IP(bytes(error.data))
    fresh = IP(bytes(error.data))
    del fresh.chksum, fresh[ICMP].chksum, fresh[IPerror].chksum
    fresh = IP(bytes(fresh))
    assert (outer.chksum, outer[ICMP].chksum, outer[IPerror].chksum) == (
        fresh.chksum,
        fresh[ICMP].chksum,
        fresh[IPerror].chksum,
    )


def test_inbound_error_without_a_mapping_or_to_a_stranger() -> None:
    engine = nat("port-restricted")
    never = parse(udp_bytes_to(f"{WAN}:6000", f"{S1}:3478"))
    assert engine.inbound(icmp_error(ROUTER, WAN, never), 0.0).reason is DropReason.NO_MAPPING
    sent_out(engine, udp(f"{A}:5000", f"{S1}:3478"))
    spoofed = parse(udp_bytes_to(f"{WAN}:5000", f"{S2}:3478"))  # A never sent to S2
    verdict = engine.inbound(icmp_error(ROUTER, WAN, spoofed), 0.1)
    assert verdict.reason is DropReason.FILTERED_ADDRESS


def udp_bytes_to(src: str, dst: str) -> bytes:
    """A UDP packet as it would have left the NAT, for errors about flows it never carried."""
    return bytes(udp(src, dst).data)


def test_inbound_error_after_expiry_says_expired() -> None:
    engine = nat("full-cone", udp_timeout=30)
    translated = sent_out(engine, udp(f"{A}:5000", f"{S1}:3478"))
    verdict = engine.inbound(icmp_error(ROUTER, WAN, translated), 31.0)
    assert verdict.reason is DropReason.EXPIRED


def test_outbound_error_shows_the_external_side() -> None:
    engine = nat("full-cone")
    sent_out(engine, udp(f"{A}:5000", f"{S1}:3478"))
    inbound = udp(f"{S2}:9999", f"{WAN}:5000")
    assert engine.inbound(inbound, 0.1).action is Action.FORWARD_IN
    error = icmp_error(A, f"{S2}", inbound)  # A's port is closed
    assert engine.outbound(error, 0.2).action is Action.FORWARD_OUT
    assert error.src.address == WAN
    assert error.embedded.src == (S2, 9999)
    assert error.embedded.dst == (WAN, 5000)
    assert_checksums_valid(error)
    assert IP(bytes(error.data))[UDPerror].dport == 5000


def test_outbound_error_about_a_static_map_flow() -> None:
    engine = nat("symmetric", static_maps=(StaticMap("udp", (5060, 5060), A, (5070, 5070)),))
    inbound = udp(f"{S1}:5060", f"{WAN}:5060")
    engine.inbound(inbound, 0.0)
    error = icmp_error(A, S1, inbound)
    assert engine.outbound(error, 0.1).action is Action.FORWARD_OUT
    assert error.embedded.dst == (WAN, 5060)
    assert_checksums_valid(error)


def test_outbound_error_without_a_flow_is_dropped() -> None:
    engine = nat("full-cone")
    stray = udp(f"{S1}:9999", f"{A}:5000")
    assert engine.outbound(icmp_error(A, S1, stray), 0.0).reason is DropReason.NO_MAPPING


def test_error_about_a_hairpinned_flow_goes_back_through_the_hairpin() -> None:
    engine = nat("full-cone")
    a_external = str(sent_out(engine, udp(f"{A}:5000", f"{S1}:3478")).src)
    b_sent = udp("10.0.0.3:6000", a_external)
    assert engine.outbound(b_sent, 0.1).action is Action.HAIRPIN
    error = icmp_error(A, b_sent.src.address, b_sent)  # as A received it
    assert engine.outbound(error, 0.2).action is Action.HAIRPIN
    assert error.dst.address == "10.0.0.3"
    assert error.src.address == WAN
    assert error.embedded.src == ep("10.0.0.3:6000")
    assert error.embedded.dst == ep(a_external)
    assert_checksums_valid(error)


def test_error_quoting_an_unsupported_protocol() -> None:
    engine = nat("full-cone")
    gre = bytes(IP(src=WAN, dst=S1, proto=47) / (b"\x00" * 8))
    assert engine.inbound(icmp_error(ROUTER, WAN, gre), 0.0).reason is DropReason.UNSUPPORTED


def test_endpoint_of_an_icmp_error_has_no_port() -> None:
    error = icmp_error(ROUTER, WAN, udp_bytes_to(f"{WAN}:1", f"{S1}:2"))
    assert error.src == Endpoint(ROUTER, 0) and error.dst == Endpoint(WAN, 0)


def test_inbound_error_about_a_static_map_flow() -> None:
    engine = nat("symmetric", static_maps=(StaticMap("udp", (5060, 5060), A, (5070, 5070)),))
    reply = udp(f"{A}:5070", f"{S1}:5060")
    assert engine.outbound(reply, 0.0).action is Action.FORWARD_OUT
    error = icmp_error(S1, WAN, reply)
    assert engine.inbound(error, 0.1).action is Action.FORWARD_IN
    assert error.embedded.src == (A, 5070)
    assert_checksums_valid(error)


def test_outbound_error_about_an_expired_flow() -> None:
    engine = nat("full-cone", udp_timeout=30)
    sent_out(engine, udp(f"{A}:5000", f"{S1}:3478"))
    inbound = udp(f"{S1}:3478", f"{WAN}:5000")
    engine.inbound(inbound, 1.0)
    verdict = engine.outbound(icmp_error(A, S1, inbound), 31.0)
    assert verdict.reason is DropReason.NO_MAPPING
    assert engine.mappings(31.0) == []


def test_outbound_error_quoting_an_unsupported_protocol() -> None:
    engine = nat("full-cone")
    gre = bytes(IP(src=S1, dst=A, proto=47) / (b"\x00" * 8))
    assert engine.outbound(icmp_error(A, S1, gre), 0.0).reason is DropReason.UNSUPPORTED


def test_error_about_a_hairpinned_flow_with_hairpin_off_or_filtered() -> None:
    engine = nat("port-restricted")
    a_external = str(sent_out(engine, udp(f"{A}:5000", f"{S1}:3478")).src)
    b_external = str(sent_out(engine, udp("10.0.0.3:6000", f"{S1}:3478")).src)
    # as if B's packet had reached A: A's error goes back to B's external endpoint,
    # but B never sent to A's external address
    as_received = udp(b_external, f"{A}:5000")
    verdict = engine.outbound(icmp_error(A, WAN, as_received), 0.1)
    assert verdict.reason is DropReason.FILTERED_ADDRESS
    engine.reconfigure(replace(engine.config.behaviour, hairpin=False))
    sent_out(engine, udp(f"{A}:5000", f"{S1}:3478"))
    verdict = engine.outbound(icmp_error(A, WAN, as_received), 0.2)
    assert verdict.reason is DropReason.HAIRPIN_OFF
    assert a_external != b_external
