"""The router daemon's control plane without a router: validation, and serving without waiting."""

from __future__ import annotations

import json
import math
import socket

import pytest

from natlab.core.durations import MAX_ADVANCE, check_advance
from natlab.router.control import Connection, check_limit


@pytest.mark.parametrize("seconds", [0, 0.5, 31, 3600.0, MAX_ADVANCE])
def test_a_finite_advance_up_to_thirty_days_is_taken(seconds):
    assert check_advance(seconds) == seconds


@pytest.mark.parametrize(
    "seconds", [math.nan, math.inf, -math.inf, 1e20, MAX_ADVANCE + 1, -1, "31", None, True]
)
def test_any_other_advance_is_refused(seconds):
    with pytest.raises(ValueError, match="30 days"):
        check_advance(seconds)


@pytest.mark.parametrize("duration", ["nan", "inf", "1e20", "0.0.1", "31d", "31 days", "nans"])
def test_clock_advance_refuses_a_bad_duration_with_exit_2(natlab, duration):
    done = natlab("clock", "advance", duration)
    assert done.returncode == 2
    assert "is not a duration from 0 to 30 days" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_show_limit_is_a_whole_number_or_none():
    assert check_limit(None) is None and check_limit(0) == 0 and check_limit(5) == 5
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="limit"):
            check_limit(bad)


def test_half_a_request_makes_the_connection_wait_not_the_server():
    client, server = socket.socketpair()
    with client:
        connection = Connection(server, now=0.0)
        assert connection.receive(1.0) is None  # nothing sent yet: it returns at once
        client.sendall(b'{"op": "sh')
        assert connection.receive(2.0) is None
        assert connection.active == 2.0
        client.sendall(b'ow", "limit": 3}\n')
        assert connection.receive(3.0) == {"op": "show", "limit": 3}
        connection.close()


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not a JSON object"),
        (b"x" * 70_000, "at most"),
    ],
)
def test_a_bad_request_is_said_to_be_bad(sent, problem):
    client, server = socket.socketpair()
    with client:
        client.sendall(sent)
        connection = Connection(server, now=0.0)
        answer = connection.receive(0.0)
        while answer is None:
            answer = connection.receive(0.0)
        assert isinstance(answer, str) and problem in answer
        connection.close()


def test_a_long_answer_goes_out_a_chunk_at_a_time_as_the_client_reads():
    client, server = socket.socketpair()
    chunks = [json.dumps({"n": n, "pad": "x" * 100_000}).encode() + b"\n" for n in range(20)]
    pulled = []

    def answer():
        for chunk in chunks:
            pulled.append(chunk)
            yield chunk

    with client:
        connection = Connection(server, now=0.0)
        connection.reply(answer())
        for _ in range(50):  # a client that reads nothing: sending never blocks
            assert connection.send(1.0) is False
        assert len(pulled) < len(chunks)  # no more made than the socket could take
        received = bytearray()
        client.settimeout(1.0)
        done = False
        while not done:
            done = connection.send(2.0)
            try:
                client.setblocking(False)
                received += client.recv(1 << 20)
            except BlockingIOError:
                pass
        client.setblocking(True)
        connection.close()
        while data := client.recv(1 << 20):
            received += data
    assert [json.loads(line)["n"] for line in received.splitlines()] == list(range(20))
