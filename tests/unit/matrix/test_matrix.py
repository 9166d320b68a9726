"""The NAT matrix without root: every pair of types, phone to phone, held to the table.

Each cell is one call through two simulated NAT routers whose engines are
natlab's own (harness.py), and its verdict must be the one
natlab.scenario.expectations gives: the table `natlab matrix` holds real
labs to. A change in what the engine lets through, or in the table, fails
the cells it touches, by name (`pytest -k symmetric-x-port-restricted`).
"""

from __future__ import annotations

import re

import pytest

from natlab.scenario.expectations import NO_MEDIA, TYPES, expected_media

from .harness import matrix_pair

PAIRS = [(caller, callee) for caller in TYPES for callee in TYPES]


@pytest.mark.parametrize(("caller", "callee"), PAIRS, ids=[f"{a}-x-{b}" for a, b in PAIRS])
def test_call_through_two_nats(caller: str, callee: str) -> None:
    call = matrix_pair(caller, callee)
    assert call.verdict == expected_media(caller, callee), call.story()


FAILING = [pair for pair in PAIRS if expected_media(*pair) == NO_MEDIA]


@pytest.mark.parametrize(("caller", "callee"), FAILING, ids=[f"{a}-x-{b}" for a, b in FAILING])
def test_a_failing_pair_fails_at_a_nat_filter(caller: str, callee: str) -> None:
    """Checks to the peer's public candidates die at a router's filter, and nowhere else.

    What else is lost is a check to a private host candidate, which the
    internet has no route to: the harness loses nothing of its own accord.
    """
    call = matrix_pair(caller, callee)
    filtered = [line for line in call.network.losses if re.search(r"filtered-(port|address)", line)]
    unroutable = [line for line in call.network.losses if "no route to 10." in line]
    assert filtered, call.story()
    assert sorted(filtered + unroutable) == sorted(call.network.losses), call.story()
    assert not call.caller.valid and not call.callee.valid, call.story()
