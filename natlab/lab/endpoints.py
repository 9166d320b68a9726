"""The processes a lab starts for its hosts' roles, and how it knows they serve.

- `stun-server`: the lab's public STUN server on its two addresses and ports
  3478 and 3479 (natlab.endpoints.stun_server);
- `turn-server`: coturn, as public TURN services configure it (natlab.endpoints.turn);
- `pbx`: registrar, signalling and media relay (natlab.endpoints.pbx), with
  TLS certificates from a CA made for this lab (ca/ in its state directory);
- `phone`: a phone (natlab.endpoints.phone) that registers with the PBX:
  at its LAN address when the phone's network sees it, else through the
  router that forwards TCP 5060/5061 (and UDP 5060) to it, as a remote
  phone would.

Each endpoint logs to hosts/NAME.log in the lab's state directory. `up`
returns only once every endpoint answers: a PBX or a phone its control
socket (hosts/NAME.sock), a STUN or TURN server a STUN Binding request
sent to it from inside its node. A phone registers in the background, and
its status (or `natlab status`) says when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from natlab.control_socket import answers
from natlab.endpoints import pbx, phone, stun_server, tls, turn
from natlab.endpoints.control import ask
from natlab.endpoints.ice import TurnServer
from natlab.endpoints.sip_dialogs import DEFAULT_PASSWORD as DEFAULT_SIP_PASSWORD
from natlab.endpoints.sip_transport import Endpoint
from natlab.endpoints.stun_client import STUN_PORT, StunClient, Timing
from natlab.errors import NatlabError
from natlab.lab.launch import wait_started
from natlab.plumbing import namespaces
from natlab.records import PingRequest
from natlab.stun import Address
from natlab.topology.model import Forward, Host, Role, Router, SipAccount, Topology
from natlab.topology.routing import sees

STUN_SERVER = "stun server"  # what the ledger calls each process
TURN_SERVER = "turn server"
PBX = "pbx"
PHONE = "phone"
READY_TIMEOUT = 10.0
READY_PROBE = Timing(tries=1, interval=0.05)  # one quick Binding per look: wait_started polls
STATUS_TIMEOUT = 1.0

Launch = Callable[[str, Callable[[], object], Path, str], int]
Translates = Callable[[Router], bool]


@dataclass(frozen=True)
class Started:
    host: str
    pid: int
    log: Path
    what: str = STUN_SERVER
    control: Path | None = None  # a PBX's or phone's control socket; else it answers STUN at
    stun: Endpoint | None = None  # this address and port


def hosts_dir(directory: Path) -> Path:
    return directory / "hosts"


def control_path(directory: Path, host: str) -> Path:
    """The control socket of a PBX or phone host, in the lab's state directory."""
    return hosts_dir(directory) / f"{host}.sock"


def ca_dir(directory: Path) -> Path:
    return directory / "ca"


def start_endpoints(
    topology: Topology, directory: Path, launch: Launch, translates: Translates
) -> list[Started]:
    """Start every role's process (all at once); wait_ready() tells when they serve."""
    hosts_dir(directory).mkdir(parents=True, exist_ok=True)
    pbxs = _hosts(topology, Role.PBX)
    phones = _hosts(topology, Role.PHONE)
    if pbxs:
        _make_certificates(topology, directory, pbxs, phones)
    # what runs on each host (its config, handed whole), and how to tell it serves:
    # (host, what, run, control, stun)
    runs: list[tuple[Host, str, Callable[[], object], Path | None, Endpoint | None]] = []
    for host in _hosts(topology, Role.STUN_SERVER):
        addresses = tuple(a.ip for a in host.interfaces[0].addresses)
        stun = (str(host.interfaces[0].address), 3478)
        config = stun_server.StunServerConfig(addresses)
        runs.append((host, STUN_SERVER, partial(stun_server.run, config), None, stun))
    for host in _hosts(topology, Role.TURN_SERVER):
        state = hosts_dir(directory) / f"{host.name}.turn"
        state.mkdir(exist_ok=True)
        config = turn.TurnConfig(host.interfaces[0].address, state / "turn.conf")
        stun = (str(config.address), config.port)
        runs.append((host, TURN_SERVER, partial(turn.run, config), None, stun))
    for host in _natlab_own(pbxs):
        run = partial(pbx.run, pbx_config(topology, host, directory, translates))
        runs.append((host, PBX, run, control_path(directory, host.name), None))
    for host in _natlab_own(phones):
        run = partial(phone.run, phone_config(topology, host, directory, translates))
        runs.append((host, PHONE, run, control_path(directory, host.name), None))
    started = []
    for host, what, run, control, stun in runs:
        log = hosts_dir(directory) / f"{host.name}.log"
        pid = launch(host.name, run, log, what)
        started.append(Started(host.name, pid, log, what, control, stun))
    return started


def wait_ready(
    started: list[Started], namespace: Callable[[str], str], timeout: float = READY_TIMEOUT
) -> None:
    """Return once every endpoint answers; namespace(host) names the host's namespace."""
    deadline = time.monotonic() + timeout
    for endpoint in started:
        what = f"the {endpoint.what} of host '{endpoint.host}'"
        ready = partial(_answers, endpoint, namespace(endpoint.host))
        wait_started(ready, endpoint.pid, endpoint.log, what, deadline)


def _answers(endpoint: Started, namespace: str) -> bool:
    if endpoint.control is not None:
        return answers(endpoint.control, PingRequest().to_json())
    assert endpoint.stun is not None
    server = Address.of(*endpoint.stun)
    with namespaces.entered(namespace):  # a socket made here stays in the host's namespace
        client = StunClient.open(Address.of(endpoint.stun[0], 0), READY_PROBE)
    with client:
        return client.binding(server) is not None


def phone_states(topology: Topology, directory: Path) -> dict[str, dict]:
    """Each phone's own status ({"registered": ...}); a phone that does not answer says why."""
    states = {}
    for host in _natlab_own(_hosts(topology, Role.PHONE)):
        try:
            states[host.name] = ask(
                control_path(directory, host.name), {"op": "status"}, STATUS_TIMEOUT
            )
        except NatlabError as error:
            states[host.name] = {"registered": False, "error": error.problem}
    return states


# -- who talks to whom, from the topology alone ------------------------------------------------


def _hosts(topology: Topology, role: Role) -> list[Host]:
    return [host for host in topology.hosts.values() if host.role is role]


def _natlab_own(hosts: list[Host]) -> list[Host]:
    """The hosts that run natlab's own endpoint, not real SIP software (lab/sip_software.py)."""
    return [host for host in hosts if host.sip_software is None]


def _gateway(topology: Topology, host: Host) -> Router | None:
    gateway = topology.segments[host.interfaces[0].segment].gateway
    return None if gateway is None else topology.routers[gateway]


def _forwarded(router: Router, proto: str, host: str, port: int) -> int | None:
    """The router's external port that a static map sends to host's internal port, if any."""
    for forward in router.forwards:
        low, high = forward.internal_ports
        if forward.proto == proto and forward.host == host and low <= port <= high:
            return forward.external_ports[0] + port - low
    return None


# Each way to register: the PBX's protocol and port behind it.
PBX_PORTS = {
    "tcp": ("tcp", pbx.SIP_PORT),
    "tls": ("tcp", pbx.SIPS_PORT),
    "udp": ("udp", pbx.SIP_PORT),
}


def pbx_endpoints(
    topology: Topology, caller: Host, server: Host, translates: Translates
) -> dict[str, Endpoint | None]:
    """Where caller reaches the PBX over each of tcp, tls and udp (None: it cannot).

    Its own address from a network that sees the PBX's; otherwise the WAN
    address of the PBX's router, if that router forwards the port to it.
    """
    segment = server.interfaces[0].segment
    if sees(topology, translates, caller, segment):
        address = str(server.interfaces[0].address)
        return {way: (address, port) for way, (_, port) in PBX_PORTS.items()}
    router = _gateway(topology, server)
    if router is None or not sees(topology, translates, caller, router.wan.segment):
        return dict.fromkeys(PBX_PORTS)
    wan = str(router.wan.address)
    found = {
        way: _forwarded(router, proto, server.name, port)
        for way, (proto, port) in PBX_PORTS.items()
    }
    return {way: None if port is None else (wan, port) for way, port in found.items()}


def pbx_config(
    topology: Topology, server: Host, directory: Path, translates: Translates
) -> pbx.PbxConfig:
    public, relay_ports, offset = None, None, 0
    router = _gateway(topology, server)
    if router is not None and translates(router):
        public = router.wan.address
        relay = next((f for f in router.forwards if _relay_forward(f, server.name)), None)
        if relay is not None:
            relay_ports = relay.internal_ports
            offset = relay.external_ports[0] - relay.internal_ports[0]
    return pbx.PbxConfig(
        name=server.name,
        address=server.interfaces[0].address,
        control=control_path(directory, server.name),
        tls_port=pbx.SIPS_PORT,
        ca=ca_dir(directory),
        public=public,
        relay_ports=relay_ports,
        relay_public_offset=offset,
        local=tuple(local_networks(topology, server, translates)),
        passwords={
            account.user: account.password
            for phone_host in _hosts(topology, Role.PHONE)
            for account in [sip_account(phone_host)]
        },
        nat_aware=server.nat_aware,
        relay=server.relay,
    )


def _relay_forward(forward: Forward, server: str) -> bool:
    """A UDP forward to the PBX is its media relay's ports, unless it is its signalling port."""
    low, high = forward.internal_ports
    return forward.proto == "udp" and forward.host == server and not low <= pbx.SIP_PORT <= high


def local_networks(topology: Topology, server: Host, translates: Translates) -> list[IPv4Network]:
    """The subnets whose hosts reach the PBX at its own address (no NAT in between)."""
    segment = server.interfaces[0].segment
    return [
        topology.segments[name].subnet
        for name in topology.segments
        if any(
            host.interfaces[0].segment == name and sees(topology, translates, host, segment)
            for host in topology.hosts.values()
        )
    ]


def stun_servers(topology: Topology) -> list[Endpoint]:
    """Every STUN service of the lab: the public servers, then the routers' responders."""
    found = [(str(host.interfaces[0].address), 3478) for host in _hosts(topology, Role.STUN_SERVER)]
    found += [
        (str(router.wan.address), router.stun.port)
        for router in topology.routers.values()
        if router.stun is not None
    ]
    return found


def phone_config(
    topology: Topology, host: Host, directory: Path, translates: Translates
) -> phone.PhoneConfig:
    servers = _hosts(topology, Role.PBX)
    found = pbx_endpoints(topology, host, servers[0], translates) if servers else {}
    relays = _hosts(topology, Role.TURN_SERVER)
    relay = None
    if relays:
        address = (str(relays[0].interfaces[0].address), turn.PORT)
        relay = TurnServer(address, turn.USERNAME, turn.PASSWORD)
    named = topology.dns
    if named is not None and named.pbx is not None:
        # By name, at the port natlab worked out: the phone's resolver says which address.
        found = {way: None if e is None else (named.pbx, e[1]) for way, e in found.items()}
    stun = stun_servers(topology)
    if named is not None and named.stun:
        stun = [(name, STUN_PORT) for name in named.stun]
    account = sip_account(host)
    return phone.PhoneConfig(
        name=host.name,
        address=host.interfaces[0].address,
        control=control_path(directory, host.name),
        pbx=found.get("tcp"),
        pbx_tls=found.get("tls"),
        pbx_udp=found.get("udp"),
        ca=ca_dir(directory),
        stun=tuple(stun),
        turn=relay,
        user=account.user,
        password=account.password,
        keepalive_method=account.keepalive,
        transport=account.transport or phone.TRANSPORT,
        pbx_name=servers[0].name if servers else None,
    )


def sip_account(host: Host) -> SipAccount:
    """A phone's SIP credentials: the topology's, else its name and the default password."""
    return host.sip or SipAccount(host.name, DEFAULT_SIP_PASSWORD)


def _make_certificates(
    topology: Topology,
    directory: Path,
    pbxs: list[Host],
    phones: list[Host],
) -> None:
    """The lab's CA; each PBX's certificate names every address phones dial it at, and each
    phone's its own address."""
    where = ca_dir(directory)
    tls.create_ca(where, directory.name)
    for server in pbxs:
        addresses: set[IPv4Address] = {server.interfaces[0].address}
        router = _gateway(topology, server)
        if router is not None:
            addresses.add(router.wan.address)
        names = [topology.dns.pbx] if topology.dns is not None and topology.dns.pbx else []
        tls.issue(where, server.name, sorted(addresses), names)
    for host in phones:  # naming its address too: a phone takes TLS connections
        tls.issue(where, host.name, [host.interfaces[0].address])
