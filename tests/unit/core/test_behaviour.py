"""Behaviour: a plain dataclass for the engine and daemon, validated by pydantic at the edges."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from natlab.core.behaviour import Behaviour, Filtering, Mapping, PortAssignment, Refresh

behaviours = st.builds(
    Behaviour,
    translate=st.booleans(),
    mapping=st.sampled_from(list(Mapping)),
    filtering=st.sampled_from(list(Filtering)),
    ports=st.sampled_from(list(PortAssignment)),
    seed=st.integers(0, 2**32),
    port_range=st.tuples(st.integers(1, 30000), st.integers(30000, 65535)),
    parity=st.booleans(),
    hairpin=st.booleans(),
    udp_timeout=st.floats(0.5, 1e6),
    refresh=st.sampled_from(list(Refresh)),
    max_mappings_per_host=st.none() | st.integers(1, 100),
)


@given(behaviours)
def test_json_and_back_is_the_same_behaviour(behaviour: Behaviour) -> None:
    again = Behaviour(**behaviour.as_json())
    assert again == behaviour
    assert again.mapping is behaviour.mapping and again.port_range == behaviour.port_range


def test_the_router_daemon_imports_neither_pydantic_nor_the_topology() -> None:
    """What keeps a daemon small (issue 3's memory target): checked in a fresh interpreter."""
    heavy = ("pydantic", "natlab.topology", "natlab.lab", "pyroute2", "yaml", "asyncio")
    script = (
        "import sys, natlab.router.daemon\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
