"""A scenario's `link:` step: a router interface's impairment, checked where it is written."""

from __future__ import annotations

import pytest

from natlab.core.impair import Impairment, LinkImpairment
from natlab.errors import NatlabError
from natlab.scenario.model import SetLink, parse_scenario

SCENARIO = """\
topology: main-branch
steps:
  - link: {link}
"""


def link_step(text: str):
    return parse_scenario(SCENARIO.format(link=text), "s.yaml").steps[0]


def test_a_link_step_sets_the_impairment() -> None:
    step = link_step("{router: branch1, iface: wan, impair: {loss: 5%, delay: 80ms, seed: 3}}")
    assert step == SetLink(
        "branch1",
        "wan",
        LinkImpairment(Impairment(loss=0.05, delay=0.08), Impairment(loss=0.05, delay=0.08), 3),
    )
    assert step.describe() == "link set branch1 wan loss=5% delay=80ms seed=3"


def test_none_clears_and_an_interface_goes_by_its_name_too() -> None:
    step = link_step("{router: branch1, iface: branch1-lan, impair: none}")
    assert step == SetLink("branch1", "branch1-lan", LinkImpairment())


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("{router: nowhere, iface: wan, impair: {}}", "steps[0].link.router", "no router named"),
        ("{router: branch1, iface: dsl, impair: {}}", "steps[0].link.iface", "no interface 'dsl'"),
        (
            "{router: branch1, iface: wan, impair: {delay: 20s}}",
            "steps[0].link.impair",
            "delay is a duration up to 10s",
        ),
    ],
)
def test_mistakes_name_the_field(text: str, field: str, says: str) -> None:
    with pytest.raises(NatlabError) as caught:
        link_step(text)
    assert caught.value.field == field
    assert caught.value.line == 3
    assert says in caught.value.problem
