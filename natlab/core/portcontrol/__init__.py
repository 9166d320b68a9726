"""Port control on a router's LAN side: PCP, NAT-PMP and UPnP IGD, as pure logic.

Each protocol module reads a request (bytes from the wire, bounded), asks
the NAT engine for an explicit mapping (NatEngine.map_port and friends,
with the protocol as the mapping's origin and a lifetime), and builds the
answer. Nothing here opens a socket or reads a clock: the router daemon
hands in the bytes, who sent them and the time, and sends what comes back.
A request that cannot be read gets the protocol's error answer (or none,
where the protocol says to stay silent); nothing raises past `handle`.

- pcp.py: RFC 6887 MAP, PEER and ANNOUNCE on UDP 5351 (version 2);
- natpmp.py: RFC 6886 on the same port (version 0);
- upnp.py: UPnP IGD 1: SSDP answers, the device description and the SOAP
  control actions of WANIPConnection;
- service.py: which of them a router runs, and the dispatch on port 5351.
"""


def quiet(refusal: str) -> None:
    """Where a server tells its refusals when nobody listens (tests, benchmarks)."""


class Refused(Exception):
    """A request the protocol answers with an error: `code` is that protocol's own code."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code
