"""The phones' and the PBX's wire format: JSON lines, message checks, the small SDP."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.endpoints.pbx import Link, Pbx, PbxConfig, Registration, RelayLeg, parse_policy
from natlab.endpoints.signalling import (
    Sdp,
    SignallingError,
    decode,
    encode,
    format_endpoint,
    parse,
    parse_endpoint,
)

OFFER = {
    "ufrag": "abcd",
    "pwd": "p" * 22,
    "candidates": ["1 1 udp 2130706431 10.0.0.3 4000 typ host"],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_every_json_object_survives_one_line(message: dict) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # JSON escapes newlines in strings
    assert decode(line) == message


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'"register"\n', b"{not json\n", b"\xff\xfe\n"])
def test_a_line_that_is_not_a_json_object_is_refused(line: bytes) -> None:
    with pytest.raises(SignallingError):
        decode(line)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "register", "name": "phone-b"},
        {"type": "registered", "expires": 60},
        {"type": "keepalive"},
        {"type": "invite", "call": "c1", "to": "phone-c", "mode": "srflx", "offer": OFFER},
        {"type": "ringing", "call": "c1"},
        {"type": "answer", "call": "c1", "answer": OFFER},
        {"type": "bye", "call": "c1"},
        {"type": "stats", "call": "c1", "rtp": {"sent": 1, "received": 0}},
        {"type": "error", "call": "c1", "reason": "not registered"},
    ],
)
def test_the_messages_of_the_contract_parse(message: dict) -> None:
    assert parse(encode(message)) == message


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"type": "hello"}, "unknown message type 'hello'"),
        ({"name": "phone-b"}, "unknown message type None"),
        ({"type": "register"}, "register: field 'name' missing or not str"),
        ({"type": "register", "name": 7}, "field 'name' missing or not str"),
        ({"type": "registered", "expires": True}, "field 'expires' missing or not int"),
        ({"type": "invite", "call": "c1", "offer": "sdp"}, "field 'offer' missing or not dict"),
        ({"type": "invite", "call": "c1", "offer": {}, "mode": "p2p"}, "mode 'p2p' is not one"),
        ({"type": "answer", "answer": {}}, "field 'call' missing"),
        ({"type": "ringing"}, "ringing: field 'call' missing"),
        ({"type": "error"}, "field 'reason' missing"),
    ],
)
def test_a_message_missing_a_field_or_of_a_wrong_type_is_refused(
    message: dict, complaint: str
) -> None:
    with pytest.raises(SignallingError, match=complaint.replace("(", r"\(")):
        parse(encode(message))


def test_sdp_round_trips_with_and_without_plain_addresses() -> None:
    ice = Sdp.from_json(OFFER)
    assert ice.rtp is None and ice.relay is None
    assert ice.as_json() == OFFER
    plain = Sdp(rtp=("203.0.113.2", 4000))
    assert Sdp.from_json(json.loads(json.dumps(plain.as_json()))) == plain


def test_the_pbx_relay_replaces_nothing_but_adds_its_address() -> None:
    relayed = Sdp.from_json(OFFER).with_relay(("203.0.113.1", 40000))
    assert relayed.candidates == tuple(OFFER["candidates"])
    assert relayed.as_json()["relay"] == ["203.0.113.1", 40000]


@pytest.mark.parametrize(
    "sdp",
    [
        {"ufrag": 1},
        {"candidates": "1 1 udp 1 10.0.0.3 4000 typ host"},
        {"candidates": [1]},
        {"rtp": ["10.0.0.3"]},
        {"rtp": ["phone-b", 4000]},
        {"rtp": ["10.0.0.3", 0]},
        {"rtp": ["10.0.0.3", 65536]},
        {"rtp": ["10.0.0.3", True]},
        {"relay": "203.0.113.1:40000"},
    ],
)
def test_an_sdp_of_the_wrong_shape_is_refused(sdp: dict) -> None:
    with pytest.raises(SignallingError, match="sdp"):
        Sdp.from_json(sdp)


@pytest.mark.parametrize("text", ["203.0.113.1", "203.0.113.1:", "203.0.113.1:0", "pbx:5060", ":1"])
def test_an_endpoint_is_an_ipv4_address_and_a_port(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_endpoints_format_back_to_what_was_parsed() -> None:
    assert format_endpoint(parse_endpoint("203.0.113.1:5061")) == "203.0.113.1:5061"


# -- who the PBX relays for, and where it tells each phone to send -------------------------------


def pbx_with(policy: str | frozenset[str], **sources: str) -> Pbx:
    """A PBX on 10.0.0.2 behind 203.0.113.1, its phones registered from `sources`."""
    config = PbxConfig(
        name="pbx",
        address=IPv4Address("10.0.0.2"),
        control=Path("pbx.sock"),
        public=IPv4Address("203.0.113.1"),
        relay_public_offset=1000,
        local=(IPv4Network("10.0.0.0/24"),),
        relay=policy,
    )
    pbx = Pbx(config)
    for key, source in sources.items():
        name = key.replace("_", "-")
        link = cast(Link, None)  # nothing is sent in these tests
        pbx.registrations[name] = Registration(name, link, "tcp", parse_endpoint(source))
    return pbx


PHONES = {"phone_a": "10.0.0.3:5000", "phone_b": "203.0.113.2:6000", "phone_c": "203.0.113.3:7000"}


@pytest.mark.parametrize(
    ("policy", "mode", "caller", "callee", "relayed"),
    [
        ("none", "ice", "phone-b", "phone-c", False),
        ("none", "relay", "phone-a", "phone-b", True),
        ("all", "ice", "phone-a", "phone-b", True),
        ("remote", "host", "phone-a", "phone-b", True),
        ("remote", "ice", "phone-a", "phone-a", False),
        (frozenset({"phone-c"}), "ice", "phone-a", "phone-b", False),
        (frozenset({"phone-c"}), "srflx", "phone-b", "phone-c", True),
    ],
)
def test_a_call_is_relayed_when_asked_or_when_the_policy_covers_one_of_its_phones(
    policy: str | frozenset[str], mode: str, caller: str, callee: str, relayed: bool
) -> None:
    assert pbx_with(policy, **PHONES).relayed(mode, caller, callee) is relayed


def test_a_local_phone_is_sent_to_the_pbx_itself_and_a_remote_one_to_the_public_port() -> None:
    class Leg(RelayLeg):
        port = 40002  # as if bound there

    pbx = pbx_with("all", **PHONES)
    assert pbx.relay_address("phone-a", Leg()) == ("10.0.0.2", 40002)
    assert pbx.relay_address("phone-b", Leg()) == ("203.0.113.1", 41002)
    assert pbx.relay_address("phone-x", Leg()) == ("203.0.113.1", 41002)  # unknown: remote


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("all", "all"),
        ("none", "none"),
        ("phone-b,phone-c", frozenset({"phone-b", "phone-c"})),
        (["phone-b"], frozenset({"phone-b"})),
    ],
)
def test_relay_policies(text: object, policy: object) -> None:
    assert parse_policy(text) == policy


@pytest.mark.parametrize("text", [7, None, ["phone-b", 3], {"phone-b": True}])
def test_a_relay_policy_is_a_keyword_or_phone_names(text: object) -> None:
    with pytest.raises(ValueError, match="relay policy"):
        parse_policy(text)
