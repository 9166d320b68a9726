"""`natlab verify`'s hairpin check for each `hairpin` mode (natlab.scenario.verify.expectations).

What the probe can see is in docs/topology.md's table (measured by
tests/lab/test_tcp_behaviour.py): behind dependent mapping and filtering,
`on` looks like no hairpinning, so it is not checked; `unfiltered` is seen
whatever the axes.
"""

from __future__ import annotations

import pytest

from natlab.core.behaviour import behaviour_from
from natlab.records import ProbeReport
from natlab.scenario.verify import Check, expectations
from natlab.topology.model import Router

SYMMETRIC = "address-and-port-dependent"


def report(mapping: str, filtering: str, hairpin: bool) -> ProbeReport:
    return ProbeReport(
        server="203.0.113.2:3478",
        local="10.0.0.10:5000",
        mapped="203.0.113.1:5000",
        other="203.0.113.3:3479",
        mapping=mapping,
        filtering=filtering,
        hairpin=hairpin,
        lifetime=None,
        name=None,
    )


@pytest.mark.parametrize(
    ("mode", "seen", "check"),
    [
        ("on", False, None),  # not observable: a note instead
        ("unfiltered", True, Check("hairpin", "on", "on")),
        ("unfiltered", False, Check("hairpin", "on", "off")),
        ("off", False, None),
    ],
)
def test_behind_symmetric_nat_only_unfiltered_is_checked(mode, seen, check) -> None:
    router = Router(name="r", interfaces=(), behaviour=behaviour_from("symmetric", hairpin=mode))
    checks, notes = expectations(True, router, report(SYMMETRIC, SYMMETRIC, seen))
    hairpin = [c for c in checks if c.axis == "hairpin"]
    assert hairpin == ([check] if check else [])
    assert bool(notes) is (check is None)


@pytest.mark.parametrize(("mode", "expected"), [("on", "on"), ("unfiltered", "on"), ("off", "off")])
def test_behind_endpoint_independent_mapping_every_mode_is_checked(mode, expected) -> None:
    router = Router(
        name="r", interfaces=(), behaviour=behaviour_from("port-restricted", hairpin=mode)
    )
    checks, _ = expectations(True, router, report("endpoint-independent", SYMMETRIC, True))
    [hairpin] = [c for c in checks if c.axis == "hairpin"]
    assert hairpin.expected == expected
