"""The daemon's per-packet step, before the NAT: every branch, and what may never happen."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.router.forwarding import Forwarding, Step

WAN, WAN2, LAN_GATEWAY = "203.0.113.1", "203.0.113.9", "10.0.0.1"
INTERNAL = (IPv4Network("10.0.0.0/24"), IPv4Network("10.9.0.0/24"))
UNROUTED = IPv4Network("192.0.2.0/24")  # the route table has no route there


def router(translate: bool = True) -> Forwarding:
    return Forwarding(
        own={WAN, WAN2, LAN_GATEWAY},
        external={WAN, WAN2},
        translate=translate,
        internal=lambda a: any(IPv4Address(a) in net for net in INTERNAL),
        routed=lambda a: IPv4Address(a) not in UNROUTED,
    )


CASES = [
    # (from_wan, destination, echo request, translate, step)
    (True, WAN, True, True, Step.ANSWER_PING),
    (False, WAN, True, True, Step.ANSWER_PING),
    (False, LAN_GATEWAY, True, True, Step.ANSWER_PING),
    (False, LAN_GATEWAY, False, True, Step.TO_ROUTER),
    (True, WAN, False, True, Step.INBOUND),
    (True, WAN2, False, True, Step.INBOUND),
    (True, WAN, False, False, Step.INBOUND),  # the engine passes it when it does not translate
    (True, "10.0.0.5", False, True, Step.NOT_FOR_US),
    (True, "198.51.100.7", False, True, Step.NOT_FOR_US),
    (True, LAN_GATEWAY, False, True, Step.NOT_FOR_US),
    (True, "10.0.0.5", False, False, Step.INBOUND),  # a router that only routes: martians dropped
    (True, LAN_GATEWAY, False, False, Step.INBOUND),
    (False, "10.9.0.5", False, True, Step.ROUTE),  # between two LANs, no translation
    (False, "192.0.2.7", False, True, Step.NO_ROUTE),
    (False, "198.51.100.7", False, True, Step.OUTBOUND),
    (False, "198.51.100.7", True, True, Step.OUTBOUND),  # a ping to elsewhere is translated
    (False, WAN, False, True, Step.OUTBOUND),  # hairpin, or the built-in STUN responder
    (False, "198.51.100.7", False, False, Step.OUTBOUND),  # the engine passes it
]


@pytest.mark.parametrize(
    ("from_wan", "destination", "echo", "translate", "step"),
    CASES,
    ids=[
        f"{'wan' if w else 'lan'}-{d}-{'ping' if e else 'udp'}-{'nat' if t else 'route'}"
        for w, d, e, t, _ in CASES
    ],
)
def test_each_branch(from_wan: bool, destination: str, echo: bool, translate: bool, step: Step):
    assert router(translate).step(from_wan, destination, echo) is step


def test_to_an_external_address_needs_no_route():
    """Hairpinning and the built-in STUN responder are the NAT's business, not the routes'."""
    isolated = Forwarding({WAN, LAN_GATEWAY}, {WAN}, True, router().internal, lambda a: False)
    assert isolated.step(False, WAN, False) is Step.OUTBOUND
    assert isolated.step(False, "198.51.100.7", False) is Step.NO_ROUTE


def test_drop_counters_are_the_daemons():
    assert [Step.TO_ROUTER.counter, Step.NOT_FOR_US.counter, Step.NO_ROUTE.counter] == [
        "dropped_to_router",
        "dropped_not_for_us",
        "dropped_no_route",
    ]


addresses = st.one_of(
    st.sampled_from([WAN, WAN2, LAN_GATEWAY]),
    st.ip_addresses(v=4, network="10.0.0.0/8"),
    st.ip_addresses(v=4, network="192.0.2.0/24"),
    st.ip_addresses(v=4, network="198.51.100.0/24"),
).map(str)


@given(from_wan=st.booleans(), destination=addresses, echo=st.booleans(), nat=st.booleans())
def test_what_may_never_happen(from_wan: bool, destination: str, echo: bool, nat: bool):
    forwarding = router(nat)
    step = forwarding.step(from_wan, destination, echo)
    external = destination in forwarding.external
    if from_wan:  # nothing from outside makes a mapping or is dropped for want of a route
        assert step not in (Step.OUTBOUND, Step.TO_ROUTER, Step.NO_ROUTE)
        if nat and not external:  # a NAT lets nothing in but through its engine
            assert step in (Step.NOT_FOR_US, Step.ANSWER_PING)
    else:
        assert step not in (Step.INBOUND, Step.NOT_FOR_US)
    answered = echo and destination in forwarding.own
    assert (step is Step.INBOUND) == (from_wan and (external or not nat) and not answered)
    if from_wan:  # everything from outside meets the engine (its martian check), or is dropped
        assert step in (Step.INBOUND, Step.NOT_FOR_US, Step.ANSWER_PING)
    if step is Step.OUTBOUND:  # a mapping only for somewhere the packet can go
        assert external or forwarding.routed(destination)
        assert not forwarding.internal(destination) or external
    if step is Step.NO_ROUTE:
        assert not forwarding.routed(destination)
    if step is Step.ANSWER_PING:
        assert echo and destination in forwarding.own
    if not nat:
        assert step is not Step.NOT_FOR_US
