"""Every record that crosses a process boundary: JSON and back, and garbage refused cleanly.

Records are generated from their own type hints, so a field added to a
record is covered without touching this file; each goes through real JSON
text, as it would through a file or a socket.
"""

from __future__ import annotations

import contextlib
import json
import types
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from natlab import records
from natlab.core.behaviour import PRESETS
from natlab.core.craft import udp_packet
from natlab.core.engine import NatConfig, NatEngine
from natlab.core.events import DropReason
from natlab.core.packets import Endpoint, Proto, parse
from natlab.errors import NatlabError
from natlab.records import (
    EVENTS_VERSION,
    PBX_REQUESTS,
    PHONE_REQUESTS,
    ROUTER_REQUESTS,
    Record,
    RouterEvent,
    event_json,
    request_from_json,
    trace_record,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)  # fmt: skip
ADDRESSES = {
    "an IP address": st.ip_addresses().map(str),
    "an IP network": st.ip_addresses(v=4).map(lambda ip: f"{ip}/32"),
}
KINDS = [*records.ENGINE_EVENTS, records.EXHAUSTED, records.STUN_MALFORMED, "a-newer-kind"]


def strategy(hint: Any) -> st.SearchStrategy:
    """Values of a record field's type, as its readers take them."""
    origin = get_origin(hint)
    if hint is Any:
        return finite_json
    if origin is Annotated:
        return ADDRESSES[get_args(hint)[1]]
    if origin in (Union, types.UnionType):
        return st.one_of([strategy(option) for option in get_args(hint)])
    if origin is Literal:
        return st.sampled_from(get_args(hint))
    if origin is list:
        return st.lists(strategy(get_args(hint)[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), strategy(get_args(hint)[1]), max_size=3)
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers()
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is str:
        return st.text(max_size=10)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and is_dataclass(hint):
        return instances(hint)
    raise AssertionError(f"no strategy for {hint!r}")


def instances(cls: type) -> st.SearchStrategy:
    hints = get_type_hints(cls, include_extras=True)
    given = {f.name: strategy(hints[f.name]) for f in fields(cls)}
    if issubclass(cls, RouterEvent):
        given["kind"] = st.sampled_from(KINDS)

    @st.composite
    def build(draw):
        values = {name: draw(values) for name, values in given.items()}
        try:
            return cls(**values)
        except ValueError:  # what __post_init__ refuses (an event without its kind's fields)
            assume(False)

    return build()


def _records() -> list[type[Record]]:
    found = [
        value
        for value in vars(records).values()
        if isinstance(value, type) and issubclass(value, Record) and is_dataclass(value)
    ]
    return sorted(found, key=lambda cls: cls.__name__)


RECORDS = _records()


def test_every_kind_of_record_is_covered():
    names = {cls.__name__ for cls in RECORDS}
    assert {"RouterEvent", "NatRecord", "LabRecord", "CallReport", "ShowHead", "ProbeReport",
            "PhoneStatus", "Registrations", "SetRequest", "CallRequest"} <= names  # fmt: skip


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
@settings(
    max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_a_record_reads_back_from_its_json(cls, data):
    record = data.draw(instances(cls))
    text = json.dumps(record.to_json(), allow_nan=False)
    assert cls.from_json(json.loads(text)) == record


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
@settings(max_examples=40)
@given(value=json_values)
def test_garbage_is_a_natlab_error_and_nothing_else(cls, value):
    with contextlib.suppress(NatlabError):
        cls.from_json(value)


trace_lines = json_values | st.fixed_dictionaries(
    {"type": st.sampled_from(["lab", "nat", "step", "call", "rtp", "stun"])},
    optional={
        "at": json_values,
        "phase": st.sampled_from(["start", "end"]),
        "kind": st.sampled_from(KINDS),
        "router": json_values,
    },
)


@settings(max_examples=100)
@given(value=trace_lines)
def test_a_trace_line_of_garbage_is_a_natlab_error(value):
    with contextlib.suppress(NatlabError):
        trace_record(value)


def test_an_event_written_by_a_newer_natlab_is_refused_with_the_fix():
    line = {"v": EVENTS_VERSION + 1, "at": 1.0, "router": "r", "kind": "flushed", "count": 0}
    with pytest.raises(NatlabError, match="written in version 2") as raised:
        RouterEvent.from_json(line)
    assert "newer" in raised.value.fix
    del line["v"]  # written before versions
    assert RouterEvent.from_json(line).count == 0


def test_each_kind_of_engine_event_is_a_router_event_with_its_fields():
    """The engine's events, as the daemon writes them (event_json), read back as records."""
    engine = NatEngine(NatConfig(PRESETS["port-restricted"], ("203.0.113.2",), ("10.1.0.0/24",)))
    inside, peer = Endpoint("10.1.0.2", 5000), Endpoint("203.0.113.9", 6000)
    engine.outbound(parse(udp_packet(inside, peer, b"x")), 1.0)
    stranger = Endpoint("203.0.113.8", 1)
    engine.inbound(parse(udp_packet(stranger, Endpoint("203.0.113.2", 5000), b"x")), 2.0)
    engine.flush(3.0)
    events = engine.drain_events()
    assert {event.kind for event in events} >= {"mapping-created", "drop", "flushed"}
    for event in events:
        line = json.loads(json.dumps(event_json(event, "branch1")))
        assert line["v"] == EVENTS_VERSION
        record = RouterEvent.from_json(line)
        assert record == RouterEvent.of(event, "branch1") and record.router == "branch1"
        assert record.to_json() == {key: value for key, value in line.items() if value is not None}
    drop = next(RouterEvent.of(e, "b") for e in events if e.kind == "drop")
    assert drop.reason is DropReason.FILTERED_ADDRESS and drop.proto == str(Proto.UDP)


def test_every_drop_reason_says_what_it_means_and_the_daemons_own_are_reasons_too():
    assert all(reason.meaning for reason in DropReason)
    for daemon_drop in ("no-route", "ttl-expired", "malformed", "send-error", "receive-overflow"):
        assert DropReason(daemon_drop).counter == "dropped_" + daemon_drop.replace("-", "_")
    assert {r for r in DropReason if r.filtered} == {
        DropReason.NO_MAPPING,
        DropReason.FILTERED_ADDRESS,
        DropReason.FILTERED_PORT,
        DropReason.EXPIRED,
    }


@pytest.mark.parametrize(
    ("kinds", "data", "problem"),
    [
        (ROUTER_REQUESTS, {"op": "dance"}, "unknown request 'dance'"),
        (ROUTER_REQUESTS, {"op": "show", "limit": "3"}, "limit: input should be a valid integer"),
        (ROUTER_REQUESTS, {"op": "show", "limit": -1}, "limit is a number of mappings"),
        (ROUTER_REQUESTS, {"op": "set"}, "behaviour: field required"),
        (PHONE_REQUESTS, {"op": "call"}, "to: field required"),
        (PHONE_REQUESTS, {"op": "registrations"}, "unknown request 'registrations'"),
        (PBX_REQUESTS, {"op": "relay", "phones": 3}, "phones: input should be"),
        (PBX_REQUESTS, ["op"], "unknown request None"),
    ],
)
def test_a_request_a_process_does_not_serve_is_refused_naming_why(kinds, data, problem):
    with pytest.raises(NatlabError, match=problem):
        request_from_json(data, kinds)


def test_each_process_reads_back_the_requests_its_clients_send():
    sent = [records.ShowRequest(3), records.AdvanceRequest(31.0), records.SetRequest({"a": 1})]
    assert [request_from_json(r.to_json(), ROUTER_REQUESTS) for r in sent] == sent
    call = records.CallRequest("phone-c", 1.5, "srflx")
    assert request_from_json(call.to_json(), PHONE_REQUESTS) == call
    assert request_from_json({"op": "ping"}, PBX_REQUESTS) == records.PingRequest()
