"""What users write for a behaviour (a topology's settings, `natlab nat set`), checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from natlab.core.behaviour import PRESETS, Behaviour, Filtering, Mapping
from natlab.errors import NatlabError
from natlab.topology.behaviour_input import changed_behaviour, settings_over


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
