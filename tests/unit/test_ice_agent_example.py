"""examples/ice-agent refuses what it cannot use from NATLAB_SHARED with a clear exit (2).

No lab needed: with no STUN or TURN server the agent only gathers host
candidates (it binds sockets, sends nothing), writes its own offer and
reads the peer's, which is garbage here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AGENT = Path(__file__).parents[2] / "examples" / "ice-agent" / "agent.py"


def agent(shared: Path, role: str = "a", **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NATLAB_")}
    variables = {"NATLAB_ROLE": role, "NATLAB_SHARED": str(shared), "NATLAB_TIMEOUT": "5"}
    return subprocess.run(
        [sys.executable, str(AGENT)],
        env={**base, **variables, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        (b"\xff\xfe not json", "not an offer"),
        (b"[1, 2]", "not an offer"),
        (json.dumps({"username": "u", "password": "p", "candidates": ["junk"]}).encode(), "offer"),
        (json.dumps({"username": 1, "password": "p", "candidates": []}).encode(), "offer"),
        (b"x" * (64 * 1024 + 1), "more than 65536 bytes"),
    ],
)
def test_garbage_from_the_peer_is_refused_with_exit_2(tmp_path, peer, why):
    (tmp_path / "b.json").write_bytes(peer)
    result = agent(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(tmp_path / "b.json") in result.stderr and why in result.stderr
    assert json.loads((tmp_path / "a.json").read_text())["candidates"]  # its own offer, whole


def test_without_natlabs_environment_it_says_so(tmp_path):
    result = agent(tmp_path, role="c")
    assert result.returncode == 2 and "NATLAB_ROLE (a or b)" in result.stderr


def test_no_peer_in_time_is_a_failure_not_a_hang(tmp_path):
    result = agent(tmp_path, NATLAB_TIMEOUT="3")
    assert result.returncode == 1 and "no b.json from the peer in time" in result.stdout
