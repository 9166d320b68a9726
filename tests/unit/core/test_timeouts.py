"""Mapping lifetimes on the engine's given clock: timeouts, refresh, expiry, its events."""

from __future__ import annotations

import pytest

from natlab.core import engine as engine_module
from natlab.core.engine import Action, DropReason
from natlab.core.events import Dropped, MappingCreated, MappingExpired, MappingRefreshed
from natlab.core.packets import Proto

from .helpers import WAN, echo, ep, nat, udp

A = "10.0.0.2:5000"
S1 = "198.51.100.1:3478"
MAPPED = f"{WAN}:5000"  # preserved port


def test_inbound_after_the_udp_timeout_is_expired() -> None:
    engine = nat("full-cone", udp_timeout=30)
    assert engine.outbound(udp(A, S1), 0.0).action is Action.FORWARD_OUT
    assert engine.inbound(udp(S1, MAPPED), 29.9).action is Action.FORWARD_IN
    engine.drain_events()
    assert engine.inbound(udp(S1, MAPPED), 31.0).reason is DropReason.EXPIRED
    assert engine.drain_events() == [
        MappingExpired(31.0, Proto.UDP, ep(A), ep(MAPPED), 30.0),
        Dropped(
            31.0,
            DropReason.EXPIRED,
            "inbound",
            Proto.UDP,
            ep(S1),
            ep(MAPPED),
            f"mapping {A} -> {MAPPED} expired at 30",
        ),
    ]
    assert engine.counters["dropped_expired"] == 1
    assert engine.counters["mappings_expired"] == 1
    assert engine.mappings(31.0) == []


def test_a_mapping_lives_exactly_its_timeout() -> None:
    engine = nat("full-cone", udp_timeout=30)
    engine.outbound(udp(A, S1), 10.0)
    [view] = engine.mappings(10.0)
    assert view.expires_at == 40.0
    assert engine.mappings(39.999) and not engine.mappings(40.0)


def test_expire_sweeps_and_later_packets_still_say_expired() -> None:
    engine = nat("full-cone", udp_timeout=30)
    engine.outbound(udp(A, S1), 0.0)
    assert engine.expire(29.0) == 0
    assert engine.expire(30.0) == 1
    assert [type(e) for e in engine.drain_events()] == [MappingCreated, MappingExpired]
    assert engine.inbound(udp(S1, MAPPED), 500.0).reason is DropReason.EXPIRED
    assert engine.inbound(udp(S1, f"{WAN}:5001"), 500.0).reason is DropReason.NO_MAPPING


def test_the_expired_record_names_the_last_mapping_on_the_port() -> None:
    engine = nat("full-cone", udp_timeout=30)
    engine.outbound(udp(A, S1), 0.0)
    engine.expire(31.0)
    packet = udp("10.0.0.3:5000", S1)
    engine.outbound(packet, 32.0)  # preserve: 5000 again, now for another host
    assert packet.src == ep(MAPPED)
    engine.expire(70.0)
    engine.drain_events()
    assert engine.inbound(udp(S1, MAPPED), 71.0).reason is DropReason.EXPIRED
    [drop] = engine.drain_events()
    assert drop.detail == f"mapping 10.0.0.3:5000 -> {MAPPED} expired at 62"


def test_after_expiry_the_host_gets_a_fresh_mapping_without_old_permissions() -> None:
    engine = nat("port-restricted", udp_timeout=30)
    engine.outbound(udp(A, S1), 0.0)
    engine.outbound(udp(A, "198.51.100.2:3478"), 0.5)
    engine.outbound(udp(A, S1), 40.0)  # the old mapping expired at 30.5: a new one
    events = engine.drain_events()
    assert [type(e) for e in events] == [MappingCreated, MappingExpired, MappingCreated]
    assert engine.inbound(udp("198.51.100.2:3478", MAPPED), 41.0).reason is (
        DropReason.FILTERED_ADDRESS
    )


@pytest.mark.parametrize(
    ("refresh", "inbound_at_40"),
    [
        ("outbound", DropReason.EXPIRED),
        ("both", None),
        ("inbound", None),
        ("none", DropReason.EXPIRED),
    ],
)
def test_inbound_refreshes_only_when_asked(refresh, inbound_at_40) -> None:
    engine = nat("full-cone", udp_timeout=30, refresh=refresh)
    engine.outbound(udp(A, S1), 0.0)
    assert engine.inbound(udp(S1, MAPPED), 20.0).action is Action.FORWARD_IN
    verdict = engine.inbound(udp(S1, MAPPED), 40.0)
    assert verdict.reason is inbound_at_40


@pytest.mark.parametrize(
    ("refresh", "expires_at"),
    [("outbound", 50.0), ("both", 50.0), ("inbound", 30.0), ("none", 30.0)],
)
def test_outbound_refreshes_only_when_asked(refresh, expires_at) -> None:
    engine = nat("full-cone", udp_timeout=30, refresh=refresh)
    engine.outbound(udp(A, S1), 0.0)
    engine.outbound(udp(A, S1), 20.0)
    assert [view.expires_at for view in engine.mappings(29.0)] == [expires_at]
    assert engine.inbound(udp(S1, MAPPED), expires_at + 1).reason is DropReason.EXPIRED


def test_without_refresh_a_mapping_lives_its_timeout_from_creation_whatever_passes() -> None:
    engine = nat("full-cone", udp_timeout=30, refresh="none")
    engine.outbound(udp(A, S1), 0.0)
    for now in (1.0, 2.0, 10.0, 29.0):  # keepalives both ways, none of them counts
        assert engine.outbound(udp(A, S1), now).action is Action.FORWARD_OUT
        assert engine.inbound(udp(S1, MAPPED), now).action is Action.FORWARD_IN
    assert not [e for e in engine.drain_events() if isinstance(e, MappingRefreshed)]
    packet = udp(A, S1)
    engine.outbound(packet, 30.0)  # a new mapping: the old one lapsed at 30
    assert [type(e) for e in engine.drain_events()] == [MappingExpired, MappingCreated]


def test_refresh_events_are_at_most_one_per_second_per_mapping() -> None:
    engine = nat("full-cone", udp_timeout=30)
    for now in (0.0, 0.5, 1.0, 1.2, 1.9, 2.5):
        engine.outbound(udp(A, S1), now)
    refreshed = [e for e in engine.drain_events() if isinstance(e, MappingRefreshed)]
    assert refreshed == [
        MappingRefreshed(1.0, Proto.UDP, ep(A), ep(MAPPED), "outbound", 31.0),
        MappingRefreshed(2.5, Proto.UDP, ep(A), ep(MAPPED), "outbound", 32.5),
    ]
    [view] = engine.mappings(2.5)
    assert view.expires_at == 32.5  # every packet refreshed, only two said so


def test_inbound_refresh_events_when_refresh_is_both() -> None:
    engine = nat("full-cone", udp_timeout=30, refresh="both")
    engine.outbound(udp(A, S1), 0.0)
    engine.inbound(udp(S1, MAPPED), 5.0)
    assert engine.drain_events()[-1] == MappingRefreshed(
        5.0, Proto.UDP, ep(A), ep(MAPPED), "inbound", 35.0
    )


def test_icmp_uses_its_own_timeout() -> None:
    engine = nat("full-cone", icmp_timeout=10, udp_timeout=300)
    engine.outbound(echo("10.0.0.2", "198.51.100.1", 77), 0.0)
    [view] = engine.mappings(0.0)
    assert view.expires_at == 10.0


def test_recently_expired_record_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "TOMBSTONES", 3)
    engine = nat("full-cone", udp_timeout=1)
    for port in range(5000, 5005):
        engine.outbound(udp(f"10.0.0.2:{port}", S1), 0.0)
    assert engine.expire(2.0) == 5
    reasons = [engine.inbound(udp(S1, f"{WAN}:{p}"), 3.0).reason for p in range(5000, 5005)]
    assert reasons == [DropReason.NO_MAPPING] * 2 + [DropReason.EXPIRED] * 3


def test_the_expired_record_forgets_the_longest_expired_first(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "TOMBSTONES", 3)
    engine = nat("full-cone", udp_timeout=1)
    engine.outbound(udp("10.0.0.2:5000", S1), 0.0)
    engine.outbound(udp("10.0.0.2:5001", S1), 0.5)
    engine.expire(2.0)
    engine.outbound(udp("10.0.0.2:5000", S1), 3.0)  # 5000 again, expiring after 5001
    engine.expire(5.0)
    engine.outbound(udp("10.0.0.2:5002", S1), 6.0)
    engine.outbound(udp("10.0.0.2:5003", S1), 6.0)
    engine.expire(8.0)  # four expired ports: the record keeps the three latest
    ports = (5000, 5001, 5002, 5003)
    reasons = [engine.inbound(udp(S1, f"{WAN}:{p}"), 9.0).reason for p in ports]
    assert reasons == [DropReason.EXPIRED, DropReason.NO_MAPPING] + [DropReason.EXPIRED] * 2


def test_flush_forgets_what_expired_before() -> None:
    engine = nat("full-cone", udp_timeout=30)
    engine.outbound(udp(A, S1), 0.0)
    engine.expire(31.0)
    engine.flush()
    assert engine.inbound(udp(S1, MAPPED), 32.0).reason is DropReason.NO_MAPPING
