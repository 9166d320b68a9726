"""`natlab explain` handed something that is not a trace: exit 2 naming the file and line.

Also the report paths of explain, run and matrix: refused before any work
when they cannot be written, not with a traceback after it.
"""

import json

import pytest

from natlab.errors import NatlabError
from natlab.records import NatRecord
from natlab.scenario import trace
from natlab.scenario.matrix import pair_scenario
from natlab.scenario.reports import check_writable
from natlab.scenario.trace import MAX_LINE_BYTES, read_trace, write_trace

LAB = trace.lab_record(pair_scenario("symmetric", "port-restricted"), "mx-lab", 1.0).to_json()
MAPPING = {
    "type": "nat",
    "at": 2.0,
    "router": "branch1",
    "kind": "mapping-created",
    "proto": "udp",
    "internal": "10.1.0.2:5000",
    "external": "203.0.113.2:5000",
    "remote": "203.0.113.4:3478",
}
FIX = "fix: give a trace written by 'natlab run --trace FILE'"


def written(path, *records: object):
    """A file of JSON lines, which need not be a trace."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def explained(natlab, path, *args: str) -> str:
    result = natlab("explain", str(path), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_binary_file_is_not_a_trace(natlab, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(bytes(range(255, -1, -1)) * 4)  # 0xff first: no UTF-8
    message = explained(natlab, path)
    assert f"{path}:1: not a trace: not UTF-8 text (a binary file?)" in message
    assert FIX in message


def test_an_empty_file_is_not_a_trace(natlab, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n\n")
    assert f"{path}: not a trace: the file is empty" in explained(natlab, path)


def test_a_record_missing_a_field_the_story_reads_is_named_with_its_line(natlab, tmp_path):
    missing = {key: value for key, value in MAPPING.items() if key != "external"}
    path = written(tmp_path / "t.jsonl", LAB, MAPPING, missing)
    message = explained(natlab, path)
    assert f"{path}:3: not a trace record: a 'nat' record: external: field required" in message


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({**MAPPING, "at": "2.0"}, "a 'nat' record: at: input should be a valid number"),
        ({**MAPPING, "router": "elsewhere"}, "router 'elsewhere' is not one of the trace's lab"),
        ({"type": "rtp", "at": 1, "sender": "a", "receiver": "b", "sent": 1, "received": True},
         "a 'rtp' record: received: input should be a valid integer"),
        ({"type": "step", "at": 1, "phase": "start", "index": 0}, "text: field required"),
        ({"type": "nat", "at": 1, "router": "branch1", "kind": "drop", "reason": "no-mapping",
          "src": "a"},
         "a drop with 'src' has a 'dst' too"),
        ({"type": "nat", "at": 1, "router": "branch1", "kind": "drop", "reason": "x"},
         "reason: input should be 'no-mapping' or"),
        (["lab"], "a record is a JSON object, not list"),
    ],
)  # fmt: skip
def test_a_record_of_the_wrong_shape_is_refused_naming_what_is_wrong(tmp_path, record, problem):
    path = written(tmp_path / "t.jsonl", LAB, record)
    with pytest.raises(NatlabError) as raised:
        read_trace(path)
    assert raised.value.line == 2 and problem in raised.value.problem


def test_the_first_record_must_describe_the_lab(tmp_path):
    path = written(tmp_path / "t.jsonl", MAPPING)
    with pytest.raises(NatlabError, match="the first record of a trace describes its lab"):
        read_trace(path)


def test_a_host_behind_a_router_the_lab_does_not_have_is_refused(tmp_path):
    lab = json.loads(json.dumps(LAB))
    lab["hosts"]["phone-b"]["router"] = "phone-c"
    with pytest.raises(NatlabError, match="host phone-b's router 'phone-c' is not in routers"):
        read_trace(written(tmp_path / "t.jsonl", lab))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes)"),
        ("[" * 100_000, "not JSON (nested too deep)"),
        ('{"at": 1' + "0" * 5000 + "}", "not JSON (Exceeds the limit"),
        ("x" * (MAX_LINE_BYTES + 1), "a line longer than 1024 KiB"),
    ],
    ids=["broken", "deep", "huge-number", "huge-line"],
)
def test_a_line_that_is_no_json_record_is_refused(tmp_path, line, problem):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(LAB) + "\n" + line + "\n")
    with pytest.raises(NatlabError) as raised:
        read_trace(path)
    assert raised.value.line == 2 and problem in raised.value.problem


def test_an_unwritable_html_path_is_refused_before_the_trace_is_read(natlab, tmp_path):
    path = written(tmp_path / "t.jsonl", LAB, MAPPING)
    report = tmp_path / "missing" / "report.html"
    message = explained(natlab, path, "--html", str(report))
    assert message.startswith(f"natlab: error: --html: cannot write {report}: No such file")
    assert "fix: give a path in a directory that exists" in message


def test_explain_tells_a_good_trace_and_writes_its_html(natlab, tmp_path):
    path = write_trace(tmp_path / "t.jsonl", [trace.lab_record(
        pair_scenario("symmetric", "port-restricted"), "mx-lab", 1.0
    ), NatRecord.from_json(MAPPING)])  # fmt: skip
    result = natlab("explain", str(path), "--html", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    assert "branch1: new mapping for phone-b" in result.stdout
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_check_writable_leaves_files_as_they_were(tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    check_writable(kept, "--json")
    check_writable(tmp_path / "new.xml", "--junit")
    check_writable(None, "--html")
    assert kept.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [kept.name]
    with pytest.raises(NatlabError, match=r"cannot write .*: Is a directory") as raised:
        check_writable(tmp_path, "--junit")
    assert raised.value.field == "--junit"
