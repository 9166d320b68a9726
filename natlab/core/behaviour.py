"""What a NAT router does, as RFC 4787 (UDP) and RFC 5382 (TCP) name it.

The behaviour axes are first-class; the classic names (full-cone, restricted,
port-restricted, symmetric) are presets over them, kept in one table. `none`
is plain routing: the router forwards without translating.

A topology gives a preset, a preset with overrides, or the axes alone; all
three end up as one frozen Behaviour. The same model validates
`natlab nat set ROUTER AXIS=VALUE` on a running lab.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from natlab.errors import NatlabError


class Mapping(StrEnum):
    """Which part of the destination makes a new external mapping (RFC 4787 4.1)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class Filtering(StrEnum):
    """Which remote endpoints may send in through a mapping (RFC 4787 5)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class PortAssignment(StrEnum):
    """How an external port is chosen (RFC 4787 4.2.1)."""

    PRESERVE = "preserve"  # keep the internal port; next free one if taken
    SEQUENTIAL = "sequential"
    RANDOM = "random"  # seeded per router, so a run repeats


class Refresh(StrEnum):
    """Which packets keep a mapping alive (RFC 4787 REQ-6)."""

    OUTBOUND = "outbound"
    BOTH = "both"


class Behaviour(BaseModel):
    """Every knob of one NAT router; defaults are design.md's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    translate: bool = True
    mapping: Mapping = Mapping.ENDPOINT_INDEPENDENT
    filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    ports: PortAssignment = PortAssignment.PRESERVE
    seed: int = 0
    port_range: tuple[int, int] = (1024, 65535)
    parity: bool = False
    hairpin: bool = True
    udp_timeout: float = Field(120.0, gt=0)
    tcp_established_timeout: float = Field(7440.0, gt=0)  # RFC 5382 REQ-5: >= 2 h 4 min
    tcp_transitory_timeout: float = Field(240.0, gt=0)
    icmp_timeout: float = Field(60.0, gt=0)
    refresh: Refresh = Refresh.OUTBOUND
    max_mappings_per_host: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _port_range_is_ordered(self) -> Behaviour:
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(
                f"port_range must be two ports with 1 <= low <= high <= 65535, got {low}-{high}"
            )
        return self

    def preset_name(self) -> str | None:
        """The classic name whose axes this behaviour has, if any."""
        for name, preset in PRESETS.items():
            if preset.translate == self.translate and (
                not self.translate
                or (preset.mapping, preset.filtering) == (self.mapping, self.filtering)
            ):
                return name
        return None


PRESETS: dict[str, Behaviour] = {
    "full-cone": Behaviour(
        mapping=Mapping.ENDPOINT_INDEPENDENT, filtering=Filtering.ENDPOINT_INDEPENDENT
    ),
    "restricted": Behaviour(
        mapping=Mapping.ENDPOINT_INDEPENDENT, filtering=Filtering.ADDRESS_DEPENDENT
    ),
    "port-restricted": Behaviour(
        mapping=Mapping.ENDPOINT_INDEPENDENT, filtering=Filtering.ADDRESS_AND_PORT_DEPENDENT
    ),
    "symmetric": Behaviour(
        mapping=Mapping.ADDRESS_AND_PORT_DEPENDENT,
        filtering=Filtering.ADDRESS_AND_PORT_DEPENDENT,
    ),
    "none": Behaviour(translate=False),
}


def behaviour_from(preset: str | None = None, **overrides: Any) -> Behaviour:
    """A preset (port-restricted when none is named) with axis overrides applied.

    Raises KeyError for an unknown preset and pydantic's ValidationError for a
    bad axis value; callers turn both into messages that name their source.
    """
    base = PRESETS[preset or "port-restricted"]
    return Behaviour.model_validate({**base.model_dump(), **overrides})


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
        if axis not in Behaviour.model_fields or axis == "translate":
            settable = [name for name in Behaviour.model_fields if name != "translate"]
            raise NatlabError(
                f"unknown NAT setting '{axis}'",
                field=setting,
                fix=f"settings: {', '.join(settable)}",
            )
        values[axis] = value.split("-", 1) if axis == "port_range" else value
    try:
        return Behaviour.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        axis = str(error["loc"][0]) if error["loc"] else "nat"
        expected = error.get("ctx", {}).get("expected")
        raise NatlabError(
            f"bad value for NAT setting '{axis}': {error['msg']}",
            field=axis,
            fix=f"use {expected}" if expected else None,
        ) from None
