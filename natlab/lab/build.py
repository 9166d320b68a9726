"""Make a topology real: namespaces, segments as bridges, veths, addresses, routes.

Segments are bridges in the lab's own switch namespace, never in the host's,
and every node is a namespace of its own joined to its segments by veths:
nothing in the lab has a link to the host's network.
"""

from __future__ import annotations

from natlab.lab.dns import kernel_services, router_sysctls
from natlab.lab.ledger import Ledger
from natlab.lab.naming import node_namespace, switch_namespace
from natlab.lab.routers import Dataplane
from natlab.plumbing import links, namespaces
from natlab.topology.model import Router, Topology
from natlab.topology.routing import plan_routes

# IPv6 stays off: a lab is IPv4, and router solicitations would only add noise.
QUIET = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}


def planned_namespaces(topology: Topology, lab: str) -> list[str]:
    return [switch_namespace(lab)] + [node_namespace(lab, n) for n in topology.nodes]


def build(topology: Topology, ledger: Ledger, dataplane: Dataplane) -> None:
    """Create everything; the ledger already names every namespace to be made."""
    lab = ledger.lab
    for name in ledger.namespaces:
        namespaces.create(name)
        namespaces.set_sysctls(name, QUIET)
    switch = switch_namespace(lab)
    with namespaces.netlink(switch) as ipr:
        bridges = {segment: links.add_bridge(ipr, segment) for segment in topology.segments}
        port = 0
        for node in topology.nodes.values():
            for iface in node.interfaces:
                links.add_veth(
                    ipr,
                    f"p{port}",
                    node_namespace(lab, node.name),
                    iface.name,
                    master=bridges[iface.segment],
                )
                port += 1
    routes = plan_routes(topology, dataplane.translates)
    for node in topology.nodes.values():
        namespace = node_namespace(lab, node.name)
        with namespaces.netlink(namespace) as ipr:
            links.bring_up(ipr, "lo")
            for iface in node.interfaces:
                index = links.bring_up(ipr, iface.name)
                for address in iface.addresses:
                    links.add_address(ipr, index, address)
            for route in routes[node.name]:
                links.add_route(ipr, route.destination, route.via)
        if isinstance(node, Router):  # its dataplane knows which offloads it cannot have
            if sysctls := router_sysctls(topology, node):
                namespaces.set_sysctls(namespace, sysctls)
            dataplane.configure(namespace, node, kernel_services(topology, node))
        else:
            links.disable_offloads(namespace, [iface.name for iface in node.interfaces])
