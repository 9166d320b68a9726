"""Reading baresip's control interface: netstring frames and the text of its answers.

The answers below are what baresip 1.0 (Debian's) sent in a lab call.
"""

import contextlib
import json
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.lab.baresip import (
    Call,
    RtpCounts,
    parse_calls,
    parse_registered,
    parse_rtp,
    read_response,
    split_netstring,
)

REGINFO_OK = (
    "\n--- User Agents (1) ---\n> sip:a@127.0.0.1:15070                      "
    "\x1b[32mOK \x1b[;m kamailio (5.6.3 (x86_64/linux)) Expires 60s\n\n"
)
REGINFO_FAILED = "\n--- User Agents (1) ---\n> sip:a@127.0.0.1:15070  \x1b[31mERR \x1b[;m\n\n"
LISTCALLS = (
    "\n--- Active calls (1) ---\n> [line 1]  0:00:03  ESTABLISHED"
    "             sip:b@127.0.0.1:15070;transport=udp\n\n"
)
AUDIO_DEBUG = (
    "\n--- Audio stream ---\n tx:   encode: PCMU 8000Hz/1ch ptime=20ms S16LE\n"
    " local: 0.0.0.0:14782, remote: 192.0.2.2:14004/192.0.2.2:14005\n"
    "RTP debug:\n Encode: seq=27460 ssrc=0xe0217132\n----- RTCP Session: -----\n"
    "  cname=sip:a@127.0.0.1:15060 SSRC=0xe0217132/3760288050 rx=8000Hz\n"
    "  member 0x72adc45d: lost=0 Jitter=0.0ms RTT=0.0ms\n"
    "                 IP=192.0.2.2:14004 psent=0 rcvd=120\n"
    "  TX: packets=119, octets=19040\n"
)


def netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def test_answers_are_read_as_baresip_writes_them():
    assert parse_registered(REGINFO_OK)
    assert not parse_registered(REGINFO_FAILED)
    assert parse_calls(LISTCALLS) == [Call("ESTABLISHED", "sip:b@127.0.0.1:15070;transport=udp")]
    assert parse_calls("\n--- Active calls (0) ---\n\n") == []
    assert parse_rtp(AUDIO_DEBUG) == RtpCounts(sent=119, received=120)
    assert parse_rtp("") == RtpCounts(0, 0)


@given(st.lists(st.binary(max_size=300), max_size=5), st.binary(max_size=50))
def test_netstrings_split_back_into_what_was_framed(payloads, tail):
    buffer = b"".join(netstring(p) for p in payloads)
    found = []
    while (frame := split_netstring(buffer)) is not None:
        payload, buffer = frame
        found.append(payload)
    assert found == payloads


@given(st.binary(max_size=200))
def test_garbage_is_refused_or_waited_for_never_a_crash(data):
    with contextlib.suppress(OSError):
        split_netstring(data)


def test_a_huge_announced_length_is_refused_before_it_is_buffered():
    with pytest.raises(OSError, match="bad netstring length"):
        split_netstring(b"99999999999:")


def test_the_response_with_our_token_is_found_past_events():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        event = {"event": True, "type": "CALL_RINGING"}
        other = {"response": True, "ok": True, "data": "old", "token": "natlab-0"}
        mine = {"response": True, "ok": True, "data": "mine", "token": "natlab-1"}
        for message in (event, other, mine):
            theirs.sendall(netstring(json.dumps(message).encode()))
        answer = read_response(ours, "natlab-1", time.monotonic() + 2)
    assert answer["data"] == "mine"
