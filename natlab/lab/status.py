"""What a lab really is right now, read back from the kernel, for people and scripts."""

from __future__ import annotations

from natlab.lab import programs
from natlab.lab.endpoints import phone_states
from natlab.lab.ledger import Ledger
from natlab.lab.naming import node_namespace
from natlab.lab.processes import TRANSIENT
from natlab.plumbing import namespaces
from natlab.topology.model import Host, Router, Topology


def describe(topology: Topology, ledger: Ledger) -> dict:
    """A JSON-ready description: nodes, interfaces, addresses, gateways, processes, problems."""
    problems: list[str] = []
    nodes = []
    # What each phone says of its registration, which goes on after `up` returned.
    phones = phone_states(topology, ledger.directory) if ledger.state == "up" else {}
    running = programs.states(ledger.directory, ledger.processes)
    for node in topology.nodes.values():
        namespace = node_namespace(ledger.lab, node.name)
        entry: dict = {
            "name": node.name,
            "kind": "router" if isinstance(node, Router) else "host",
            "role": node.role.value if isinstance(node, Host) else "router",
            "namespace": namespace,
            "present": namespaces.exists(namespace),
            "interfaces": [],
            "routes": [],
        }
        if isinstance(node, Router):
            entry["nat"] = node.behaviour.preset_name() or "custom"
        if node.name in phones:
            entry["registration"] = phones[node.name]
        if node.name in running:
            log = programs.log_path(ledger.directory, node.name)
            entry["program"] = {**running[node.name], "log": str(log)}
        if entry["present"]:
            entry["interfaces"], entry["routes"] = _read_back(namespace)
        else:
            problems.append(f"node {node.name}: namespace {namespace} is missing")
        nodes.append(entry)
    processes = []
    for process in ledger.processes:
        alive = process.alive()
        processes.append({**process.as_json(), "alive": alive})
        if not alive and process.what not in TRANSIENT:
            problems.append(f"node {process.node}: {process.what} (pid {process.pid}) died")
    if ledger.state != "up":
        problems.append(
            f"lab is {ledger.state}"
            + (
                ""
                if ledger.building_elsewhere()
                else " but its creator is gone: take it down with 'natlab down'"
            )
        )
    return {
        "name": ledger.lab,
        "topology": ledger.topology,
        "state": ledger.state if not problems else "degraded",
        "problems": problems,
        "nodes": nodes,
        "processes": processes,
    }


def _read_back(namespace: str) -> tuple[list[dict], list[dict]]:
    with namespaces.netlink(namespace) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        states = {link["index"]: link["flags"] & 1 for link in ipr.get_links()}
        addresses: dict[int, list[str]] = {}
        for addr in ipr.get_addr(family=2):
            addresses.setdefault(addr["index"], []).append(
                f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}"
            )
        routes = []
        for route in ipr.get_routes(family=2, table=254):
            gateway = route.get_attr("RTA_GATEWAY")
            if gateway is None:
                continue  # connected routes say nothing the addresses don't
            destination = route.get_attr("RTA_DST")
            routes.append(
                {
                    "destination": f"{destination}/{route['dst_len']}"
                    if destination
                    else "default",
                    "via": gateway,
                }
            )
    interfaces = [
        {"name": name, "up": bool(states[index]), "addresses": addresses.get(index, [])}
        for index, name in sorted(names.items())
        if name != "lo"
    ]
    return interfaces, routes
