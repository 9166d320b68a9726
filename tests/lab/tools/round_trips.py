"""ICMP echo round trips timed by the kernels, run inside a lab node.

    python round_trips.py ADDRESS COUNT     COUNT echoes to ADDRESS, one at a time; prints
                                            their round-trip times in ms as a JSON list

The far end's kernel answers (no program there to wake), and each time runs
from just before the request is sent to the kernel's receive timestamp of its
reply (SO_TIMESTAMPNS): a busy machine's late wake-ups are not counted, the
links' delays are. ping would do the same but prints whole milliseconds above
100 ms, too coarse to check a delay to +-2 ms.
"""

import json
import os
import socket
import struct
import sys
import time

from scapy.layers.inet import ICMP

WARM_UP = 5  # the first round trips pay for ARP and the NAT's mapping
TIMEOUT = 2.0
ECHO_REPLY = 0
SO_TIMESTAMPNS = 35  # Linux's (also SCM_TIMESTAMPNS); Python's socket module does not name it


def measure(address: str, count: int) -> list[float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(TIMEOUT)
    ident = os.getpid() & 0xFFFF
    times = []
    for seq in range(count + WARM_UP):
        request = bytes(ICMP(type="echo-request", id=ident, seq=seq) / (b"x" * 56))
        start = time.clock_gettime_ns(time.CLOCK_REALTIME)
        sock.sendto(request, (address, 0))
        received = reply_time(sock, ident, seq)
        if seq >= WARM_UP:
            times.append((received - start) / 1e6)
    return times


def reply_time(sock: socket.socket, ident: int, seq: int) -> int:
    """The kernel's receive time (ns) of the echo reply to (ident, seq); others are passed over."""
    while True:
        data, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
        header = (data[0] & 0x0F) * 4
        kind, _, _, their_ident, their_seq = struct.unpack_from("!BBHHH", data, header)
        if kind != ECHO_REPLY or (their_ident, their_seq) != (ident, seq):
            continue
        for level, cmsg_type, value in ancillary:
            if level == socket.SOL_SOCKET and cmsg_type == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                return seconds * 1_000_000_000 + nanoseconds
        raise RuntimeError("the kernel gave no receive timestamp")


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
