"""Mappings: the key-trimming function of each axis, the binding record, its view.

RFC 4787's mapping and filtering axes are the same question asked twice:
which part of the remote endpoint matters? Endpoint-independent: none of
it; address-dependent: its address; address-and-port-dependent: both. So
each axis value is one small function that trims a remote (address, port)
to the key that value cares about, and the whole RFC table falls out of
comparing keys. The mapping axis uses it to find the binding for an
outbound packet; the filtering axis to decide whether a remote has been
sent to through a binding (the binding keeps the trimmed remotes it sent
to as its permissions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from natlab.core.behaviour import Filtering, Mapping
from natlab.core.events import format_time
from natlab.core.packets import Endpoint, Proto

RemoteKey = None | str | tuple[str, int]
Trim = Callable[[str, int], RemoteKey]

OPEN: RemoteKey = "any"
"""The remote key of an explicit mapping (port control): every remote may send in."""


def endpoint_independent(address: str, port: int) -> RemoteKey:
    """Nothing of the remote matters."""
    return None


def address_dependent(address: str, port: int) -> RemoteKey:
    """The remote's address matters, not its port."""
    return address


def address_and_port_dependent(address: str, port: int) -> RemoteKey:
    """The whole remote endpoint matters."""
    return (address, port)


TRIM: dict[str, Trim] = {
    Mapping.ENDPOINT_INDEPENDENT.value: endpoint_independent,
    Mapping.ADDRESS_DEPENDENT.value: address_dependent,
    Mapping.ADDRESS_AND_PORT_DEPENDENT.value: address_and_port_dependent,
}
"""One trimming function per axis value; Mapping and Filtering share the values."""


def trim_for(axis: Mapping | Filtering) -> Trim:
    """The trimming function of a mapping or filtering behaviour."""
    return TRIM[axis.value]


def describe_key(key: RemoteKey) -> str:
    """A trimmed remote for humans: "any", "198.51.100.1", "198.51.100.1:3478"."""
    if key is None:
        return "any"
    if isinstance(key, str):
        return key
    return f"{key[0]}:{key[1]}"


class MapRefusal(StrEnum):
    """Why the engine made no explicit mapping for a port control request."""

    NOT_TRANSLATING = "not-translating"  # the router only routes: there is nothing to map
    QUOTA = "quota"  # the host has max_mappings_per_host already
    NO_PORTS = "no-ports"  # no free external port left
    PORT_TAKEN = "port-taken"  # that exact external port was asked for and is in use
    CARRIER_GRADE = "carrier-grade"  # explicit mappings from a CGNAT's port blocks: not built


class TcpState(StrEnum):
    """Only what picks a TCP mapping's timeout (RFC 5382 REQ-5)."""

    OPENING = "opening"  # transitory: the outbound SYN seen, nothing back yet
    ESTABLISHED = "established"  # both directions seen
    CLOSING = "closing"  # transitory again: FIN or RST seen


class Binding:
    """One dynamic mapping: an internal endpoint, for one trimmed remote, to an external one.

    Mutable and slotted: the engine updates it on every packet it carries.
    `permissions` maps each filtering-trimmed remote that was sent to through
    this binding to the time of the last such packet.
    """

    __slots__ = (
        "created",
        "event_at",
        "external",
        "hairpin_event_at",
        "internal",
        "key",
        "last_inbound",
        "last_outbound",
        "origin",
        "permissions",
        "pinhole",
        "proto",
        "refreshed_at",
        "remote",
        "removed",
        "tcp",
        "timeout",
    )

    def __init__(
        self,
        key: tuple[int, str, int, RemoteKey],
        proto: int,
        internal: Endpoint,
        external: Endpoint,
        remote: RemoteKey,
        now: float,
        timeout: float,
        tcp: TcpState | None,
        origin: str | None = None,
    ) -> None:
        self.key = key
        self.proto = proto
        self.internal = internal
        self.external = external
        self.remote = remote
        self.permissions: dict[RemoteKey, float] = {}
        self.created = now
        self.last_outbound = now
        self.last_inbound: float | None = None
        self.refreshed_at = now
        self.timeout = timeout
        self.tcp = tcp
        self.event_at = now  # last MappingRefreshed (creation counts)
        self.hairpin_event_at = -1.0  # last Hairpinned from this binding
        self.removed = False  # expired or flushed: a replayed flow must ask the engine again
        self.origin = origin  # None: made by traffic; else who asked: port control, sip-alg
        self.pinhole = False  # a SIP ALG opened it for media: any remote may send in

    @property
    def expires_at(self) -> float:
        return self.refreshed_at + self.timeout

    def view(self) -> MappingView:
        return MappingView(
            proto=Proto(self.proto),
            internal=self.internal,
            external=self.external,
            remote=None if self.remote is None else describe_key(self.remote),
            permissions=tuple(describe_key(k) for k in self.permissions)
            + (("any (SIP ALG pinhole)",) if self.pinhole else ()),
            created=self.created,
            last_outbound=self.last_outbound,
            last_inbound=self.last_inbound,
            expires_at=self.expires_at,
            tcp_state=self.tcp,
            origin=self.origin,
            lifetime=None if self.origin is None else self.timeout,
        )


@dataclass(frozen=True, slots=True)
class MappingView:
    """A snapshot of one dynamic mapping for `natlab nat show`.

    `remote` is the trimmed destination the mapping is for (None when the
    mapping is endpoint-independent); `permissions` the trimmed remotes the
    filtering lets in ("any" under endpoint-independent filtering). `origin`
    is the port control protocol (or sip-alg) that made it (None: traffic),
    `lifetime` what it granted.
    """

    proto: Proto
    internal: Endpoint
    external: Endpoint
    remote: str | None
    permissions: tuple[str, ...]
    created: float
    last_outbound: float
    last_inbound: float | None
    expires_at: float
    tcp_state: TcpState | None
    origin: str | None = None
    lifetime: float | None = None

    def as_json(self, now: float) -> dict[str, Any]:
        """Flat and JSON-friendly, with age and time left relative to `now`."""
        return {
            "proto": str(self.proto),
            "internal": str(self.internal),
            "external": str(self.external),
            "remote": self.remote,
            "permissions": list(self.permissions),
            "created": self.created,
            "age": now - self.created,
            "last_outbound": self.last_outbound,
            "last_inbound": self.last_inbound,
            "expires_at": self.expires_at,
            "expires_in": self.expires_at - now,
            "tcp_state": None if self.tcp_state is None else self.tcp_state.value,
            "origin": self.origin or "traffic",
            "lifetime": self.lifetime,
            "detail": (
                f"{self.proto} {self.internal} -> {self.external}"
                f" for {'any' if self.remote is None else self.remote},"
                f" expires at {format_time(self.expires_at)}"
                + ("" if self.origin is None else f" ({self.origin}, lifetime {self.lifetime:g} s)")
            ),
        }
