"""`natlab probe`: RFC 5780 behaviour discovery run from inside a node of a lab.

The discovery client (natlab.endpoints.discovery) runs inside the node as
a process of its own and prints its report as JSON. With the lifetime
test it runs with --lab-clock: where it would sleep it asks for the lab's
clock to be advanced instead ("advance SECONDS" on its stdout), and this
side does so and says "ok" on its stdin. A lifetime of minutes is then
measured in a few seconds, and what ages is exactly what a real wait
would age: the NAT routers' mappings (every router's in the lab).
"""

from __future__ import annotations

import json
import subprocess
import sys

from natlab.endpoints.discovery import ADVANCE
from natlab.endpoints.stun_client import STUN_PORT, parse_server
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.records import AnswerError, ProbeReport, answer
from natlab.topology.model import Role, Router, Topology

LIFETIME_LONGEST = 600.0  # beyond natlab's default UDP timeout (120 s): it shows as a bound
LIFETIME_RESOLUTION = 1.0  # the lab clock makes every step cheap


def stun_server(topology: Topology, node: str, server: str | None = None) -> str:
    """The "ADDR:PORT" a probe from `node` asks.

    `server` may name a node of the topology (its first address; a router's
    is its WAN, with its responder's port) or be ADDR[:PORT]. By default:
    the first stun-server host, else the built-in responder of the router
    in front of `node`.
    """
    if server is not None:
        name, port = parse_server(server, default_port=0)  # 0: no port given
        target = topology.nodes.get(name)
        if target is None:
            return f"{name}:{port or STUN_PORT}"
        if isinstance(target, Router):
            if target.stun is None:
                raise NatlabError(
                    f"router '{name}' has no STUN responder",
                    field="--server",
                    fix=f"set stun: true on router {name}, or name another server",
                )
            port = port or target.stun.port
        return f"{target.interfaces[0].address}:{port or STUN_PORT}"
    for host in topology.hosts.values():
        if host.role is Role.STUN_SERVER:
            return f"{host.interfaces[0].address}:{STUN_PORT}"
    gateway = topology.segments[topology.node(node).interfaces[0].segment].gateway
    router = topology.routers.get(gateway or "")
    if router is None or router.stun is None:
        raise NatlabError(
            f"topology '{topology.name}' has no STUN server for a probe from '{node}'",
            field="--server",
            fix="give --server ADDR[:PORT], add a host with role: stun-server, "
            f"or set stun: true on {f'router {gateway}' if gateway else 'a router'}",
        )
    return f"{router.wan.address}:{router.stun.port}"


def discover(lab: Lab, node: str, server: str | None = None, lifetime: bool = False) -> ProbeReport:
    """Discover the NAT behaviour `node` sees: the discovery client's report."""
    if isinstance(lab.topology.node(node), Router):
        raise NatlabError(
            f"'{node}' is a router: its daemon owns its packets, so probe from a host",
            fix="name a host behind the router, e.g. one on its LAN",
        )
    argv = [
        sys.executable,
        "-m",
        "natlab.endpoints.discovery",
        "--json",
        "--server",
        stun_server(lab.topology, node, server),
    ]
    if lifetime:
        argv += ["--lifetime", str(LIFETIME_LONGEST), "--resolution", str(LIFETIME_RESOLUTION)]
        argv += ["--lab-clock"]
    with lab.popen(
        node,
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin and process.stdout and process.stderr
        report = ""
        for line in process.stdout:
            if line.startswith(f"{ADVANCE} "):
                lab.advance_clock(float(line.split()[1]))
                process.stdin.write("ok\n")
                process.stdin.flush()
            else:
                report += line
        error = process.stderr.read().strip()
        code = process.wait()  # the client gives up on silent servers by itself
    if code != 0:  # the client's own message, with its fix, says what went wrong
        raise NatlabError(f"probe from '{node}' failed: {error.removeprefix('error: ') or code}")
    try:
        data = json.loads(report)
    except ValueError:
        raise AnswerError(f"probe from '{node}': the discovery client printed no JSON") from None
    return answer(ProbeReport, data, "the discovery client")


def summary(report: ProbeReport) -> list[tuple[str, str]]:
    """The report as (what, seen) rows for a person."""
    lifetime = report.lifetime
    rows = [
        ("STUN server", f"{report.server} (other address: {report.other or 'none'})"),
        ("local address", report.local),
        ("mapped address", report.mapped),
        ("mapping", report.mapping or "unknown"),
        ("filtering", report.filtering or "unknown"),
        ("hairpinning", {True: "yes", False: "no", None: "not tested"}[report.hairpin]),
    ]
    if lifetime is not None:
        if lifetime.expires is None:
            seen = f"longer than {lifetime.survives:g} s"
        else:
            seen = f"{lifetime.survives:g} s to {lifetime.expires:g} s"
        rows.append(("binding lifetime", seen))
    if report.name is not None:
        name = report.name
    elif report.mapping and report.filtering:
        name = "none (no preset has these axes)"
    else:
        name = "unknown"
    rows.append(("classic name", name))
    rows += [("note", note) for note in report.notes]
    return rows
