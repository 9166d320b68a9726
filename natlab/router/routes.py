"""Where the daemon sends a packet: longest-prefix match over connected subnets and routes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from natlab.router.ports import Port

CACHE_MAX = 65536


class RouteTable:
    """The router's own routing table, built from its ports and the lab's route plan."""

    def __init__(self, ports: list[Port], routes: tuple[tuple[str, str], ...]) -> None:
        entries: list[tuple[IPv4Network, Port, str | None]] = []
        for port in ports:
            for address in port.addresses:
                entries.append((address.network, port, None))  # connected: next hop is dst
        for destination, via in routes:
            port = next((p for p in ports if p.on_link(via)), None)
            if port is not None:
                entries.append((IPv4Network(destination), port, via))
        entries.sort(key=lambda entry: entry[0].prefixlen, reverse=True)
        self.entries = entries
        self.cache: dict[str, tuple[Port, str] | None] = {}

    def lookup(self, destination: str) -> tuple[Port, str] | None:
        """The port and next hop for destination, or None if there is no route."""
        try:
            return self.cache[destination]
        except KeyError:
            pass
        ip = IPv4Address(destination)
        found = next(
            ((port, via or destination) for net, port, via in self.entries if ip in net), None
        )
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
        self.cache[destination] = found
        return found
