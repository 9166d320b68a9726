"""The shape of each trace record, checked as a trace is read.

`natlab explain` reads files users hand it: anything that is not a trace
natlab wrote must be refused with the line at fault, not crash the story or
the HTML report halfway. Each record type lists the fields those read and
their JSON types (strict: "12" is not 12); fields they read with a default
may be left out, but are not null unless the reader expects null. Unknown
record types and nat event kinds pass with just `type` and `at`, as the
story skips them.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_ROUTERS = 100  # the HTML topology recurses once per router behind a router


def _address(text: str) -> str:
    ipaddress.ip_address(text)
    return text


def _network(text: str) -> str:
    ipaddress.ip_network(text)
    return text


Address = Annotated[str, AfterValidator(_address)]
Network = Annotated[str, AfterValidator(_network)]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


class Record(_Part):
    type: str
    at: float


class _Router(_Part):
    wan: Address
    lans: list[Network]
    nat: str
    mapping: str
    filtering: str


class _Host(_Part):
    address: str
    role: str
    router: str | None = None


class LabRecord(Record):
    scenario: str
    about: str | None = None
    lab: str
    routers: dict[str, _Router] = Field(max_length=MAX_ROUTERS)
    hosts: dict[str, _Host]
    stun_servers: list[str]

    @model_validator(mode="after")
    def _gateways(self) -> LabRecord:
        for name, host in self.hosts.items():
            if host.router is not None and host.router not in self.routers:
                raise ValueError(f"host {name}'s router '{host.router}' is not in routers")
        return self


class _Check(_Part):
    what: str
    expected: Any
    observed: Any


class StepRecord(Record):
    phase: Literal["start", "end"]
    index: int
    text: str
    checks: list[_Check] | None = None
    error: str | None = None


class CallRecord(Record):
    caller: str
    callee: str
    mode: str | None
    verdict: str | None
    error: str | None


class _Candidate(_Part):
    address: str
    type: str


class CandidatesRecord(Record):
    phone: str
    candidates: list[_Candidate]


class IceCheckRecord(Record):
    phone: str
    local_type: str
    local: str
    remote_type: str
    remote: str
    state: str


class RtpRecord(Record):
    sender: str
    receiver: str
    sent: int
    received: int


class StunRecord(Record):
    router: str
    host: str
    internal: str
    mapped: str
    server: str


class NatRecord(Record):
    """A router event: the fields any kind may carry, with their types."""

    router: str
    kind: str
    clock: float = 0.0
    proto: str | int = ""
    reason: str = ""
    direction: str = ""
    detail: str = ""
    src: str = ""
    dst: str = ""
    internal: str = ""
    external: str = ""
    remote: str = ""


class MappingCreated(NatRecord):
    proto: str
    internal: str
    external: str
    remote: str


class MappingExpired(NatRecord):
    proto: str
    external: str
    detail: str


class Flushed(NatRecord):
    detail: str


class Reconfigured(Flushed):
    behaviour: str


class Hairpinned(NatRecord):
    src: str
    dst: str
    src_external: str
    dst_external: str


class Dropped(NatRecord):
    reason: str

    @model_validator(mode="after")
    def _packet(self) -> Dropped:
        if "src" in self.model_fields_set and "dst" not in self.model_fields_set:  # drawn src->dst
            raise ValueError("a drop with 'src' has a 'dst' too")
        return self


_RECORDS: dict[str, type[Record]] = {
    "lab": LabRecord,
    "step": StepRecord,
    "call": CallRecord,
    "candidates": CandidatesRecord,
    "ice-check": IceCheckRecord,
    "rtp": RtpRecord,
    "stun": StunRecord,
    "nat": NatRecord,
}
_NAT_KINDS: dict[str, type[NatRecord]] = {
    "mapping-created": MappingCreated,
    "mapping-expired": MappingExpired,
    "flushed": Flushed,
    "reconfigured": Reconfigured,
    "hairpinned": Hairpinned,
    "drop": Dropped,
    "exhausted": Dropped,
}


def record_problem(record: Any, routers: Any) -> str | None:
    """What makes `record` no trace record, or None; `routers`: the lab record's (None: first)."""
    if not isinstance(record, dict):
        return f"a record is a JSON object, not {type(record).__name__}"
    kind = record.get("type")
    if routers is None and kind != "lab":
        return "the first record of a trace describes its lab ('type': 'lab')"
    model = _RECORDS.get(kind, Record) if isinstance(kind, str) else Record
    if model is NatRecord and isinstance(record.get("kind"), str):
        model = _NAT_KINDS.get(record["kind"], NatRecord)
    try:
        model.model_validate(record)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        what = f"a '{kind}' record" if isinstance(kind, str) else "a record"
        message = first["msg"][:1].lower() + first["msg"][1:]
        return f"{what}: {where + ': ' if where else ''}{message}"
    if issubclass(model, NatRecord) and record["router"] not in routers:
        return f"router '{record['router']}' is not one of the trace's lab routers"
    return None
