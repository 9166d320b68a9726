"""A matrix pair, built as objects, is the scenario a user would write for it."""

from __future__ import annotations

import pytest
import yaml

from natlab.scenario.expectations import NO_MEDIA, TYPES, expected_media, nat_preset
from natlab.scenario.matrix import (
    CALL_SECONDS,
    CALLEE,
    CALLEE_ROUTER,
    CALLER,
    CALLER_ROUTER,
    TOPOLOGY,
    pair_scenario,
)
from natlab.scenario.model import parse_scenario


def written(caller_type: str, callee_type: str, relay: bool) -> str:
    media = expected_media(caller_type, callee_type, relay)
    return yaml.safe_dump(
        {
            "topology": str(TOPOLOGY),
            "nat": {CALLER_ROUTER: nat_preset(caller_type), CALLEE_ROUTER: nat_preset(callee_type)},
            "steps": [
                {"wait-registered": [CALLER, CALLEE]},
                {
                    "call": {
                        "from": CALLER,
                        "to": CALLEE,
                        "seconds": CALL_SECONDS,
                        "mode": "relay" if relay else "ice",
                    },
                    "expect": {"media": "none" if media == NO_MEDIA else media},
                },
            ],
        }
    )


@pytest.mark.parametrize("relay", [False, True])
@pytest.mark.parametrize("callee_type", TYPES)
@pytest.mark.parametrize("caller_type", TYPES)
def test_a_pair_is_the_scenario_written_out(caller_type: str, callee_type: str, relay: bool):
    source = f"matrix/{caller_type}-x-{callee_type}"
    built = pair_scenario(caller_type, callee_type, relay)
    parsed = parse_scenario(written(caller_type, callee_type, relay), source)
    assert (built.name, built.source, built.about) == (parsed.name, parsed.source, parsed.about)
    assert built.steps == parsed.steps
    assert built.topology == parsed.topology
    assert built.lines == ()  # no file: no line numbers to point at
