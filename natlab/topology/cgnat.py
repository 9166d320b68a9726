"""A router's `cgnat:` checked: its pool, its port blocks, its inside on 100.64.0.0/10.

RFC 6598 set 100.64.0.0/10 aside for the inside of carriers' NATs: home
routers' WANs sit on it, no home LAN does. So a segment in that space may
be the LAN of a carrier-grade NAT only, and a carrier-grade NAT's LANs are
in that space. The pool (`cgnat.pool`) is the router's public addresses,
another way to write its WAN's `addresses`.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network

from natlab.core.behaviour import Behaviour
from natlab.core.cgnat import CgnatSettings
from natlab.errors import NatlabError
from natlab.topology.schema import TopologySpec
from natlab.topology.yaml_source import Path

SHARED = IPv4Network("100.64.0.0/10")
MAX_POOL = 16  # as many addresses as an interface may be given

Fail = Callable[[Path, str, str | None], NatlabError]


def move_pools_to_wans(spec: TopologySpec, fail: Fail) -> None:
    """A router's `cgnat.pool` becomes its WAN's addresses (checked there like any address)."""
    for name, router in spec.routers.items():
        pool = router.cgnat.pool if router.cgnat else None
        if pool is None:
            continue
        path = ("routers", name, "cgnat", "pool")
        if router.wan.address is not None or router.wan.addresses is not None:
            raise fail(
                path,
                "the pool is the WAN's addresses: give cgnat.pool or wan.address(es), not both",
                "keep one of them",
            )
        if isinstance(pool, int) and not 1 <= pool <= MAX_POOL:
            raise fail(path, f"pool: {pool} is out of range", f"ask for 1 to {MAX_POOL} addresses")
        if isinstance(pool, list) and not 1 <= len(pool) <= MAX_POOL:
            raise fail(path, f"the pool has {len(pool)} addresses", f"list 1 to {MAX_POOL}")
        router.wan = router.wan.model_copy(update={"addresses": pool})


def check_shared_space(spec: TopologySpec, segments: dict[str, IPv4Network], fail: Fail) -> None:
    """Only a carrier-grade NAT has a LAN in 100.64.0.0/10, and its LANs are all there."""
    for name, router in spec.routers.items():
        lans = [(("lan",), router.lan)] if router.lan else []
        lans += [(("lans", index), lan) for index, lan in enumerate(router.lans or [])]
        for sub, lan in lans:
            subnet = segments[lan.segment]
            inside = subnet.subnet_of(SHARED)
            path = ("routers", name, *sub, "segment")
            if router.cgnat is not None and not inside:
                raise fail(
                    path,
                    f"the inside of a carrier-grade NAT is the shared address space {SHARED} "
                    f"(RFC 6598); segment '{lan.segment}' is {subnet}",
                    f"give segment '{lan.segment}' a subnet inside {SHARED}, e.g. 100.64.0.0/24",
                )
            if router.cgnat is None and subnet.overlaps(SHARED):
                raise fail(
                    path,
                    f"segment '{lan.segment}' ({subnet}) is in the shared address space {SHARED}, "
                    "which only a carrier-grade NAT has on its inside (RFC 6598)",
                    f"add cgnat: {{}} to router '{name}', or give '{lan.segment}' a private "
                    "subnet (10/8, 172.16/12, 192.168/16)",
                )


def cgnat_settings(
    name: str, spec: TopologySpec, behaviour: Behaviour, fail: Fail
) -> CgnatSettings:
    """The router's checked CgnatSettings (it has a `cgnat:`)."""
    given = spec.routers[name].cgnat
    assert given is not None
    path = ("routers", name, "cgnat")
    try:
        settings = CgnatSettings(given.port_block, given.blocks_per_subscriber, given.port_quota)
    except ValueError as error:
        field = str(error).split()[0]
        raise fail((*path, field), str(error), None) from None
    if not behaviour.translate:
        raise fail(
            ("routers", name, "nat"),
            "a carrier-grade NAT translates: nat: none makes no sense with cgnat:",
            "give a NAT behaviour (carriers use endpoint-independent mapping, RFC 6888)",
        )
    low, high = behaviour.port_range
    if settings.port_block > high - low + 1:
        raise fail(
            (*path, "port_block"),
            f"port_block {settings.port_block} is larger than the port range {low}-{high}",
            "use a smaller port_block, or a wider nat.port_range",
        )
    if behaviour.parity and settings.port_block % 2:
        raise fail(
            (*path, "port_block"),
            f"parity needs an even port_block, got {settings.port_block}",
            "use an even port_block, or parity: false",
        )
    return settings
