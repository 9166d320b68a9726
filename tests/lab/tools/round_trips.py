"""UDP round trips timed to the nanosecond, run inside lab nodes (ping prints whole
milliseconds above 100 ms, too coarse to check a delay to +-2 ms).

    python round_trips.py echo                    answer every datagram on port 7
    python round_trips.py ADDRESS COUNT           COUNT round trips to ADDRESS:7, one at a time;
                                                  prints their times in ms as a JSON list
"""

import json
import socket
import sys
import time

PORT = 7
WARM_UP = 5  # the first round trips pay for ARP and the NAT's mapping


def echo() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", PORT))
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def measure(address: str, count: int) -> list[float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    times = []
    for index in range(count + WARM_UP):
        start = time.perf_counter_ns()
        sock.sendto(b"x" * 64, (address, PORT))
        sock.recvfrom(2048)
        if index >= WARM_UP:
            times.append((time.perf_counter_ns() - start) / 1e6)
    return times


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo()
    else:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
