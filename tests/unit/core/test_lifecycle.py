"""The engine's other duties: flush, reconfigure, the mapping table, events, counters, refusals."""

from __future__ import annotations

import dataclasses
import json

import pytest
from scapy.layers.inet import IP, UDP

from natlab.core import engine as engine_module
from natlab.core.behaviour import PRESETS, behaviour_from
from natlab.core.engine import Action, DropReason, NatConfig, NatEngine, StaticMap
from natlab.core.events import Dropped, Flushed, MappingCreated, Reconfigured
from natlab.core.mapping import TcpState
from natlab.core.packets import Proto, parse

from .helpers import LAN, WAN, ep, nat, tcp, udp

A = "10.0.0.2:5000"
S1 = "198.51.100.1:3478"
S2 = "198.51.100.2:3478"


def test_flush_drops_dynamic_mappings_and_keeps_static_maps() -> None:
    engine = nat("full-cone", static_maps=(StaticMap("tcp", (8000, 8000), "10.0.0.3", (80, 80)),))
    engine.outbound(udp(A, S1), 0.0)
    engine.outbound(udp("10.0.0.3:5000", S1), 0.0)
    engine.drain_events()
    assert engine.flush(now=3.0) == 2
    assert engine.mappings(3.0) == []
    assert engine.drain_events() == [Flushed(3.0, 2)]
    assert engine.counters["mappings_flushed"] == 2
    assert engine.inbound(udp(S1, f"{WAN}:5000"), 4.0).reason is DropReason.NO_MAPPING
    assert engine.inbound(tcp(S1, f"{WAN}:8000"), 4.0).action is Action.FORWARD_IN


def test_flush_without_a_time_uses_the_latest_time_seen() -> None:
    engine = nat("full-cone")
    engine.outbound(udp(A, S1), 42.0)
    engine.drain_events()
    engine.flush()
    assert engine.drain_events() == [Flushed(42.0, 1)]


def test_flushed_ports_are_free_again() -> None:
    engine = nat("full-cone", port_range=(40000, 40000))
    engine.outbound(udp(A, S1), 0.0)
    engine.flush()
    packet = udp("10.0.0.3:1", S1)
    assert engine.outbound(packet, 1.0).action is Action.FORWARD_OUT
    assert packet.src == (WAN, 40000)


def test_reconfigure_flips_a_live_router_from_symmetric_to_full_cone() -> None:
    engine = nat("symmetric")
    engine.outbound(udp(A, S1), 0.0)
    engine.drain_events()
    assert engine.reconfigure(PRESETS["full-cone"], now=5.0) == 1
    assert engine.drain_events() == [Reconfigured(5.0, "full-cone", 1)]
    assert engine.config.behaviour == PRESETS["full-cone"]
    assert engine.mappings(5.0) == []
    engine.outbound(udp(A, S1), 6.0)
    assert engine.inbound(udp(S2, f"{WAN}:5000"), 7.0).action is Action.FORWARD_IN


def test_reconfigure_names_the_changes_from_the_preset() -> None:
    engine = nat("full-cone")
    engine.reconfigure(behaviour_from("symmetric", udp_timeout=30, hairpin=False))
    [event] = engine.drain_events()
    assert event.behaviour == "symmetric with hairpin=off, udp_timeout=30.0"
    engine.reconfigure(behaviour_from(None, filtering="endpoint-independent", parity=True))
    assert engine.drain_events()[0].behaviour == "full-cone with parity=True"
    engine.reconfigure(behaviour_from("symmetric", port_range=(40000, 40999)))
    assert engine.drain_events()[0].behaviour == "symmetric with port_range=40000-40999"


def test_reconfigure_to_none_stops_translating() -> None:
    engine = nat("full-cone")
    engine.reconfigure(PRESETS["none"])
    packet = udp(A, S1)
    assert engine.outbound(packet, 0.0).action is Action.PASS
    assert str(packet.src) == A


def test_mapping_table_view() -> None:
    engine = nat("symmetric", udp_timeout=30)
    engine.outbound(udp(A, S1), 1.0)
    engine.outbound(tcp(A, S2, "S"), 2.0)
    engine.inbound(udp(S1, f"{WAN}:5000"), 3.0)
    udp_view, tcp_view = engine.mappings(3.0)
    assert (udp_view.proto, udp_view.internal, udp_view.external) == (
        Proto.UDP,
        ep(A),
        ep(f"{WAN}:5000"),
    )
    assert udp_view.remote == S1
    assert udp_view.permissions == (S1,)
    assert (udp_view.created, udp_view.last_outbound, udp_view.last_inbound) == (1.0, 1.0, 3.0)
    assert udp_view.expires_at == 31.0
    assert udp_view.tcp_state is None
    assert tcp_view.tcp_state is TcpState.OPENING
    assert udp_view.as_json(11.0) == {
        "proto": "udp",
        "internal": A,
        "external": f"{WAN}:5000",
        "remote": S1,
        "permissions": [S1],
        "created": 1.0,
        "age": 10.0,
        "last_outbound": 1.0,
        "last_inbound": 3.0,
        "expires_at": 31.0,
        "expires_in": 20.0,
        "tcp_state": None,
        "origin": "traffic",
        "lifetime": None,
        "detail": f"udp {A} -> {WAN}:5000 for {S1}, expires at 31",
    }
    assert tcp_view.as_json(3.0)["tcp_state"] == "opening"


@pytest.mark.parametrize(
    ("preset", "remote", "permissions"),
    [
        ("full-cone", None, ("any",)),
        ("restricted", None, ("198.51.100.1", "198.51.100.2")),
        ("port-restricted", None, (S1, S2)),
    ],
)
def test_mapping_view_names_remote_and_permissions(preset, remote, permissions) -> None:
    engine = nat(preset)
    engine.outbound(udp(A, S1), 0.0)
    engine.outbound(udp(A, S2), 0.1)
    [view] = engine.mappings(0.1)
    assert (view.remote, view.permissions) == (remote, permissions)


def test_address_dependent_mapping_view_names_the_remote_address() -> None:
    engine = nat(mapping="address-dependent")
    engine.outbound(udp(A, S1), 0.0)
    assert engine.mappings(0.0)[0].remote == "198.51.100.1"


def test_events_are_flat_json_with_a_detail() -> None:
    engine = nat("port-restricted", udp_timeout=11.5)
    engine.outbound(udp("10.0.0.3:5000", "198.51.100.9:5000"), 0.0)
    engine.inbound(udp("198.51.100.9:5000", f"{WAN}:5000"), 12.0)
    created, expired, dropped = (e.as_json() for e in engine.drain_events())
    assert created == {
        "at": 0.0,
        "kind": "mapping-created",
        "proto": "udp",
        "internal": "10.0.0.3:5000",
        "external": f"{WAN}:5000",
        "remote": "198.51.100.9:5000",
        "detail": f"udp mapping 10.0.0.3:5000 -> {WAN}:5000 (first sent to 198.51.100.9:5000)",
    }
    assert expired["kind"] == "mapping-expired" and expired["expired_at"] == 11.5
    assert dropped == {
        "at": 12.0,
        "kind": "drop",
        "reason": "expired",
        "direction": "inbound",
        "proto": "udp",
        "src": "198.51.100.9:5000",
        "dst": f"{WAN}:5000",
        "detail": f"mapping 10.0.0.3:5000 -> {WAN}:5000 expired at 11.5",
    }


def test_events_are_frozen_and_compare_by_value() -> None:
    event = MappingCreated(1.0, Proto.UDP, ep(A), ep(f"{WAN}:5000"), ep(S1))
    assert event == MappingCreated(1.0, Proto.UDP, ep(A), ep(f"{WAN}:5000"), ep(S1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.at = 2.0  # type: ignore[misc]


def test_drain_returns_each_event_once() -> None:
    engine = nat("full-cone")
    engine.outbound(udp(A, S1), 0.0)
    assert len(engine.drain_events()) == 1
    assert engine.drain_events() == []


def test_plain_translations_only_count() -> None:
    engine = nat("full-cone")
    engine.outbound(udp(A, S1), 0.0)
    engine.drain_events()
    for i in range(5):
        engine.outbound(udp(A, S1), 0.1 * i)
        engine.inbound(udp(S1, f"{WAN}:5000"), 0.1 * i)
    assert engine.drain_events() == []
    assert (engine.counters["translated_out"], engine.counters["translated_in"]) == (6, 5)


def test_event_backlog_is_bounded_and_counts_what_fell_off(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "EVENT_BACKLOG", 3)
    engine = NatEngine(NatConfig(PRESETS["full-cone"], (WAN,), (LAN,)))
    for port in range(5):
        engine.inbound(udp(S1, f"{WAN}:{6000 + port}"), float(port))
    events = engine.drain_events()
    assert [e.at for e in events] == [2.0, 3.0, 4.0]
    assert engine.counters["events_discarded"] == 2


def test_a_spoofed_lan_source_is_dropped() -> None:
    engine = nat("full-cone")
    packet = udp("192.168.1.5:5000", S1)
    assert engine.outbound(packet, 0.0).reason is DropReason.NOT_INTERNAL
    [event] = engine.drain_events()
    assert event.detail == "source 192.168.1.5 is not in the internal networks 10.0.0.0/24"
    assert engine.counters["dropped_not_internal"] == 1
    assert engine.mappings(0.0) == []


def test_fragments_are_dropped_both_ways() -> None:
    engine = nat("full-cone")
    first = parse(bytes(IP(src="10.0.0.2", dst="198.51.100.1", flags="MF") / UDP() / b"x"))
    later = parse(bytes(IP(src="198.51.100.1", dst=WAN, frag=10) / b"datadata"))
    assert engine.outbound(first, 0.0).reason is DropReason.FRAGMENT
    assert engine.inbound(later, 0.0).reason is DropReason.FRAGMENT
    assert engine.counters["dropped_fragment"] == 2


def test_other_protocols_are_unsupported_both_ways() -> None:
    engine = nat("full-cone")
    out = parse(bytes(IP(src="10.0.0.2", dst="198.51.100.1", proto=47) / (b"\x00" * 8)))
    back = parse(bytes(IP(src="198.51.100.1", dst=WAN, proto=132) / (b"\x00" * 8)))
    assert engine.outbound(out, 0.0).reason is DropReason.UNSUPPORTED
    assert engine.inbound(back, 0.0).reason is DropReason.UNSUPPORTED
    details = [e.as_json() for e in engine.drain_events()]
    assert [d["proto"] for d in details] == ["47", "132"]
    assert details[0]["detail"] == "outbound IP protocol 47 is not translated"


def test_inbound_to_an_address_that_is_not_ours() -> None:
    engine = nat("full-cone")
    assert engine.inbound(udp(S1, "203.0.113.77:5000"), 0.0).reason is DropReason.NO_MAPPING


def test_every_drop_reason_has_a_counter() -> None:
    counters = nat().counters
    assert all(counters[reason.counter] == 0 for reason in DropReason)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(external_addresses=()),
        dict(external_addresses=("not-an-address",)),
        dict(internal_networks=("10.0.0.0/33",)),
    ],
)
def test_bad_configs_are_refused(kwargs) -> None:
    fields = dict(
        behaviour=PRESETS["full-cone"], external_addresses=(WAN,), internal_networks=(LAN,)
    )
    with pytest.raises(ValueError):
        NatConfig(**{**fields, **kwargs})


def test_dropped_event_names_the_missing_permission() -> None:
    engine = nat("restricted")
    engine.outbound(udp(A, S1), 0.0)
    engine.inbound(udp(S2, f"{WAN}:5000"), 0.1)
    drop = engine.drain_events()[-1]
    assert isinstance(drop, Dropped)
    assert drop.detail == (
        f"mapping {A} -> {WAN}:5000 has not sent to 198.51.100.2 "
        "(address-dependent filtering; it sent to 198.51.100.1)"
    )


def test_a_drop_names_at_most_four_permissions() -> None:
    engine = nat("port-restricted")
    for port in range(1, 7):
        engine.outbound(udp(A, f"198.51.100.1:{port}"), 0.0)
    engine.inbound(udp(S2, f"{WAN}:5000"), 0.1)
    assert engine.drain_events()[-1].detail.endswith(
        "it sent to 198.51.100.1:1, 198.51.100.1:2, 198.51.100.1:3, 198.51.100.1:4, ...)"
    )


def test_every_kind_of_event_is_flat_json_with_a_detail() -> None:
    engine = nat(
        "full-cone",
        udp_timeout=30,
        refresh="both",
        static_maps=(StaticMap("tcp", (8000, 8000), "10.0.0.3", (80, 80)),),
    )
    engine.outbound(udp(A, S1), 0.0)  # created
    engine.outbound(udp(A, S1), 1.0)  # refreshed
    engine.outbound(udp("10.0.0.3:6000", f"{WAN}:5000"), 1.0)  # created, hairpinned
    engine.inbound(tcp(S1, f"{WAN}:8000"), 1.0)  # static map hit
    engine.inbound(udp(S1, f"{WAN}:9"), 1.0)  # dropped
    engine.expire(40.0)  # expired
    engine.flush()
    engine.reconfigure(PRESETS["symmetric"])
    events = engine.drain_events()
    kinds = [e.kind for e in events]
    assert set(kinds) == {
        "mapping-created",
        "mapping-refreshed",
        "hairpinned",
        "static-map-hit",
        "drop",
        "mapping-expired",
        "flushed",
        "reconfigured",
    }
    for event in events:
        record = event.as_json()
        assert json.loads(json.dumps(record)) == record
        assert record["kind"] == event.kind and record["at"] == event.at
        assert isinstance(record["detail"], str) and record["detail"]
        assert all(not isinstance(v, (dict, tuple)) for v in record.values())
