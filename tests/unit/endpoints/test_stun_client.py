"""How a STUN server is written on a command line or in a phone's settings."""

from __future__ import annotations

import pytest

from natlab.endpoints.stun_client import parse_server
from natlab.errors import NatlabError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.10", ("203.0.113.10", 3478)),
        ("203.0.113.10:3479", ("203.0.113.10", 3479)),
        ("stun1", ("stun1", 3478)),
        ("stun1:19302", ("stun1", 19302)),
        ("2001:db8::1", ("2001:db8::1", 3478)),
        ("[2001:db8::1]", ("2001:db8::1", 3478)),
        ("[2001:db8::1]:5349", ("2001:db8::1", 5349)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["stun1:", "stun1:0", "stun1:65536", "stun1:x", ":3478", "[]:1"])
def test_parse_server_refuses_what_names_no_host_or_port(text: str) -> None:
    with pytest.raises(NatlabError, match="STUN server"):
        parse_server(text)
