"""A call between two phones over simulated NATs: the pure counterpart of a `natlab matrix` pair.

The shape is main-branch's (topologies/main-branch.yaml): phone-b behind
branch1 calls phone-c behind branch2, both routers on the internet with a
STUN server; each router's NAT is the preset natlab.scenario.expectations
names for the pair's type (a "public" phone's router only routes, so its
LAN is reachable from the internet). Both phones gather, exchange their
candidates out of band (the offer reaches the callee first, the answer the
caller a little later, as signalling through a PBX would), run their ICE
checks, and each sends a call's worth of RTP on its best valid pair. The
verdict is computed from the RTP counts, with the function the lab's
phones use, so it speaks the table's words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from natlab.core.behaviour import PRESETS, Behaviour
from natlab.endpoints.media import INTERVAL, verdict
from natlab.scenario.expectations import nat_preset
from natlab.scenario.matrix import CALL_SECONDS, CALLEE, CALLEE_ROUTER, CALLER, CALLER_ROUTER

from .ice import Agent
from .network import Network, Router, StunServer

STUN_SERVER = "203.0.113.4"
SITES = {  # router: (WAN address, LAN)
    CALLER_ROUTER: ("203.0.113.2", "10.1.0.0/24"),
    CALLEE_ROUTER: ("203.0.113.3", "10.2.0.0/24"),
}
CALLER_AT, CALLEE_AT = ("10.1.0.2", 40000), ("10.2.0.2", 40002)
NEIGHBOUR_AT = ("10.1.0.3", 40002)  # the callee when both phones share branch1's LAN
SIGNALLING = 0.1  # seconds for the offer (or the answer) to reach the other phone
ICE_LIMIT = 60.0  # longer than any check's transaction (RFC 8489: 39.5 s)
CALL_PACKETS = round(CALL_SECONDS / INTERVAL)


@dataclass
class Call:
    """What happened: the media verdict, and the agents and routers to ask why."""

    verdict: str
    caller: Agent
    callee: Agent
    routers: list[Router]
    network: Network

    def story(self) -> str:
        """Each phone's ICE log and every packet lost, for a failing test's message."""
        lines = [f"verdict: {self.verdict}"]
        for agent in (self.caller, self.callee):
            lines += [f"{agent.name}:", *(f"  {line}" for line in agent.log)]
        lines += ["lost:", *(f"  {line}" for line in self.network.losses)]
        return "\n".join(lines)


def behaviour(kind: str, **overrides: object) -> Behaviour:
    """The router behaviour behind a matrix type, with knobs overridden."""
    return replace(PRESETS[nat_preset(kind)], **overrides)


def matrix_pair(caller_type: str, callee_type: str) -> Call:
    """phone-b behind branch1 of `caller_type` calls phone-c behind branch2 of `callee_type`."""
    network = Network()
    stun = StunServer(network, STUN_SERVER)
    branch1 = Router(network, CALLER_ROUTER, *SITES[CALLER_ROUTER], behaviour(caller_type))
    branch2 = Router(network, CALLEE_ROUTER, *SITES[CALLEE_ROUTER], behaviour(callee_type))
    caller = Agent(
        network, branch1.add_host(CALLER_AT[0]), CALLER_AT[1], CALLER, True, stun.endpoint
    )
    callee = Agent(
        network, branch2.add_host(CALLEE_AT[0]), CALLEE_AT[1], CALLEE, False, stun.endpoint
    )
    return place_call(network, caller, callee, [branch1, branch2])


def same_router(kind: str, *, offer_host: bool = True, hairpin: bool = True) -> Call:
    """phone-b calls a neighbour on branch1's LAN; without host candidates, through the WAN."""
    network = Network()
    stun = StunServer(network, STUN_SERVER)
    branch1 = Router(
        network, CALLER_ROUTER, *SITES[CALLER_ROUTER], behaviour(kind, hairpin=hairpin)
    )
    phones = [
        Agent(
            network,
            branch1.add_host(address),
            port,
            name,
            name == CALLER,
            stun.endpoint,
            offer_host=offer_host,
        )
        for name, (address, port) in ((CALLER, CALLER_AT), (CALLEE, NEIGHBOUR_AT))
    ]
    return place_call(network, *phones, [branch1])


def place_call(network: Network, caller: Agent, callee: Agent, routers: list[Router]) -> Call:
    """Gather, exchange candidates, check until both have a valid pair (or give up), talk."""
    caller.gather()
    callee.gather()
    network.run(network.now + ICE_LIMIT, lambda: caller.gathered and callee.gathered)
    offer, answer = caller.offer(), callee.offer()
    network.later(SIGNALLING, lambda: callee.start_checks(offer))
    network.later(2 * SIGNALLING, lambda: caller.start_checks(answer))
    network.run(network.now + ICE_LIMIT, lambda: bool(caller.valid and callee.valid))
    caller.send_media(CALL_PACKETS)
    callee.send_media(CALL_PACKETS)
    network.run(network.now + CALL_SECONDS + 1.0)
    return Call(verdict(caller.media.counts, callee.media.counts), caller, callee, routers, network)
