"""What a user's program is told of its lab (NATLAB_*), and how its state reads for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.lab.programs import (
    Pair,
    check_commands,
    command_error,
    describe,
    env_key,
    program_env,
    tail,
)
from natlab.topology import parse_topology

LAB = """
name: envlab
segments:
  internet: {subnet: 203.0.113.0/24}
  office-lan: {subnet: 10.1.0.0/24}
routers:
  edge-1:
    wan: {segment: internet, address: 203.0.113.1}
    lan: {segment: office-lan}
    stun: true
hosts:
  agent-a: {segment: office-lan, run: "my-agent --offer"}
  web.b: {segment: internet, address: 203.0.113.20}
  stun1: {segment: internet, role: stun-server, addresses: [203.0.113.30, 203.0.113.31]}
  relay: {segment: internet, role: turn-server, address: 203.0.113.40}
"""


@pytest.fixture
def topology():
    return parse_topology(LAB, "envlab.yaml")


def test_every_node_address_under_its_variable_name(topology):
    env = program_env(topology, "copy2", "agent-a")
    assert env["NATLAB_LAB"] == "copy2"  # the lab's name, not the topology's
    assert env["NATLAB_NODE"] == "agent-a"
    assert env["NATLAB_ADDR"] == "10.1.0.2"
    assert env["NATLAB_ADDR_AGENT_A"] == "10.1.0.2"
    assert env["NATLAB_ADDR_WEB_B"] == "203.0.113.20"  # '.' cannot be in a variable's name
    assert env["NATLAB_ADDR_EDGE_1"] == "203.0.113.1"  # a router: its WAN address
    assert env["NATLAB_ADDR_STUN1"] == "203.0.113.30"


def test_stun_lists_servers_then_router_responders_and_turn_has_credentials(topology):
    env = program_env(topology, "envlab", "web.b")
    assert env["NATLAB_STUN"] == "203.0.113.30:3478,203.0.113.1:3478"
    assert env["NATLAB_TURN"] == "203.0.113.40:3478"
    assert (env["NATLAB_TURN_USER"], env["NATLAB_TURN_PASSWORD"]) == ("natlab", "natlab")


def test_no_turn_variables_without_a_turn_server_and_no_pair_variables_alone():
    topology = parse_topology(
        "name: t\nsegments: {lan: {subnet: 10.0.0.0/24}}\nhosts: {a: {segment: lan}}", "t.yaml"
    )
    env = program_env(topology, "t", "a")
    assert env["NATLAB_STUN"] == ""
    assert not {"NATLAB_TURN", "NATLAB_ROLE", "NATLAB_PEER", "NATLAB_SHARED"} & set(env)


def test_pair_fields(topology, tmp_path):
    pair = Pair("b", "agent-a", tmp_path, 20.0)
    env = program_env(topology, "envlab", "web.b", pair)
    assert env["NATLAB_ROLE"] == "b"
    assert env["NATLAB_PEER"] == "agent-a"
    assert env["NATLAB_SHARED"] == str(tmp_path)
    assert env["NATLAB_TIMEOUT"] == "20"
    assert "NATLAB_TIMEOUT" not in program_env(
        topology, "envlab", "web.b", Pair("a", "x", tmp_path)
    )


def test_env_key_is_a_valid_variable_name():
    assert env_key("phone-b") == "NATLAB_ADDR_PHONE_B"
    assert env_key("a.b_c") == "NATLAB_ADDR_A_B_C"


def test_a_missing_command_names_the_field_and_the_path(topology, tmp_path):
    with pytest.raises(NatlabError) as caught:
        check_commands(topology, str(tmp_path))
    error = caught.value
    assert error.field == "hosts.agent-a.run"
    assert error.file == "envlab.yaml"
    assert "'my-agent' is not found in PATH" in error.problem
    assert str(tmp_path) in error.fix
    tool = tmp_path / "my-agent"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    check_commands(topology, str(tmp_path))  # found now
    assert command_error(["./no/such/file"], None) is not None
    plain = tmp_path / "notes.txt"
    plain.write_text("not a program\n")
    assert "is not an executable file" in command_error([str(plain)], None).problem


@pytest.mark.parametrize(
    ("state", "text"),
    [
        ({"state": "running", "pid": 42}, "running (pid 42)"),
        ({"state": "exited", "code": 0}, "exited 0"),
        ({"state": "exited", "code": 3, "log_dropped": 0}, "exited 3"),
        ({"state": "killed", "signal": "SIGKILL"}, "killed by SIGKILL"),
        ({"state": "failed", "error": "No such file"}, "failed: No such file"),
        (
            {"state": "unknown", "error": "its supervisor is gone"},
            "unknown: its supervisor is gone",
        ),
        (
            {"state": "exited", "code": 0, "log_dropped": 1234},
            "exited 0 (log cut, 1234 bytes dropped)",
        ),
    ],
)
def test_describe(state, text):
    assert describe(state) == text


def test_tail_is_bounded_and_replaces_what_is_not_utf8(tmp_path: Path):
    log = tmp_path / "n.log"
    log.write_bytes(b"x" * 10000 + b"caf\xe9 \xff\xfe end\n")
    shown = tail(log, 16)
    assert len(shown.encode()) <= 16 + 2 * 3  # each replaced byte is U+FFFD (3 bytes)
    assert shown.endswith("caf\ufffd \ufffd\ufffd end\n")
    assert tail(tmp_path / "missing.log") == ""
