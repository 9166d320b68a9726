"""Explanations: a CallReport and the routers' events become lines naming each drop.

The events here have the shapes the router daemon writes (core/events.py's
as_json() plus "router", and the daemon's own drops without a detail).
"""

from natlab.scenario import explain
from natlab.scenario.explain import DropGroup, drop_groups, explain_call


def filtered(src: str, at: float = 1.0) -> dict:
    return {
        "at": at,
        "kind": "drop",
        "router": "branch2",
        "reason": "filtered-address",
        "direction": "inbound",
        "proto": "udp",
        "src": src,
        "dst": "203.0.113.3:50001",
        "detail": "mapping 10.2.0.2:5000 -> 203.0.113.3:50001 has not sent to 203.0.113.2 "
        "(address-and-port-dependent filtering; it sent to 203.0.113.4:3478)",
    }


NO_ROUTE = {
    "at": 1.2,
    "router": "branch1",
    "kind": "drop",
    "reason": "no-route",
    "src": "203.0.113.2:40000",
    "dst": "10.2.0.2:5000",
}
MAPPED = {
    "at": 0.5,
    "kind": "mapping-created",
    "router": "branch2",
    "proto": "udp",
    "internal": "10.2.0.2:5000",
    "external": "203.0.113.3:50001",
    "remote": "203.0.113.4:3478",
    "detail": "udp mapping 10.2.0.2:5000 -> 203.0.113.3:50001 (first sent to 203.0.113.4:3478)",
}
REFRESHED = {"at": 0.6, "kind": "mapping-refreshed", "router": "branch2", "detail": "refreshed"}

REPORT = {
    "caller": "phone-b",
    "callee": "phone-c",
    "selected_pair": None,
    "checks": [
        {
            "local": "10.1.0.2:40000",
            "remote": "203.0.113.3:50001",
            "local_type": "host",
            "remote_type": "srflx",
            "state": "failed",
        },
        {
            "local": "10.1.0.2:40000",
            "remote": "10.2.0.2:5000",
            "local_type": "host",
            "remote_type": "host",
            "state": "failed",
        },
    ],
    "rtp": {"sent": 0, "received": 0},
    "peer_rtp": {"sent": 0, "received": 0},
    "verdict": "no media",
    "error": None,
}


def test_drops_are_grouped_per_router_reason_and_addresses_oldest_first():
    events = {
        "branch1": [NO_ROUTE, NO_ROUTE],
        "branch2": [
            MAPPED,
            filtered("203.0.113.2:40000"),
            REFRESHED,
            filtered("203.0.113.2:40000", 2.0),
            filtered("203.0.113.2:40001"),
        ],
    }
    assert drop_groups(events) == [
        DropGroup("branch1", "no-route", "", "", "203.0.113.2:40000", "10.2.0.2:5000", "", 2),
        DropGroup(
            "branch2",
            "filtered-address",
            "inbound",
            "udp",
            "203.0.113.2:40000",
            "203.0.113.3:50001",
            filtered("")["detail"],
            2,
        ),
        DropGroup(
            "branch2",
            "filtered-address",
            "inbound",
            "udp",
            "203.0.113.2:40001",
            "203.0.113.3:50001",
            filtered("")["detail"],
            1,
        ),
    ]


def test_a_drop_reads_as_a_sentence_with_its_reason_and_detail():
    (engine, daemon) = (
        drop_groups({"branch2": [filtered("203.0.113.2:40000")]})[0],
        drop_groups({"branch1": [NO_ROUTE]})[0],
    )
    assert engine.describe() == (
        "branch2 dropped 1 udp packet 203.0.113.2:40000 -> 203.0.113.3:50001 "
        "(inbound, filtered-address): mapping 10.2.0.2:5000 -> 203.0.113.3:50001 has not sent "
        "to 203.0.113.2 (address-and-port-dependent filtering; it sent to 203.0.113.4:3478)"
    )
    assert daemon.describe() == (
        "branch1 dropped 1 packet 203.0.113.2:40000 -> 10.2.0.2:5000 (no-route): "
        "the router has no route to that destination"
    )


def test_explain_call_names_counts_checks_drops_and_the_mappings_behind_them():
    events = {"branch1": [NO_ROUTE], "branch2": [MAPPED, filtered("203.0.113.2:40000")]}
    lines = explain_call(REPORT, events)
    assert lines == [
        "RTP phone-b -> phone-c: 0 sent, 0 received; phone-c -> phone-b: 0 sent, 0 received",
        "selected pair: none selected",
        "ICE checks: 2 candidate pair(s) tried: 2 failed",
        "  host 10.1.0.2:40000 -> srflx 203.0.113.3:50001: failed",
        "  host 10.1.0.2:40000 -> host 10.2.0.2:5000: failed",
        drop_groups({"branch1": [NO_ROUTE]})[0].describe(),
        drop_groups({"branch2": [filtered("203.0.113.2:40000")]})[0].describe(),
        "branch2: udp mapping 10.2.0.2:5000 -> 203.0.113.3:50001 (first sent to 203.0.113.4:3478)",
    ]


def test_a_clean_call_says_nothing_was_dropped():
    report = {
        **REPORT,
        "verdict": "two-way",
        "checks": [],
        "rtp": {"sent": 50, "received": 49},
        "peer_rtp": {"sent": 50, "received": 50},
        "selected_pair": {
            "local": {"type": "host", "address": "10.0.0.3:4000"},
            "remote": {"type": "host", "address": "10.0.0.4:4002"},
        },
    }
    assert explain_call(report, {"main": [MAPPED]}) == [
        "RTP phone-b -> phone-c: 50 sent, 50 received; phone-c -> phone-b: 50 sent, 49 received",
        "selected pair: host 10.0.0.3:4000 -> host 10.0.0.4:4002",
        "no router dropped a packet during the call",
    ]


def test_a_call_error_is_shown():
    lines = explain_call({**REPORT, "error": "the call was refused: not registered"}, {})
    assert "call error: the call was refused: not registered" in lines


def test_long_lists_are_cut_with_a_count(monkeypatch):
    monkeypatch.setattr(explain, "LIMIT", 2)
    events = {"branch2": [filtered(f"203.0.113.2:{port}") for port in range(40000, 40005)]}
    lines = explain_call({**REPORT, "checks": REPORT["checks"] * 2}, events)
    assert "  ... and 2 more pairs" in lines
    assert "  ... and 3 more kinds of drop" in lines
    assert sum(line.startswith("branch2 dropped") for line in lines) == 2
