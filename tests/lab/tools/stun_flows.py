"""Open many UDP flows from one node at once, each a STUN binding request; say what came back.

    python stun_flows.py SERVER_ADDRESS COUNT

First one socket asks and keeps its answer (a flow that exists before the
burst), then COUNT new sockets ask at once, then the first socket asks
again. Prints one JSON object: the first socket's mapped address before
and after the burst (null if unanswered), and how many of the burst were
answered. Standard library only: it runs in any node.
"""

import json
import os
import socket
import struct
import sys

MAGIC = 0x2112A442


def ask(sock: socket.socket, server: tuple[str, int]) -> str | None:
    """The XOR-MAPPED-ADDRESS of a binding answer, or None if none came in time."""
    sock.sendto(struct.pack("!HHI12s", 1, 0, MAGIC, os.urandom(12)), server)
    try:
        data = sock.recv(1024)
    except OSError:
        return None
    at = 20
    while at + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, at)
        if kind == 0x0020:
            port = struct.unpack_from("!H", data, at + 6)[0] ^ (MAGIC >> 16)
            address = struct.unpack_from("!I", data, at + 8)[0] ^ MAGIC
            return f"{socket.inet_ntoa(struct.pack('!I', address))}:{port}"
        at += 4 + (length + 3) // 4 * 4
    return None


def main() -> None:
    server, count = (sys.argv[1], 3478), int(sys.argv[2])
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.settimeout(1.0)
    before = ask(first, server)
    burst = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.5)
        sock.sendto(struct.pack("!HHI12s", 1, 0, MAGIC, os.urandom(12)), server)
        burst.append(sock)
    answered = 0
    for sock in burst:
        try:
            sock.recv(1024)
            answered += 1
        except OSError:
            pass
    after = ask(first, server)
    print(json.dumps({"before": before, "after": after, "answered": answered, "count": count}))


if __name__ == "__main__":
    main()
