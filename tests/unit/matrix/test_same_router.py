"""Two phones behind one router: host candidates on a shared LAN, hairpinning without them."""

from __future__ import annotations

import pytest

from natlab.endpoints.media import NO_MEDIA, TWO_WAY
from natlab.scenario.expectations import expected_media

from .harness import same_router

PRESETS = ("full-cone", "restricted", "port-restricted", "symmetric")


@pytest.mark.parametrize("kind", PRESETS)
def test_same_lan_talks_over_host_candidates(kind: str) -> None:
    """docs/design.md: "two phones in the same LAN talk over their local (host) addresses"."""
    call = same_router(kind, hairpin=False)  # the router has no part in it
    assert call.verdict == TWO_WAY, call.story()
    for agent in (call.caller, call.callee):
        assert agent.selected is not None, call.story()
        assert (agent.selected.local.kind, agent.selected.remote.kind) == ("host", "host")


@pytest.mark.parametrize("kind", PRESETS)
def test_hairpin_meets_the_matrix_diagonal(kind: str) -> None:
    """With server-reflexive candidates only, the phones meet through the router's WAN address.

    A hairpinned packet is filtered as if it came from outside (RFC 4787
    REQ-9), so two phones behind one NAT of a type fare as two phones
    behind two NATs of that type: symmetric does not make it.
    """
    call = same_router(kind, offer_host=False)
    assert call.verdict == expected_media(kind, kind), call.story()


@pytest.mark.parametrize("kind", PRESETS)
def test_without_hairpinning_server_reflexive_candidates_lead_nowhere(kind: str) -> None:
    call = same_router(kind, offer_host=False, hairpin=False)
    assert call.verdict == NO_MEDIA, call.story()
    assert any("hairpin-off" in line for line in call.network.losses), call.story()
