"""SIP figures of natlab's phones and PBX (issue 14): call setup through two NATs, and the
PBX's registrations per second and memory with 1000 phones.

- Call setup: main-branch, phone-b (behind branch1) calls phone-c (behind branch2),
  `--calls` times without ICE (mode host, no media); the time from the INVITE sent to
  its 200 OK received, as the caller's log prints it. Median and p99.
- Registrations: natlab's PBX in a process of its own on 127.0.0.1 (loopback only), and
  `--phones` phones simulated from this one process over UDP, each a socket of its own
  doing what a phone does: REGISTER, 401 with a digest challenge, REGISTER with the
  answer, 200. Registrations completed per second (at most `--window` under way at once),
  and the PBX's resident memory (VmRSS) with all of them registered.

Printed, never asserted. Run as root: python benchmarks/bench_sip.py [--calls 50] [--phones 1000]
Targets (issue 14): call setup median < 50 ms; >= 500 registrations/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.sip_transport import DatagramInbox
from natlab.lab import Lab, require_root
from natlab.lab.naming import lab_dir
from natlab.sip import digest
from natlab.sip.message import SipMessage

MAIN_BRANCH = Path(__file__).resolve().parent.parent / "topologies" / "main-branch.yaml"
SETUP = re.compile(r"call (\S+): INVITE answered 200 after ([0-9.]+) ms")
PBX = """
import sys
from ipaddress import IPv4Address
from pathlib import Path
from natlab.endpoints import pbx
pbx.run(pbx.PbxConfig("pbx", IPv4Address("127.0.0.1"), Path(sys.argv[1]), port=int(sys.argv[2])))
"""


def call_setup(calls: int) -> list[float]:
    """Milliseconds from INVITE to 200 OK, one per call, phone-b -> phone-c."""
    lab = Lab.from_file(MAIN_BRANCH, f"bench-sip-{secrets.token_hex(3)}")
    lab.up()
    try:
        caller = lab.phone("phone-b")
        for _ in range(calls):
            report = caller.call("phone-c", seconds=0, mode="host")
            if report.error:
                raise SystemExit(f"a call failed: {report.error}")
        log = (lab_dir(lab.name) / "hosts" / "phone-b.log").read_text()
    finally:
        lab.down()
    return [float(ms) for _, ms in SETUP.findall(log)]


async def register(number: int, pbx: tuple[str, int]) -> None:
    """One simulated phone: REGISTER, 401, REGISTER with the digest, 200."""
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(
        DatagramInbox, local_addr=("127.0.0.1", 0), remote_addr=pbx
    )
    user = f"phone{number}"
    host, port = transport.get_extra_info("sockname")[:2]
    try:
        authorization: tuple[tuple[str, str], ...] = ()
        for cseq in (1, 2):
            request = dialogs.request(
                "REGISTER",
                "sip:127.0.0.1",
                via_value=dialogs.via("udp", host, port),
                from_value=f"<sip:{user}@127.0.0.1>;tag={number}",
                to_value=f"<sip:{user}@127.0.0.1>",
                call_id=f"reg-{number}",
                cseq=cseq,
                headers=(("Contact", f"<sip:{user}@{host}:{port}>"), *authorization),
            )
            transport.sendto(request.to_bytes())
            answer, _ = await asyncio.wait_for(inbox.queue.get(), 10)
            assert isinstance(answer, SipMessage), answer
            if dialogs.status(answer) == 200:
                return
            challenge = digest.parse_challenge(answer.get("WWW-Authenticate") or "")
            credentials = digest.answer(
                challenge,
                username=user,
                password=dialogs.DEFAULT_PASSWORD,
                method="REGISTER",
                uri="sip:127.0.0.1",
                cnonce=f"{number:08x}",
            )
            authorization = (("Authorization", credentials.to_header()),)
        raise SystemExit(f"{user} was not registered: {answer.start}")
    finally:
        transport.close()


async def registrations(phones: int, window: int, pbx: tuple[str, int]) -> float:
    """Seconds for `phones` registrations, at most `window` under way at once."""
    limit = asyncio.Semaphore(window)

    async def one(number: int) -> None:
        async with limit:
            await register(number, pbx)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(phones)))
    return time.perf_counter() - start


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time: what the PBX spent, however loaded the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--window", type=int, default=100, help="registrations under way at once")
    parser.add_argument("--skip-calls", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        log = Path(directory) / "pbx.log"
        with log.open("w") as output:
            server = subprocess.Popen(
                [sys.executable, "-c", PBX, str(Path(directory) / "pbx.sock"), str(port)],
                stdout=output,
                text=True,
            )
        try:
            while not log.read_text().startswith("ready"):  # its prints go to a file it never fills
                time.sleep(0.05)
            idle = rss_kib(server.pid)
            cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            seconds = asyncio.run(registrations(args.phones, args.window, ("127.0.0.1", port)))
            cpu = cpu_seconds(server.pid) - cpu
            client_cpu = time.process_time() - client_cpu
            full = rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    rate = args.phones / seconds
    print(
        f"PBX registrations over UDP, {args.phones} phones from one process (REGISTER, 401, "
        f"REGISTER with digest, 200): {rate:.0f}/s in {seconds:.2f} s (target >= 500/s)"
    )
    print(
        f"CPU per registration: PBX {cpu / args.phones * 1e3:.2f} ms, the simulated phones "
        f"{client_cpu / args.phones * 1e3:.2f} ms (the machine's load aside)"
    )
    print(
        f"PBX resident memory: {idle / 1024:.1f} MiB idle, {full / 1024:.1f} MiB with "
        f"{args.phones} registrations ({(full - idle) / args.phones:.2f} KiB each)"
    )
    if args.skip_calls:
        return
    require_root("the call-setup benchmark")
    setups = sorted(call_setup(args.calls))
    p99 = setups[min(len(setups) - 1, int(len(setups) * 0.99))]
    print(
        f"call setup through two NATs (main-branch, phone-b -> phone-c, no ICE, INVITE sent to "
        f"200 OK received), {len(setups)} calls: median {statistics.median(setups):.1f} ms, "
        f"p99 {p99:.1f} ms, max {setups[-1]:.1f} ms (target: median < 50 ms)"
    )


if __name__ == "__main__":
    main()
