"""A Behaviour from what people write: topology settings and `natlab nat set` arguments.

pydantic checks the values against Behaviour's annotations (types, enums,
bounds) and the port-range rule, and its errors name the setting at fault;
the callers turn them into messages that name their source. Kept apart
from natlab.core.behaviour so the router daemon never imports pydantic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from natlab.core.behaviour import PRESETS, SETTINGS, Behaviour
from natlab.errors import NatlabError

_VALIDATOR = TypeAdapter(Behaviour)
UNKNOWN_SETTING = "unexpected_keyword_argument"
"""pydantic's error type for a setting Behaviour does not have (its extra="forbid")."""


def validated(values: dict[str, Any]) -> Behaviour:
    """Every knob checked; raises pydantic's ValidationError naming the first bad one."""
    return _VALIDATOR.validate_python(values)


def settings_over(preset: str | None, overrides: dict[str, Any]) -> Behaviour:
    """A preset (port-restricted when none is named) with user-written overrides applied."""
    return validated({**PRESETS[preset or "port-restricted"].as_json(), **overrides})


def changed_behaviour(current: dict[str, Any], settings: Iterable[str]) -> Behaviour:
    """`natlab nat set`: a preset's axes and/or AXIS=VALUE settings over the current behaviour.

    A preset changes only what it names (mapping, filtering, translation);
    timeouts, hairpinning and the rest stay as they were unless set too.
    """
    values = dict(current)
    for setting in settings:
        if "=" not in setting:
            if setting not in PRESETS:
                raise NatlabError(
                    f"unknown NAT preset '{setting}'",
                    field="PRESET",
                    fix=f"use one of {', '.join(PRESETS)}, or AXIS=VALUE",
                )
            preset = PRESETS[setting]
            values.update(
                translate=preset.translate, mapping=preset.mapping, filtering=preset.filtering
            )
            continue
        axis, _, value = setting.partition("=")
        axis = axis.strip().replace("-", "_")
        if axis not in SETTINGS or axis == "translate":
            settable = [name for name in SETTINGS if name != "translate"]
            raise NatlabError(
                f"unknown NAT setting '{axis}'",
                field=setting,
                fix=f"settings: {', '.join(settable)}",
            )
        values[axis] = value.split("-", 1) if axis == "port_range" else value
    try:
        return validated(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        axis = str(error["loc"][0]) if error["loc"] else "nat"
        expected = error.get("ctx", {}).get("expected")
        raise NatlabError(
            f"bad value for NAT setting '{axis}': {error['msg']}",
            field=axis,
            fix=f"use {expected}" if expected else None,
        ) from None
