"""Generated files through what `natlab explain` does: read, tell, render, write HTML.

Random bytes, random JSON lines and valid traces with one record mutated
(a field dropped, retyped or swapped for another record's) must each end as
a NatlabError from read_trace, or as a story and an HTML page: any other
exception fails the test, and so does an example slower than the deadline.
"""

import io
import json
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from natlab.errors import NatlabError
from natlab.records import OtherRecord, trace_record
from natlab.render import scene_renderables
from natlab.scenario import trace
from natlab.scenario.html import trace_html
from natlab.scenario.matrix import pair_scenario
from natlab.scenario.story import tell
from natlab.scenario.trace import read_trace

LAB = trace.lab_record(pair_scenario("symmetric", "port-restricted"), "mx-lab", 1.0).to_json()
B, C = "10.1.0.2:5000", "10.2.0.2:6000"
B_OUT, C_OUT, STUN = "203.0.113.2:5000", "203.0.113.3:6000", "203.0.113.4:3478"


def nat(kind, router="branch1", **fields):
    return {"type": "nat", "at": 3.0, "router": router, "kind": kind, "clock": 1.5, **fields}


VALID = [
    LAB,
    {"type": "step", "at": 2.0, "phase": "start", "index": 0, "text": "call phone-b -> phone-c"},
    {"type": "call", "at": 2.1, "call": "c1", "caller": "phone-b", "callee": "phone-c",
     "mode": "ice", "verdict": "none", "ice": "failed", "error": None, "selected_pair": None},
    {"type": "candidates", "at": 2.1, "call": "c1", "phone": "phone-b",
     "candidates": [{"address": B, "type": "host"}, {"address": B_OUT, "type": "srflx"}]},
    nat("mapping-created", proto="udp", internal=B, external=B_OUT, remote=STUN),
    {"type": "stun", "at": 3.0, "router": "branch1", "host": "phone-b", "internal": B,
     "mapped": B_OUT, "server": STUN},
    nat("mapping-created", "branch2", proto="udp", internal=C, external=C_OUT, remote=B_OUT),
    nat("drop", "branch1", reason="filtered-port", direction="inbound", proto="udp", src=C_OUT,
        dst=B_OUT, detail="mapping has not sent there"),
    nat("drop", "branch2", reason="malformed", detail="short frame"),
    nat("exhausted", reason="exhausted", detail="no port left"),
    nat("hairpinned", proto="udp", src=B, dst=B, src_external=B_OUT, dst_external=B_OUT),
    nat("mapping-expired", proto="udp", internal=B, external=B_OUT, expired_at=9.0,
        detail="expired at 9"),
    nat("reconfigured", behaviour="full-cone", flushed=1, detail="behaviour is now full-cone"),
    nat("flushed", count=0, detail="flushed 0 dynamic mapping(s)"),
    {"type": "ice-check", "at": 4.0, "call": "c1", "phone": "phone-b", "local": B,
     "local_type": "host", "remote": C_OUT, "remote_type": "srflx", "state": "failed",
     "selected": False},
    {"type": "rtp", "at": 5.0, "call": "c1", "sender": "phone-b", "receiver": "phone-c",
     "sent": 50, "received": 0},
    {"type": "rtp", "at": 5.0, "call": "c1", "sender": "phone-c", "receiver": "phone-b",
     "sent": 50, "received": 0},
    {"type": "step", "at": 6.0, "phase": "end", "index": 0, "text": "call phone-b -> phone-c",
     "passed": False, "error": None,
     "checks": [{"what": "media", "expected": "two-way", "observed": "none", "ok": False}]},
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(sorted({key for record in VALID for key in record} | {"src", "dst"}))


@st.composite
def mutated(draw) -> bytes:
    """The valid trace with one record changed: a field dropped, set, or records swapped."""
    records = json.loads(json.dumps(VALID))
    index = draw(st.integers(0, len(records) - 1))
    record = records[index]
    how = draw(st.sampled_from(["drop", "set", "set-nested", "move", "duplicate"]))
    if how == "drop" and record:
        record.pop(draw(st.sampled_from(sorted(record))))
    elif how == "set":
        record[draw(names)] = draw(json_values)
    elif how == "set-nested":
        nested = [value for value in record.values() if isinstance(value, dict | list) and value]
        if nested:
            target = draw(st.sampled_from(nested))
            key = draw(st.sampled_from(sorted(target) if isinstance(target, dict) else [0]))
            inner = target[key]
            if isinstance(inner, dict) and inner:
                inner[draw(st.sampled_from(sorted(inner)))] = draw(json_values)
            else:
                target[key] = draw(json_values)
    elif how == "move":
        records.insert(draw(st.integers(0, len(records))), records.pop(index))
    else:
        records.insert(index, json.loads(json.dumps(record)))
    return "".join(json.dumps(r) + "\n" for r in records).encode()


random_json_lines = st.lists(json_values, max_size=6).map(
    lambda values: "".join(json.dumps(v) + "\n" for v in [LAB, *values]).encode()
)
traces = st.binary(max_size=400) | random_json_lines | mutated()


@settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(traces)
def test_explain_answers_any_file_with_a_story_or_a_natlab_error(tmp_path, content):
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    try:
        records = read_trace(path)
    except NatlabError:
        return
    scenes = tell(records)
    console = Console(file=io.StringIO(), width=120)
    for number, scene in enumerate(scenes, 1):
        for renderable in scene_renderables(number, len(scenes), scene):
            console.print(renderable)
    assert trace_html(records).startswith("<h2>")


def test_the_valid_trace_is_read_and_told_whole(tmp_path):
    """The base of the mutations is a trace, and reaches every kind of scene the story tells."""
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in VALID))
    records = read_trace(path)
    assert [type(record) for record in records] == [type(trace_record(r)) for r in VALID]
    assert not any(isinstance(record, OtherRecord) for record in records)
    assert read_trace(trace.write_trace(tmp_path / "again.jsonl", records)) == records
    kinds = {scene.kind for scene in tell(records)}
    assert kinds == {"info", "step", "mapping", "drop", "result", "why"}
