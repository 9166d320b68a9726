"""`--pcap DIR`: every interface of every router captured while a scenario runs.

tcpdump runs inside each router's namespace on each of its interfaces, so
both sides of every NAT are in the files: DIR/ROUTER-INTERFACE.pcap, for
Wireshark, tshark or scapy. natlab starts each tcpdump, records it in the
lab's ledger (a `down` after a crash stops it too) and stops it by PID
before the lab goes down.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.processes import CAPTURE

STOP_TIMEOUT = 5.0


@contextmanager
def captured(lab: Lab, directory: Path) -> Iterator[list[Path]]:
    """Capture every router interface of lab into directory while the block runs."""
    wanted = [
        (router.name, iface.name, None)
        for router in lab.topology.routers.values()
        for iface in router.interfaces
    ]
    with capturing(lab, directory, wanted) as files:
        yield files


@contextmanager
def capturing(
    lab: Lab, directory: Path, wanted: list[tuple[str, str, str | None]], snaplen: int = 0
) -> Iterator[list[Path]]:
    """Capture each (router, interface, filter or None) into DIR/ROUTER-INTERFACE.pcap.

    snaplen 0 keeps whole packets; a smaller one only each packet's first bytes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    running: list[subprocess.Popen] = []
    files = []
    try:
        for router, iface, bpf in wanted:
            path = directory / f"{router}-{iface}.pcap"
            argv = ["tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-i", iface]
            argv += ["-w", str(path)]
            argv += ["-s", str(snaplen)] if snaplen else []
            argv += [bpf] if bpf else []
            try:
                process = lab.popen(router, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise NatlabError(
                    "capturing packets needs tcpdump", fix="install it: apt-get install tcpdump"
                ) from None
            running.append(process)
            lab.adopt(process.pid, router, CAPTURE)
            files.append(path)
        for process in running:
            _wait_listening(process)
        yield files
    finally:
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen) -> None:
    """tcpdump says "listening on ..." once it captures; anything else is its error."""
    assert process.stderr is not None
    line = process.stderr.readline().decode(errors="replace").strip()
    if "listening on" not in line:
        raise NatlabError(f"tcpdump did not start: {line or 'no output'}")
