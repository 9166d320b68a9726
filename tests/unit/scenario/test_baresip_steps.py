"""Scenario `call` steps between baresip phones: what the loader accepts, and what it refuses."""

from pathlib import Path

import pytest

from natlab.errors import NatlabError
from natlab.scenario.model import BARESIP_MODE, Call, load_scenario

EXAMPLE = Path(__file__).parents[3] / "examples" / "sip-softphones"
TOPOLOGY = (EXAMPLE / "topology.yaml").read_text()


def scenario(tmp_path: Path, call: str, extra_host: str = "") -> Path:
    (tmp_path / "t.yaml").write_text(TOPOLOGY + extra_host)
    path = tmp_path / "s.yaml"
    path.write_text(f"topology: t.yaml\nsteps:\n  - call: {call}\n")
    return path


def test_a_call_between_two_baresip_phones_is_theirs_to_set_up(tmp_path):
    loaded = load_scenario(scenario(tmp_path, "{from: alice, to: bob}"))
    (step,) = loaded.steps
    assert isinstance(step, Call)
    assert step.mode == BARESIP_MODE


def test_a_call_between_baresip_and_natlabs_phone_keeps_the_natlab_callers_mode(tmp_path):
    carol = "  carol: {segment: lan-b, role: phone}\n"
    (step,) = load_scenario(scenario(tmp_path, "{from: alice, to: carol}", carol)).steps
    assert step.mode == BARESIP_MODE
    (step,) = load_scenario(
        scenario(tmp_path, "{from: carol, to: alice, mode: srflx}", carol)
    ).steps
    assert step.mode == "srflx"


@pytest.mark.parametrize(
    ("call", "field", "problem"),
    [
        ("{from: alice, to: bob, mode: srflx}", "steps[0].call.mode", "does not apply"),
        (
            "{from: alice, to: bob}\n    expect: {pair: srflx}",
            "steps[0].expect.pair",
            "no candidate pair",
        ),
        (
            "{from: carol, to: bob}\n    expect: {pair: srflx}",
            "steps[0].expect.pair",
            "no candidate pair",
        ),
        ("{from: carol, to: bob, cancel_after: 1s}", "steps[0].call.cancel_after", "not baresip"),
        ("{from: alice, to: carol, ring: 2}", "steps[0].call.ring", "not baresip"),
        ("{from: carol, to: alice, answer: host}", "steps[0].call.answer", "not baresip"),
    ],
)
def test_what_baresip_phones_cannot_do_is_refused_with_the_field(tmp_path, call, field, problem):
    carol = "  carol: {segment: lan-b, role: phone}\n"
    with pytest.raises(NatlabError) as caught:
        load_scenario(scenario(tmp_path, call, carol))
    assert caught.value.field == field
    assert problem in caught.value.problem
