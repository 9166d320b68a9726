"""Which routes each node needs, computed from the topology alone.

Every node's default route points at the gateway of the segment it hangs
from (a router's WAN segment, a host's segment). A router that translates
hides its LANs; one that only routes (preset `none`, or the kernel
forwarding of a lab without NAT) makes them reachable: every other node on
its WAN segment gets a route to all subnets behind it, via its WAN address.
"""

from __future__ import annotations

from collections.abc import Callable

from natlab.topology.model import Node, Route, Router, Topology


def plan_routes(
    topology: Topology, translates: Callable[[Router], bool]
) -> dict[str, tuple[Route, ...]]:
    routes: dict[str, list[Route]] = {name: [] for name in topology.nodes}
    for node in topology.nodes.values():
        uplink = node.wan if isinstance(node, Router) else node.interfaces[0]
        gateway = topology.segments[uplink.segment].gateway
        if gateway is not None and gateway != node.name:
            via = topology.routers[gateway].interface_on(uplink.segment)
            routes[node.name].append(Route(None, via.address))
    for router in topology.routers.values():
        if translates(router):
            continue
        behind = _routed_subnets(topology, router, translates)
        for neighbour in _on_segment(topology, router.wan.segment):
            if neighbour.name != router.name:
                routes[neighbour.name].extend(Route(net, router.wan.address) for net in behind)
    return {name: tuple(found) for name, found in routes.items()}


def _routed_subnets(topology: Topology, router: Router, translates: Callable[[Router], bool]):
    """Subnets reachable through a non-translating router: its LANs and what they route."""
    subnets = []
    for lan in router.lans:
        subnets.append(topology.segments[lan.segment].subnet)
        for inner in topology.routers.values():
            if inner.wan.segment == lan.segment and not translates(inner):
                subnets.extend(_routed_subnets(topology, inner, translates))
    return subnets


def _on_segment(topology: Topology, segment: str) -> list[Node]:
    return [node for node in topology.nodes.values() if node.interface_on(segment)]


def sees(
    topology: Topology, translates: Callable[[Router], bool], source: Node, segment: str
) -> bool:
    """Can source reach addresses on segment, NAT permitting?

    A translating router hides its LANs (one realm for all of them) from its
    WAN side; a routing one joins them to its WAN's realm. A node sees its
    own realm and every realm above it, never one below or beside.
    """

    def realm(name: str) -> str:
        gateway = topology.segments[name].gateway
        if gateway is None:
            return name
        router = topology.routers[gateway]
        return f"behind {gateway}" if translates(router) else realm(router.wan.segment)

    def parent(name: str) -> str | None:
        if not name.startswith("behind "):
            return None
        return realm(topology.routers[name.removeprefix("behind ")].wan.segment)

    uplink = source.wan if isinstance(source, Router) else source.interfaces[0]
    target = realm(segment)
    current: str | None = realm(uplink.segment)
    while current is not None:
        if current == target:
            return True
        current = parent(current)
    return False
