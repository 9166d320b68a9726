"""`natlab run --pcap DIR`: both sides of each NAT captured, openable with scapy (issue 6).

The same STUN request and the same RTP packets must appear on branch1's LAN
side from phone-b's private address and on its internet side from branch1's
WAN address: the capture shows the translation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Raw, rdpcap

pytestmark = pytest.mark.natlab

SCENARIO = """
name: pcap-call
topology: main-branch.yaml
nat: {branch1: port-restricted, branch2: full-cone}
steps:
  - wait-registered: [phone-b, phone-c]
  - call: {from: phone-b, to: phone-c, seconds: 1, mode: ice}
    expect: {media: two-way}
"""
PHONE_B = "10.1.0.2"
BRANCH1_WAN = "203.0.113.2"
STUN_MAGIC = bytes.fromhex("2112a442")


def stun_requests(packets, source: str) -> set[bytes]:
    """Transaction ids of STUN Binding requests sent from source."""
    return {
        bytes(p[Raw].load[8:20])
        for p in packets
        if UDP in p
        and Raw in p
        and p[IP].src == source
        and p[UDP].dport == 3478
        and p[Raw].load[:2] == b"\x00\x01"
        and p[Raw].load[4:8] == STUN_MAGIC
    }


def rtp_sequences(packets, source: str) -> set[int]:
    """RTP sequence numbers (20 ms G.711: 12-byte header + 160 bytes) sent from source."""
    return {
        int.from_bytes(p[Raw].load[2:4], "big")
        for p in packets
        if UDP in p
        and Raw in p
        and p[IP].src == source
        and len(p[Raw].load) == 172
        and p[Raw].load[0] == 0x80
    }


def test_pcaps_show_stun_and_rtp_on_both_sides_of_the_nat(tmp_path: Path):
    scenario = tmp_path / "pcap-call.yaml"
    scenario.write_text(SCENARIO)
    captures = tmp_path / "pcap"
    run = subprocess.run(
        [sys.executable, "-m", "natlab", "run", str(scenario), "--pcap", str(captures)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    inside = rdpcap(str(captures / "branch1-branch1-lan.pcap"))
    outside = rdpcap(str(captures / "branch1-internet.pcap"))
    assert {f.name for f in captures.iterdir()} >= {
        f"{router}-{iface}.pcap"
        for router, iface in [("main", "internet"), ("main", "main-lan"), ("branch2", "internet")]
    }
    sent = stun_requests(inside, PHONE_B)
    assert sent, "phone-b's STUN requests are on branch1's LAN side"
    assert sent & stun_requests(outside, BRANCH1_WAN), "the same requests leave translated"
    assert not stun_requests(outside, PHONE_B), "no private source address leaks outside"
    rtp = rtp_sequences(inside, PHONE_B)
    assert len(rtp) >= 25, "a second of 20 ms RTP from phone-b, inside"
    assert len(rtp & rtp_sequences(outside, BRANCH1_WAN)) >= 25, "...and the same RTP outside"
