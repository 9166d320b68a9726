"""`natlab matrix --impair`: every pair's routers impaired as the profile says."""

from __future__ import annotations

import pytest

from natlab.core.impair import Impairment, LinkImpairment, parse_profile
from natlab.errors import NatlabError
from natlab.scenario.matrix import MatrixResult, pair_scenario


def test_the_profile_impairs_every_routers_wan() -> None:
    profile = parse_profile(["wan:loss=1%,delay=50ms"])
    expected = Impairment(loss=0.01, delay=0.05)
    assert profile == {"wan": LinkImpairment(expected, expected)}
    topology = pair_scenario("full-cone", "symmetric", impair=profile).topology
    for router in topology.routers.values():
        assert router.wan.impair == LinkImpairment(expected, expected)
        assert all(lan.impair is None for lan in router.lans)
    assert pair_scenario("full-cone", "symmetric").topology.routers["branch1"].wan.impair is None


def test_the_report_says_which_impairment_it_ran_with() -> None:
    profile = parse_profile(["lan:out.loss=2%"])
    result = MatrixResult(("full-cone",), False, 1, [], 1.0, None, profile)
    assert result.as_json()["impair"] == {"lan": "out.loss=2% seed=0"}
    assert MatrixResult(("full-cone",), False, 1, [], 1.0).as_json()["impair"] == {}


@pytest.mark.parametrize(
    ("items", "says"),
    [
        (["loss=1%"], "is not IFACE:SETTINGS"),
        (["wan:loss=1%,dealy=5ms"], "dealy: no such setting"),
    ],
)
def test_bad_profiles(items: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_profile(items)


def test_an_interface_no_router_has() -> None:
    with pytest.raises(NatlabError, match="has an interface 'dsl'"):
        pair_scenario("full-cone", "full-cone", impair=parse_profile(["dsl:loss=1%"]))


def test_the_cli_refuses_bad_input_before_any_lab(natlab) -> None:
    done = natlab("matrix", "--impair", "wan:delay=11s")
    assert done.returncode == 2
    assert "--impair: delay is a duration up to 10s" in done.stderr
