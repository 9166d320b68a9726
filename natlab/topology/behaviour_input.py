"""A Behaviour from what people write: a `nat:` in a topology or scenario, `natlab nat set`.

pydantic checks the values against Behaviour's annotations (types, enums,
bounds) and the port-range rule, and its errors name the setting at fault;
the callers turn them into messages that name their source. Kept out of
natlab.core, which imports no pydantic, so the router daemon never does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from natlab.core.behaviour import PRESETS, SETTINGS, Behaviour
from natlab.errors import NatlabError
from natlab.topology.messages import complaint, fix_for

_VALIDATOR = TypeAdapter(Behaviour)
_NAT_FORM = TypeAdapter(str | dict[str, Any])
UNKNOWN_SETTING = "unexpected_keyword_argument"
"""pydantic's error type for a setting Behaviour does not have (its extra="forbid")."""

NatForm = str | dict[str, Any]
"""What a topology or scenario takes under a router's `nat:`: a preset, or settings."""


class NatFormError(Exception):
    """A `nat:` that makes no Behaviour: where below `nat:` (() for itself), what, and the fix.

    The caller knows the file and the field path of `nat:`, and makes the NatlabError.
    """

    def __init__(self, at: tuple[str, ...], problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.at, self.problem, self.fix = at, problem, fix


def validated(values: dict[str, Any]) -> Behaviour:
    """Every knob checked; raises pydantic's ValidationError naming the first bad one."""
    return _VALIDATOR.validate_python(values)


def settings_over(preset: str | None, overrides: dict[str, Any]) -> Behaviour:
    """A preset (port-restricted when none is named) with user-written overrides applied."""
    return validated({**PRESETS[preset or "port-restricted"].as_json(), **overrides})


def nat_behaviour(nat: object) -> Behaviour:
    """The Behaviour a `nat:` value means, or NatFormError naming the part at fault."""
    presets = ", ".join(PRESETS)
    try:
        form = _NAT_FORM.validate_python(nat)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise NatFormError((), f"{complaint(error)} (got {nat!r})", fix_for(error, "nat")) from None
    if isinstance(form, str):
        if form not in PRESETS:
            raise NatFormError(
                (),
                f"unknown NAT preset '{form}'",
                f"use one of {presets}, or give the axes (mapping, filtering, ...)",
            )
        return PRESETS[form]
    overrides = dict(form)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise NatFormError(("preset",), f"unknown NAT preset '{preset}'", f"use one of {presets}")
    try:
        return settings_over(preset, overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a check across settings: the message names them
            raise NatFormError((), error["msg"].removeprefix("Value error, ")) from None
        axis = str(error["loc"][0])
        if error["type"] == UNKNOWN_SETTING:
            raise NatFormError(
                (axis,),
                f"unknown NAT setting '{axis}'",
                f"settings are: preset, {', '.join(SETTINGS)}",
            ) from None
        problem = f"bad value {overrides.get(axis)!r} for NAT setting '{axis}'"
        fix = fix_for(error, axis)
        if fix is None:
            problem += f": {complaint(error)}"
        raise NatFormError((axis,), problem, fix) from None


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
