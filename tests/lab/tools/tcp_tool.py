"""TCP from inside a lab node, for tests/lab/test_tcp_behaviour.py; prints one JSON line.

    tcp_tool.py syn ADDR:PORT --sport N [--wait S]
        send one scapy-crafted SYN, report what came back within S seconds:
        {"answer": "none" | "rst" | "icmp", "after": seconds, ...the answer's fields}
    tcp_tool.py segment ADDR:PORT --sport N --flags R [--seq N]
        send one scapy-crafted segment (a RST, a FIN...) and nothing else
    tcp_tool.py serve PORT [--seconds S]
        accept TCP connections one at a time, echo one line back on each and keep it
        open until the client closes it, for S seconds
    tcp_tool.py attempt ADDR:PORT [--wait S]
        connect with the kernel's TCP and report how it ended within S seconds:
        {"result": "connected" | "timeout" | errno name ("ECONNREFUSED"), "after": seconds}
    tcp_tool.py connect ADDR:PORT --sport N [--hold S]
        connect with the kernel's TCP from port N, send a line, read the echo, keep
        the connection S seconds, then report {"echo": ...}

Sockets are the kernel's; only `syn` and `segment` craft packets (scapy, as root).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import socket
import sys
import time


def endpoint(text: str) -> tuple[str, int]:
    address, port = text.rsplit(":", 1)
    return address, int(port)


def syn(to: tuple[str, int], sport: int, wait: float) -> dict:
    from scapy.all import ICMP, IP, TCP, TCPerror, conf, sr1

    conf.verb = 0
    probe = IP(dst=to[0]) / TCP(sport=sport, dport=to[1], flags="S", seq=123456)
    sent = time.monotonic()
    answer = sr1(probe, timeout=wait)
    after = round(time.monotonic() - sent, 3)
    if answer is None:
        return {"answer": "none", "after": after}
    if answer.haslayer(TCP):
        tcp = answer[TCP]
        return {
            "answer": "rst" if tcp.flags.R else "tcp",
            "after": after,
            "from": f"{answer[IP].src}:{tcp.sport}",
            "flags": str(tcp.flags),
            "seq": tcp.seq,
            "ack": tcp.ack,
            "syn_seq": probe[TCP].seq,
        }
    icmp = answer[ICMP]
    quoted = answer[TCPerror]
    return {
        "answer": "icmp",
        "after": after,
        "from": answer[IP].src,
        "type": icmp.type,
        "code": icmp.code,
        "quoted": f"{quoted.sport}->{quoted.dport} seq {quoted.seq}",
    }


def segment(to: tuple[str, int], sport: int, flags: str, seq: int) -> dict:
    from scapy.all import IP, TCP, conf, send

    conf.verb = 0
    send(IP(dst=to[0]) / TCP(sport=sport, dport=to[1], flags=flags, seq=seq))
    return {"sent": flags}


def serve(port: int, seconds: float) -> dict:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen()
    listener.settimeout(0.2)
    print(json.dumps({"listening": port}), flush=True)
    served = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn, peer = listener.accept()
        except TimeoutError:
            continue
        with conn:  # kept open until the client closes: the server sends no FIN of its own
            conn.settimeout(max(0.1, end - time.monotonic()))
            conn.sendall(conn.recv(1024))
            served.append(f"{peer[0]}:{peer[1]}")
            with contextlib.suppress(OSError):
                while conn.recv(1024):
                    pass
    return {"served": served}


def attempt(to: tuple[str, int], wait: float) -> dict:
    sock = socket.socket()
    sock.settimeout(wait)
    started = time.monotonic()
    try:
        sock.connect(to)
        result = "connected"
    except TimeoutError:
        result = "timeout"
    except OSError as error:
        result = errno.errorcode.get(error.errno or 0, str(error))
    finally:
        sock.close()
    return {"result": result, "after": round(time.monotonic() - started, 3)}


def connect(to: tuple[str, int], sport: int, hold: float) -> dict:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", sport))
    sock.settimeout(5)
    sock.connect(to)
    sock.sendall(b"hello\n")
    echo = sock.recv(1024).decode()
    print(json.dumps({"connected": True}), flush=True)
    time.sleep(hold)
    sock.close()
    return {"echo": echo}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=["syn", "segment", "serve", "attempt", "connect"])
    parser.add_argument("target")
    parser.add_argument("--sport", type=int, default=0)
    parser.add_argument("--wait", type=float, default=9.0)
    parser.add_argument("--flags", default="R")
    parser.add_argument("--seq", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args()
    if args.op == "serve":
        result = serve(int(args.target), args.seconds)
    elif args.op == "syn":
        result = syn(endpoint(args.target), args.sport, args.wait)
    elif args.op == "segment":
        result = segment(endpoint(args.target), args.sport, args.flags, args.seq)
    elif args.op == "attempt":
        result = attempt(endpoint(args.target), args.wait)
    else:
        result = connect(endpoint(args.target), args.sport, args.hold)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
