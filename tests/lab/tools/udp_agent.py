"""A UDP agent run inside a lab node, driven line by line over stdin/stdout.

Tests script packets with it: bind a port, send a datagram from a port to an
address, collect what arrived on a port. One JSON request a line in, one
JSON answer a line out:

    {"op": "bind", "port": 4000}                  -> {"port": 4000}
    {"op": "send", "port": 4000, "to": ["203.0.113.10", 5000], "data": "hello"}
    {"op": "recv", "port": 4000, "wait": 0.5}    -> {"got": [["203.0.113.1", 4000, "hello"]]}

`recv` returns everything that arrived within `wait` seconds of the last
datagram (so a burst is collected whole), or nothing after `wait`.
"""

import json
import select
import socket
import sys


def main() -> None:
    sockets: dict[int, socket.socket] = {}
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        port = request.get("port")
        if op == "bind" and port in sockets:
            answer = {"port": port}  # bound already: binding twice is a no-op
        elif op == "bind":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", port))
            sockets[sock.getsockname()[1]] = sock
            answer = {"port": sock.getsockname()[1]}
        elif op == "send":
            sockets[port].sendto(request["data"].encode(), tuple(request["to"]))
            answer = {}
        elif op == "recv":
            got = []
            sock = sockets[port]
            while select.select([sock], [], [], request["wait"])[0]:
                data, (address, source_port) = sock.recvfrom(65536)
                got.append([address, source_port, data.decode(errors="replace")])
            answer = {"got": got}
        else:
            break
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
