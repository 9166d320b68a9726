"""Real SIP software in nodes: a phone's `agent: baresip`, a PBX's `server: kamailio`.

natlab writes each one's configuration into sip/NODE/ in the lab's state
directory (natlab.endpoints.baresip, natlab.endpoints.kamailio) and starts it
as a user's `run:` program is started (natlab.lab.programs): under a
supervisor, its output in nodes/NODE.log, recorded in the ledger, ended at
`down`. SIP servers start before natlab's own phones, so those find their
registrar serving; softphones start after natlab's own endpoints.

`up` goes on only once each answers: kamailio a SIP OPTIONS sent to it from
inside its node, baresip a command on its control port. One that ends or
does not answer in time fails `up` (which then takes down what it built),
and the error quotes the last lines of its log; one that ends later is a
fault of the lab (deaths(), part of Lab.deaths()), with those lines too.

Phones' credentials are the topology's (`sip:`, else the node's name and
natlab's default password), for baresip's account and kamailio's users alike.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from natlab.endpoints import baresip, kamailio
from natlab.errors import NatlabError
from natlab.lab import programs
from natlab.lab.baresip import BaresipPhone
from natlab.lab.endpoints import Launch, Translates, pbx_endpoints, sip_account, stun_servers
from natlab.lab.launch import log_tail
from natlab.lab.naming import node_namespace
from natlab.lab.processes import Death, ProcessRecord
from natlab.plumbing import namespaces
from natlab.sip.errors import SipError
from natlab.sip.message import StatusLine, parse
from natlab.topology.model import Host, Role, Topology

READY_TIMEOUT = 15.0  # seconds for each to answer
POLL = 0.1
PACKAGES = {baresip.BINARY: baresip.PACKAGE, kamailio.BINARY: kamailio.PACKAGE}


def sip_dir(directory: Path, node: str) -> Path:
    """Where natlab writes a node's SIP software's configuration."""
    return directory / "sip" / node


def _key(host: Host) -> str:
    """The topology field that names the host's SIP software."""
    return "agent" if host.agent else "server"


def check_binaries(topology: Topology, path: str | None) -> None:
    """Refuse, before building, a topology whose SIP software is not installed."""
    for host in topology.hosts.values():
        name = host.sip_software
        if name is not None and shutil.which(name, path=path) is None:
            raise NatlabError(
                f"{name} is not installed (not found in PATH)",
                file=topology.source,
                field=f"hosts.{host.name}.{_key(host)}",
                fix=f"install the Debian package {PACKAGES[name]} (scripts/install.sh), "
                f"or leave out {_key(host)}: to run natlab's own",
            )


def start_servers(
    topology: Topology, lab: str, directory: Path, launch: Launch, keep: programs.Keep
) -> None:
    """Start every PBX's SIP server, and return once each answers an OPTIONS."""
    for host in topology.hosts.values():
        if host.server is None:
            continue
        config = kamailio.KamailioConfig(
            address=host.interfaces[0].address,
            aliases=tuple(_aliases(topology, host)),
            users={
                sip_account(h).user: sip_account(h).password
                for h in topology.hosts.values()
                if h.role is Role.PHONE
            },
            runtime=sip_dir(directory, host.name) / "run",
        )
        argv = kamailio.write(config, sip_dir(directory, host.name))
        _start(topology, lab, directory, launch, keep, host, argv)
        namespace = node_namespace(lab, host.name)
        _wait(directory, host, partial(_answers_options, namespace, str(config.address)))


def start_agents(
    topology: Topology,
    lab: str,
    directory: Path,
    launch: Launch,
    keep: programs.Keep,
    translates: Translates,
) -> None:
    """Start every phone's softphone, and return once each answers on its control port."""
    for host in topology.hosts.values():
        if host.agent is None:
            continue
        config = baresip_config(topology, host, translates)
        argv = baresip.write(config, sip_dir(directory, host.name))
        _start(topology, lab, directory, launch, keep, host, argv)
        phone = BaresipPhone(host.name, node_namespace(lab, host.name))
        _wait(directory, host, partial(_answers_control, phone))


def baresip_config(topology: Topology, host: Host, translates: Translates) -> baresip.BaresipConfig:
    """A baresip phone's account: the lab's first PBX, where the phone reaches it over its
    transport (none: no registration), and the lab's first STUN service."""
    servers = [h for h in topology.hosts.values() if h.role is Role.PBX]
    stun = stun_servers(topology)
    account = sip_account(host)
    transport = account.transport or baresip.TRANSPORT
    registrar = (
        pbx_endpoints(topology, host, servers[0], translates)[transport] if servers else None
    )
    return baresip.BaresipConfig(
        user=account.user,
        address=host.interfaces[0].address,
        registrar=registrar,
        password=account.password,
        stun=stun[0] if stun else None,
        transport=transport,
    )


def deaths(topology: Topology, directory: Path, records: Sequence[ProcessRecord]) -> list[Death]:
    """The SIP software that has stopped running, each with its log's last lines.

    They stand in for natlab's own phones and PBX, so one that ends while the
    lab is up is a fault of the lab, as a dead PBX is (a user's `run:` is not).
    """
    found = []
    for host in topology.hosts.values():
        if host.sip_software is None:
            continue
        state = programs.current_state(directory, host.name, records)
        if state is None or state["state"] == "running":
            continue
        found.append(
            Death(
                host.name,
                host.sip_software,
                state.get("pid") or 0,
                state.get("code"),
                state.get("signal"),
                log=log_tail(programs.log_path(directory, host.name), 3),
            )
        )
    return found


def _aliases(topology: Topology, server: Host) -> list[tuple[str, int]]:
    """Where phones elsewhere reach the server: its router's WAN, if that forwards to it."""
    found = set()
    for host in topology.hosts.values():
        for endpoint in pbx_endpoints(topology, host, server, lambda _: True).values():
            if endpoint is not None and endpoint[0] != str(server.interfaces[0].address):
                found.add(endpoint)
    return sorted(found)


def _start(
    topology: Topology,
    lab: str,
    directory: Path,
    launch: Launch,
    keep: programs.Keep,
    host: Host,
    argv: tuple[str, ...],
) -> None:
    env = {**os.environ, **programs.program_env(topology, lab, host.name)}
    programs.start(launch, keep, directory, host.name, argv, env)


def _wait(directory: Path, host: Host, ready: Callable[[], bool]) -> None:
    """Poll ready() until it holds; fail with the log's last lines if the program ends first
    or time runs out."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        state = programs.read_state(directory, host.name)
        ended = state is not None and state["state"] != "running"
        if ended or time.monotonic() > deadline:
            how = programs.describe(state) if ended and state else "does not answer"
            raise NatlabError(
                f"{host.sip_software} of host '{host.name}' did not start ({how})",
                fix=f"its log says: {log_tail(programs.log_path(directory, host.name))}",
            )
        time.sleep(POLL)


def _answers_options(namespace: str, address: str) -> bool:
    """Does the SIP server answer an OPTIONS to itself with 200, from inside its node?"""
    with namespaces.entered(namespace):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with probe:
        probe.bind((address, 0))
        probe.settimeout(POLL * 3)
        source = probe.getsockname()
        tag = secrets.token_hex(6)
        probe.sendto(kamailio.options_request(address, source, tag), (address, kamailio.SIP_PORT))
        try:
            reply = parse(probe.recv(65536))
        except (OSError, SipError):
            return False
    return isinstance(reply.start, StatusLine) and reply.start.code == 200


def _answers_control(phone: BaresipPhone) -> bool:
    try:
        phone.ask("reginfo")
    except NatlabError:
        return False
    return True
