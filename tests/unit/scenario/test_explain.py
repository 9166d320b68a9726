"""Explanations: a CallReport and the routers' events become lines naming each drop.

The events are records.RouterEvent, as the router daemon writes them (the
engine's events, and the daemon's own drops without a detail).
"""

from dataclasses import replace

from natlab.core.events import DropReason, SipPinhole, SipRewritten
from natlab.core.packets import Endpoint, Proto
from natlab.records import (
    CallReport,
    Candidate,
    IceCheck,
    RouterEvent,
    RtpCounts,
    SelectedPair,
)
from natlab.scenario import explain
from natlab.scenario.explain import DropGroup, drop_groups, explain_call

DETAIL = (
    "mapping 10.2.0.2:5000 -> 203.0.113.3:50001 has not sent to 203.0.113.2 "
    "(address-and-port-dependent filtering; it sent to 203.0.113.4:3478)"
)


def filtered(src: str, at: float = 1.0) -> RouterEvent:
    return RouterEvent(
        at=at,
        kind="drop",
        router="branch2",
        reason=DropReason.FILTERED_ADDRESS,
        direction="inbound",
        proto="udp",
        src=src,
        dst="203.0.113.3:50001",
        detail=DETAIL,
    )


NO_ROUTE = RouterEvent(
    at=1.2,
    router="branch1",
    kind="drop",
    reason=DropReason.NO_ROUTE,
    src="203.0.113.2:40000",
    dst="10.2.0.2:5000",
)
MAPPED = RouterEvent(
    at=0.5,
    kind="mapping-created",
    router="branch2",
    proto="udp",
    internal="10.2.0.2:5000",
    external="203.0.113.3:50001",
    remote="203.0.113.4:3478",
    detail="udp mapping 10.2.0.2:5000 -> 203.0.113.3:50001 (first sent to 203.0.113.4:3478)",
)
REFRESHED = RouterEvent(
    at=0.6,
    kind="mapping-refreshed",
    router="branch2",
    proto="udp",
    internal="10.2.0.2:5000",
    external="203.0.113.3:50001",
    direction="outbound",
    expires_at=120.6,
    detail="refreshed",
)

REPORT = CallReport(
    call="c1",
    caller="phone-b",
    callee="phone-c",
    mode="ice",
    role="caller",
    checks=[
        IceCheck("10.1.0.2:40000", "203.0.113.3:50001", "host", "srflx", "failed"),
        IceCheck("10.1.0.2:40000", "10.2.0.2:5000", "host", "host", "failed"),
    ],
    rtp=RtpCounts(0, 0),
    peer_rtp=RtpCounts(0, 0),
)


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
        DropGroup(
            "branch1", DropReason.NO_ROUTE, "", "", "203.0.113.2:40000", "10.2.0.2:5000", "", 2
        ),
        DropGroup(
            "branch2",
            DropReason.FILTERED_ADDRESS,
            "inbound",
            "udp",
            "203.0.113.2:40000",
            "203.0.113.3:50001",
            DETAIL,
            2,
        ),
        DropGroup(
            "branch2",
            DropReason.FILTERED_ADDRESS,
            "inbound",
            "udp",
            "203.0.113.2:40001",
            "203.0.113.3:50001",
            DETAIL,
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
        + DropReason.NO_ROUTE.meaning
    )
    assert DropReason.NO_ROUTE.meaning.startswith("the router has no route to that destination")


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
    report = replace(
        REPORT,
        verdict="two-way",
        checks=[],
        rtp=RtpCounts(50, 49),
        peer_rtp=RtpCounts(50, 50),
        selected_pair=SelectedPair(
            Candidate("10.0.0.3:4000", "host"), Candidate("10.0.0.4:4002", "host")
        ),
    )
    assert explain_call(report, {"main": [MAPPED]}) == [
        "RTP phone-b -> phone-c: 50 sent, 50 received (0 lost, 0 late, jitter 0 ms); "
        "phone-c -> phone-b: 50 sent, 49 received (0 lost, 0 late, jitter 0 ms)",
        "selected pair: host 10.0.0.3:4000 -> host 10.0.0.4:4002",
        "no router dropped a packet during the call",
    ]


def test_a_call_error_is_shown():
    lines = explain_call(replace(REPORT, error="the call was refused: not registered"), {})
    assert "call error: the call was refused: not registered" in lines


def test_long_lists_are_cut_with_a_count(monkeypatch):
    monkeypatch.setattr(explain, "LIMIT", 2)
    events = {"branch2": [filtered(f"203.0.113.2:{port}") for port in range(40000, 40005)]}
    lines = explain_call(replace(REPORT, checks=REPORT.checks * 2), events)
    assert "  ... and 2 more pairs" in lines
    assert "  ... and 3 more kinds of drop" in lines
    assert sum(line.startswith("branch2 dropped") for line in lines) == 2


def test_the_sip_alg_s_media_rewrites_and_pinholes_are_explained_per_router():
    rewritten = SipRewritten(
        1.0,
        "outbound",
        17,
        Endpoint("203.0.113.3", 5060),
        Endpoint("203.0.113.9", 5060),
        "SDP c=",
        "IN IP4 10.2.0.2",
        "IN IP4 203.0.113.3",
    )
    pinhole = SipPinhole(
        1.0,
        Proto.UDP,
        Endpoint("10.2.0.2", 4000),
        Endpoint("203.0.113.3", 61000),
        Endpoint("203.0.113.9", 5060),
    )
    via = replace(rewritten, header="Via", old="SIP/2.0/UDP 10.2.0.2", new="SIP/2.0/UDP x")
    events = {"home": [RouterEvent.of(e, "home") for e in (via, rewritten, pinhole)]}
    lines = explain_call(REPORT, events)
    assert lines[-2:] == [
        "home: SIP ALG rewrote SDP c= (outbound): IN IP4 10.2.0.2 -> IN IP4 203.0.113.3",
        "home: SIP ALG opened a udp pinhole 203.0.113.3:61000 -> 10.2.0.2:4000 for the media "
        "in an SDP sent to 203.0.113.9:5060",
    ]
