"""Behaviour: a plain dataclass for the engine and daemon, validated by pydantic at the edges."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from natlab.core.behaviour import PRESETS, Behaviour, Filtering, Mapping, PortAssignment, Refresh
from natlab.core.behaviour_input import changed_behaviour, settings_over
from natlab.errors import NatlabError

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


def test_user_settings_are_checked_and_coerced() -> None:
    behaviour = settings_over("symmetric", {"udp_timeout": "30", "port_range": ["2000", 3000]})
    assert (behaviour.mapping, behaviour.udp_timeout) == (Mapping.ADDRESS_AND_PORT_DEPENDENT, 30.0)
    assert behaviour.port_range == (2000, 3000)
    bad_settings = [{"udp_timeout": 0}, {"mapping": "x"}, {"colour": "x"}, {"port_range": [9, 1]}]
    for bad in bad_settings:
        with pytest.raises(ValidationError):
            settings_over(None, bad)


def test_nat_set_changes_what_it_names_and_keeps_the_rest() -> None:
    current = settings_over("symmetric", {"udp_timeout": 30, "hairpin": False}).as_json()
    changed = changed_behaviour(current, ["full-cone", "parity=true"])
    assert changed == Behaviour(
        mapping=Mapping.ENDPOINT_INDEPENDENT,
        filtering=Filtering.ENDPOINT_INDEPENDENT,
        udp_timeout=30,
        hairpin=False,
        parity=True,
    )
    assert changed.preset_name() == "full-cone"


@pytest.mark.parametrize(
    ("settings", "message", "fix"),
    [
        (["cone"], "unknown NAT preset 'cone'", "use one of full-cone"),
        (["colour=blue"], "unknown NAT setting 'colour'", "settings: mapping"),
        (["udp_timeout=-1"], "bad value for NAT setting 'udp_timeout'", None),
        (["mapping=cone"], "bad value for NAT setting 'mapping'", "use 'endpoint-independent'"),
    ],
)
def test_nat_set_says_what_is_wrong(settings: list[str], message: str, fix: str | None) -> None:
    with pytest.raises(NatlabError) as raised:
        changed_behaviour(PRESETS["symmetric"].as_json(), settings)
    assert message in str(raised.value)
    if fix is not None:
        assert fix in str(raised.value.fix)


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
