"""The client natlab's commands use to ask its daemons and endpoints (no root, no lab)."""

from __future__ import annotations

import socket
import threading

import pytest

from natlab.control_socket import ask
from natlab.errors import NatlabError


def serve_once(path, answer: bytes) -> threading.Thread:
    """A listener on path that reads one request line and writes `answer`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def one() -> None:
        with server, server.accept()[0] as connection:
            assert connection.makefile("rb").readline().endswith(b"\n")
            connection.sendall(answer)

    thread = threading.Thread(target=one, daemon=True)
    thread.start()
    return thread


def test_an_answer_comes_back_whole(tmp_path):
    big = "x" * 200_000  # several recv() calls
    serve_once(tmp_path / "r1.sock", b'{"ok": true, "big": "' + big.encode() + b'"}\n')
    assert ask(tmp_path / "r1.sock", {"op": "show"}, who="the router daemon")["big"] == big


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b'{"ok": false, "error": "ValueError: no"}\n', "r1: ValueError: no"),
        (b'{"ok": false}\n', "r1: the request was refused"),
        (b"[1, 2]\n", "r1: the request was refused"),
        (b"not json\n", "the router daemon at "),
    ],
)
def test_a_refusal_or_garbage_is_a_natlab_error(tmp_path, answer, message):
    serve_once(tmp_path / "r1.sock", answer)
    with pytest.raises(NatlabError, match=message):
        ask(tmp_path / "r1.sock", {"op": "show"}, who="the router daemon")


def test_nobody_listening_says_who_does_not_answer(tmp_path):
    with pytest.raises(NatlabError) as raised:
        ask(tmp_path / "gone.sock", {"op": "ping"}, who="the endpoint", timeout=0.5)
    assert "the endpoint at" in raised.value.problem and "does not answer" in raised.value.problem
    assert "natlab status" in raised.value.fix
