"""What the router daemon does with an IPv4 packet before any NAT decision: a pure function.

The daemon knows which port a packet came in by and where it is going; the
question here is only which way it goes next, in this order:

1. To one of the router's own addresses: an echo request is answered by
   the router itself (from the WAN, unless the engine finds its source a
   martian: `NatEngine.martian`). Anything else for the router that came
   from a LAN and is not for an external address is dropped: the router
   serves nothing there (for an external address it goes on to the NAT,
   which hairpins it or hands it to the built-in STUN responder).
2. From the WAN: to an external address it goes through the engine's
   `inbound`. Anything else is not ours when the router translates (no one
   outside can address the LAN behind a NAT); a router that only routes
   hands it to `inbound` too, which passes it on once it has dropped
   martian sources.
3. From a LAN to an internal network (another LAN of this router): routed
   as is, the NAT has no part in it.
4. From a LAN to a destination that is neither external nor routed: dropped
   as no-route before the engine, so that a packet going nowhere makes no
   mapping.
5. Anything else from a LAN goes through the engine's `outbound`.

Routing and the internal networks come in as functions, so the daemon keeps
its caches and this module keeps no state and opens nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    """The next step for a packet; the daemon's counter for a drop is `dropped_<value>`."""

    ANSWER_PING = "answer-ping"  # an echo request to the router: the router replies
    TO_ROUTER = "to-router"  # drop: for the router, from a LAN, not a ping
    INBOUND = "inbound"  # NatEngine.inbound
    NOT_FOR_US = "not-for-us"  # drop: from the WAN, not external, and the router translates
    ROUTE = "route"  # forward unchanged by the route table
    NO_ROUTE = "no-route"  # drop: nowhere to send it
    OUTBOUND = "outbound"  # NatEngine.outbound

    @property
    def counter(self) -> str:
        return "dropped_" + self.name.lower()


# Each step as a plain name too: on Python 3.11 every `Step.X` is a class lookup of about
# 75 ns, and this runs for every packet the daemon's flow cache does not know.
ANSWER_PING, TO_ROUTER, INBOUND, NOT_FOR_US, ROUTE, NO_ROUTE, OUTBOUND = (
    Step.ANSWER_PING,
    Step.TO_ROUTER,
    Step.INBOUND,
    Step.NOT_FOR_US,
    Step.ROUTE,
    Step.NO_ROUTE,
    Step.OUTBOUND,
)


@dataclass(frozen=True)
class Forwarding:
    """One router's addresses and mode, asked about one packet at a time.

    `own`: every address of every port; `external`: the WAN addresses (a
    subset of `own`); `internal(address)`: is it in one of the internal
    networks; `routed(address)`: does the route table have a route for it.
    """

    own: Collection[str]
    external: Collection[str]
    translate: bool
    internal: Callable[[str], bool]
    routed: Callable[[str], bool]

    def step(self, from_wan: bool, destination: str, echo_request: bool) -> Step:
        """Where a packet that came in by the WAN (or a LAN) for `destination` goes next."""
        external = destination in self.external
        if destination in self.own:
            if echo_request:
                return ANSWER_PING
            if not from_wan and not external:
                return TO_ROUTER
        if from_wan:
            return INBOUND if external or not self.translate else NOT_FOR_US
        if self.internal(destination):
            return ROUTE
        if not external and not self.routed(destination):
            return NO_ROUTE
        return OUTBOUND
