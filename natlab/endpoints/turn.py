"""A real TURN server (coturn) in a `turn-server` node, configured as public TURN services are.

The lab forks it into the node with its TurnConfig (run(config)). It
writes coturn's configuration (long-term credentials natlab/natlab,
relay ports on the node's own address, no TLS, no CLI, nothing read from
/etc), starts `turnserver` with it, and says "ready" once coturn answers a
STUN Binding request. Relaying to private and special addresses is denied,
as on a TURN service on the internet: a relay candidate can then only reach
a peer's public (server-reflexive or relayed) address, never its host one.

coturn dies with this process (PR_SET_PDEATHSIG), so the lab, which knows
only this process, never leaves a TURN server running behind it.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from natlab.endpoints.stun_client import StunClient
from natlab.stun import Address

PORT = 3478
USERNAME = "natlab"
PASSWORD = "natlab"
REALM = "natlab"
RELAY_PORTS = (49152, 65535)
START_TIMEOUT = 10.0
DENIED_PEERS = (  # RFC 1918, shared address space, loopback, link-local, "this network"
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.168.0.0-192.168.255.255",
)
PR_SET_PDEATHSIG = 1


def config_text(address: IPv4Address, port: int, state: Path) -> str:
    """coturn's configuration; state is the directory for its database and pid file."""
    lines = [
        f"listening-ip={address}",
        f"relay-ip={address}",
        f"listening-port={port}",
        f"min-port={RELAY_PORTS[0]}",
        f"max-port={RELAY_PORTS[1]}",
        "lt-cred-mech",
        f"user={USERNAME}:{PASSWORD}",
        f"realm={REALM}",
        "fingerprint",
        "no-tls",
        "no-dtls",
        "no-cli",
        "no-tcp-relay",
        "no-multicast-peers",
        "simple-log",
        "log-file=stdout",
        f"userdb={state / 'turndb'}",
        f"pidfile={state / 'turnserver.pid'}",
        *(f"denied-peer-ip={peers}" for peers in DENIED_PEERS),
    ]
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers(address: IPv4Address, port: int) -> bool:
    with StunClient.open(Address.of(str(address), 0)) as client:
        return client.binding(Address.of(str(address), port)) is not None


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


@dataclass(frozen=True)
class TurnConfig:
    address: IPv4Address  # the node's: coturn listens and relays there
    file: Path  # coturn's configuration, written here; its state goes beside it
    port: int = PORT


def run(config: TurnConfig) -> int:
    """Run coturn until SIGTERM; 2 if it is missing or does not start."""
    binary = shutil.which("turnserver")
    if binary is None:
        print("error: turnserver not found: install coturn (scripts/install.sh)", file=sys.stderr)
        return 2
    config.file.write_text(config_text(config.address, config.port, config.file.parent))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = subprocess.Popen([binary, "-c", str(config.file)], preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(config.address, config.port):
            if server.poll() is not None or time.monotonic() > deadline:
                print("error: coturn did not start", file=sys.stderr)
                return 2
        print("ready", f"turn {config.address}:{config.port}", flush=True)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(2.0)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
