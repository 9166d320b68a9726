"""Tables for people: what a lab looks like, what reached what."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from natlab.scenario.reachability import Probe
from natlab.topology.model import Host, Router, Topology
from natlab.topology.routing import plan_routes


def topology_table(topology: Topology, title: str, translates=lambda router: False) -> Table:
    """Nodes, interfaces, addresses and gateways as planned."""
    routes = plan_routes(topology, translates)
    table = Table(title=title, title_justify="left")
    for column in ("node", "kind", "interface", "addresses", "routes"):
        table.add_column(column)
    for node in topology.nodes.values():
        if isinstance(node, Router):
            preset = node.behaviour.preset_name() or "custom"
            kind = f"router ({preset})"
        else:
            kind = node.role.value if isinstance(node, Host) else ""
        for index, iface in enumerate(node.interfaces):
            table.add_row(
                node.name if index == 0 else "",
                kind if index == 0 else "",
                iface.name,
                " ".join(str(a) for a in iface.addresses),
                "\n".join(str(r) for r in routes[node.name]) if index == 0 else "",
                end_section=index == len(node.interfaces) - 1,
            )
    return table


def status_table(status: dict) -> Table:
    """A running lab as read back from the kernel."""
    state = status["state"]
    colour = "green" if state == "up" else "red"
    table = Table(
        title=f"lab {status['name']} ({status['topology']}): [{colour}]{state}[/]",
        title_justify="left",
    )
    for column in ("node", "kind", "namespace", "interface", "addresses", "routes"):
        table.add_column(column)
    for node in status["nodes"]:
        kind = f"router ({node['nat']})" if node["kind"] == "router" else node["role"]
        interfaces = node["interfaces"] or [{"name": "[red]missing[/]", "addresses": []}]
        routes = "\n".join(f"{r['destination']} via {r['via']}" for r in node["routes"])
        for index, iface in enumerate(interfaces):
            first = index == 0
            table.add_row(
                node["name"] if first else "",
                kind if first else "",
                node["namespace"] if first else "",
                iface["name"] + ("" if iface.get("up", True) else " [red](down)[/]"),
                " ".join(iface["addresses"]),
                routes if first else "",
                end_section=index == len(interfaces) - 1,
            )
    return table


def reach_table(probes: list[Probe]) -> Table:
    """Rows: who pinged; columns: whom; a cell counts the addresses reached."""
    sources = list(dict.fromkeys(p.source for p in probes))
    targets = list(dict.fromkeys(p.target for p in probes))
    table = Table(title="reachability (ping, addresses reached / tried)", title_justify="left")
    table.add_column("from \\ to")
    for target in targets:
        table.add_column(target, justify="center")
    for source in sources:
        cells = []
        for target in targets:
            tried = [p for p in probes if p.source == source and p.target == target]
            if not tried:
                cells.append("")
                continue
            reached = sum(p.reached for p in tried)
            colour = "green" if reached == len(tried) else ("red" if not reached else "yellow")
            cells.append(f"[{colour}]{reached}/{len(tried)}[/]")
        table.add_row(source, *cells)
    return table


def print_table(table: Table) -> None:
    Console().print(table)
