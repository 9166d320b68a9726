"""What a NAT router does, as RFC 4787 (UDP) and RFC 5382 (TCP) name it.

The behaviour axes are first-class; the classic names (full-cone, restricted,
port-restricted, symmetric) are presets over them, kept in one table. `none`
is plain routing: the router forwards without translating.

A topology gives a preset, a preset with overrides, or the axes alone; all
three end up as one frozen Behaviour, and so does
`natlab nat set ROUTER AXIS=VALUE` on a running lab.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from annotated_types import Ge, Gt


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


class Hairpin(StrEnum):
    """Whether a LAN host reaches another through the external address (RFC 4787 REQ-9).

    `on` admits a hairpinned packet as the filtering admits one from outside
    (from the sender's external endpoint); `unfiltered` admits it whenever
    the target's mapping lives, as many home routers do. `true` and `false`
    are still read as `on` and `off`.
    """

    ON = "on"
    OFF = "off"
    UNFILTERED = "unfiltered"

    @classmethod
    def _missing_(cls, value: object) -> Hairpin | None:
        if isinstance(value, bool):
            return cls.ON if value else cls.OFF
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return cls.ON if value.lower() == "true" else cls.OFF
        return None


class TcpUnsolicited(StrEnum):
    """What a NAT does with an unsolicited inbound SYN (RFC 5382 REQ-4, natlab.core.syn_hold)."""

    DROP = "drop"  # silently
    RST = "rst"  # a TCP RST, 6 s later unless a simultaneous open
    ICMP = "icmp"  # ICMP port unreachable (type 3 code 3), as REQ-4 recommends, 6 s later


class Refresh(StrEnum):
    """Which packets keep a mapping alive (RFC 4787 REQ-6).

    Carriers' NATs often refresh on outbound packets only, or not at all (a
    mapping then lives its timeout from creation, whatever goes through it).
    """

    OUTBOUND = "outbound"
    BOTH = "both"
    INBOUND = "inbound"
    NONE = "none"

    @property
    def outbound(self) -> bool:
        return self in (Refresh.OUTBOUND, Refresh.BOTH)

    @property
    def inbound(self) -> bool:
        return self in (Refresh.INBOUND, Refresh.BOTH)


_COERCED = {
    "mapping": Mapping,
    "filtering": Filtering,
    "ports": PortAssignment,
    "refresh": Refresh,
    "hairpin": Hairpin,
    "tcp_unsolicited": TcpUnsolicited,
    **dict.fromkeys(
        ("udp_timeout", "tcp_established_timeout", "tcp_transitory_timeout", "icmp_timeout"), float
    ),
}


@dataclass(frozen=True)
class Behaviour:
    """Every knob of one NAT router; defaults are docs/design.md's.

    A plain dataclass, so the router daemon and the engine need no pydantic
    (a daemon's memory is a target of its own). What users write is
    validated against these annotations by pydantic in
    natlab.topology.behaviour_input; code that builds one directly is trusted.
    """

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    translate: bool = True
    mapping: Mapping = Mapping.ENDPOINT_INDEPENDENT
    filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    ports: PortAssignment = PortAssignment.PRESERVE
    seed: int = 0
    port_range: tuple[int, int] = (1024, 65535)
    parity: bool = False
    hairpin: Hairpin = Hairpin.ON
    udp_timeout: Annotated[float, Gt(0)] = 120.0
    tcp_established_timeout: Annotated[float, Gt(0)] = 7440.0  # RFC 5382 REQ-5: >= 2 h 4 min
    tcp_transitory_timeout: Annotated[float, Gt(0)] = 240.0
    icmp_timeout: Annotated[float, Gt(0)] = 60.0
    refresh: Refresh = Refresh.OUTBOUND
    max_mappings_per_host: Annotated[int, Ge(1)] | None = None
    tcp_unsolicited: TcpUnsolicited = TcpUnsolicited.DROP

    def __post_init__(self) -> None:
        # Enum values, whole-second timeouts and a port-range list (as JSON and
        # hand-written code have them) become what the annotations say.
        for name, kind in _COERCED.items():
            object.__setattr__(self, name, kind(getattr(self, name)))
        object.__setattr__(self, "port_range", tuple(self.port_range))
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(
                f"port_range must be two ports with 1 <= low <= high <= 65535, got {low}-{high}"
            )

    def as_json(self) -> dict[str, Any]:
        """Every knob, with enums as their values and the port range as a list.

        Behaviour(**b.as_json()) == b: the daemon's config and control socket carry this.
        """
        values = asdict(self)
        values["port_range"] = list(self.port_range)
        return {k: v.value if isinstance(v, StrEnum) else v for k, v in values.items()}

    def preset_name(self) -> str | None:
        """The classic name whose axes this behaviour has, if any."""
        for name, preset in PRESETS.items():
            if preset.translate == self.translate and (
                not self.translate
                or (preset.mapping, preset.filtering) == (self.mapping, self.filtering)
            ):
                return name
        return None


SETTINGS = tuple(f.name for f in fields(Behaviour))
"""The knobs, in order, as topologies and `natlab nat set` name them."""


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
    """A preset (port-restricted when none is named) with knobs overridden, for code and tests.

    Raises KeyError for an unknown preset and TypeError or ValueError for
    bad knobs; user input goes through natlab.topology.behaviour_input instead.
    """
    return replace(PRESETS[preset or "port-restricted"], **overrides)
