"""A topology with routers' behaviours overridden in code is the file with their `nat:` edited."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.behaviour import PRESETS
from natlab.errors import NatlabError
from natlab.topology import load_topology, parse_topology
from natlab.topology.behaviour_input import NatFormError, nat_behaviour

MAIN_BRANCH = load_topology("main-branch")

nat_forms = st.one_of(
    st.sampled_from(sorted(PRESETS)),
    st.fixed_dictionaries(
        {},
        optional={
            "preset": st.sampled_from(sorted(PRESETS)),
            "udp_timeout": st.integers(1, 3600),
            "hairpin": st.booleans(),
            "ports": st.sampled_from(["preserve", "sequential", "random"]),
            "filtering": st.sampled_from(["endpoint-independent", "address-dependent"]),
        },
    ),
)


def edited_file(nats: dict[str, object]) -> str:
    """main-branch.yaml as a user would edit it: these routers' `nat:` rewritten."""
    data = yaml.safe_load(MAIN_BRANCH.text)
    for router, nat in nats.items():
        data["routers"][router]["nat"] = nat
    return yaml.safe_dump(data, sort_keys=False)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(MAIN_BRANCH.routers)), nat_forms))
def test_the_same_as_the_edited_file(nats: dict[str, object]) -> None:
    built = MAIN_BRANCH.with_behaviours({r: nat_behaviour(nat) for r, nat in nats.items()})
    edited = parse_topology(edited_file(nats), MAIN_BRANCH.source)
    assert built == edited


def test_only_the_named_routers_change() -> None:
    built = MAIN_BRANCH.with_behaviours({"branch2": PRESETS["full-cone"]})
    assert built.routers["branch2"].behaviour == PRESETS["full-cone"]
    assert built.routers["branch1"] == MAIN_BRANCH.routers["branch1"]
    assert MAIN_BRANCH.routers["branch2"].behaviour == PRESETS["symmetric"]  # not changed
    assert built.text == MAIN_BRANCH.text  # the file, as it was


def test_an_unknown_router_is_named() -> None:
    with pytest.raises(NatlabError, match="no router named 'branch9'") as raised:
        MAIN_BRANCH.with_behaviours({"branch9": PRESETS["none"]})
    assert raised.value.fix == "routers: main, branch1, branch2"


@pytest.mark.parametrize(
    ("nat", "at", "problem"),
    [
        ("fullcone", (), "unknown NAT preset 'fullcone'"),
        ({"preset": "cone"}, ("preset",), "unknown NAT preset 'cone'"),
        ({"udp_timout": 3}, ("udp_timout",), "unknown NAT setting 'udp_timout'"),
        ({"udp_timeout": -3}, ("udp_timeout",), "bad value -3 for NAT setting 'udp_timeout'"),
        (["full-cone"], (), "input should be a valid string (got ['full-cone'])"),
    ],
)
def test_a_bad_nat_says_where(nat: object, at: tuple, problem: str) -> None:
    """The same words a topology file gets: the file's loader and a scenario's share them."""
    with pytest.raises(NatFormError) as raised:
        nat_behaviour(nat)
    assert (raised.value.at, raised.value.problem) == (at, problem)
    data = yaml.safe_load(MAIN_BRANCH.text)
    data["routers"]["branch1"]["nat"] = nat
    with pytest.raises(NatlabError) as from_file:
        parse_topology(yaml.safe_dump(data), "t.yaml")
    assert from_file.value.problem == problem
    assert from_file.value.field == ".".join(("routers", "branch1", "nat", *at))
