"""`natlab matrix` with programs, shards and merge: input refused before anything is built,
and `natlab matrix merge` end to end (it needs no root: it only reads reports)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from natlab.scenario.expectations import TYPES
from natlab.scenario.shards import shard_cells


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["merge"], "needs the shards' reports"),
        (["merge", "a.json", "--types", "symmetric"], "takes report files, not --types"),
        (["merge", "a.json", "--shard", "1/2"], "takes report files, not --shard"),
        (["pbx-public-access"], "topology 'pbx-public-access' needs programs to run"),
        (["--routers", "branch1,branch2"], "--routers needs programs to run"),
        (["--run", "x", "--relay"], "--relay is for natlab's own phones"),
        (["--run", "x", "--routers", "branch1"], "--routers needs two names"),
        (["--run", "x", "--nodes", "phone-b,pbx"], "'pbx' is not on a LAN of router 'branch2'"),
        (["--run", "x", "--timeout", "0"], "is not a time a pair can have"),
        (["--run-a", "x"], "no program for side b"),
        (["--shard", "3/2"], "'3/2' is not a shard"),
        (["main-branch", "extra"], "unexpected argument 'extra'"),
        (["pbx-public-access", "--run", "x"], "which routers and nodes"),
        (["--run", "x", "--expect", "/nonexistent/e.yaml"], "no such expectation file"),
    ],
)
def test_bad_input_exits_2_before_any_lab(natlab, args, message):
    result = natlab("matrix", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "fix:" in result.stderr


def _shard_report(index: int, count: int, verdicts: dict) -> dict:
    cells = shard_cells([(a, b) for a in TYPES for b in TYPES], index, count)
    pairs = []
    for a, b in cells:
        verdict = verdicts.get((a, b), "passed")
        pairs.append(
            {
                "caller": {"node": "alice", "router": "nat-a", "type": a},
                "callee": {"node": "bob", "router": "nat-b", "type": b},
                "expected": "direct",
                "observed": "direct" if verdict == "passed" else "failed",
                "shown": "connected direct" if verdict == "passed" else "failed: exit 1 / exit 1",
                "verdict": verdict,
                "passed": verdict == "passed",
                "fault": None,
                "explanation": ["alice: exit 1"] if verdict != "passed" else [],
                "seconds": 1.25,
            }
        )
    failed = any(p["verdict"] != "passed" for p in pairs)
    return {
        "schema": "natlab/matrix/1",
        "topology": "turn-lab.yaml",
        "routers": ["nat-a", "nat-b"],
        "nodes": ["alice", "bob"],
        "run_a": ["agent"],
        "run_b": ["agent"],
        "timeout": 20,
        "types": list(TYPES),
        "expect": {},
        "programs": True,
        "jobs": 2,
        "verdict": "failed" if failed else "passed",
        "passed": not failed,
        "exit_code": int(failed),
        "seconds": 12.5,
        "shard": {"index": index, "count": count},
        "pairs": pairs,
    }


def test_merge_joins_shards_into_one_report_junit_html_and_exit_status(natlab, tmp_path):
    bad = {("symmetric", "symmetric"): "failed"}
    names = []
    for index in (1, 2, 3):
        path = tmp_path / f"shard{index}.json"
        path.write_text(json.dumps(_shard_report(index, 3, bad)))
        names.append(str(path))
    out, junit, html = tmp_path / "all.json", tmp_path / "all.xml", tmp_path / "all.html"
    result = natlab(
        "matrix",
        "merge",
        *names,
        "--json-file",
        str(out),
        "--junit",
        str(junit),
        "--html",
        str(html),
        "--json",
    )
    assert result.returncode == 1, result.stderr
    merged = json.loads(out.read_text())
    assert merged == json.loads(result.stdout)
    assert merged["schema"] == "natlab/matrix/1" and merged["merged"] == 3
    cells = [(p["caller"]["type"], p["callee"]["type"]) for p in merged["pairs"]]
    assert cells == [(a, b) for a in TYPES for b in TYPES]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("25", "1", "0")
    assert "symmetric x symmetric" in html.read_text()
    assert "failed: exit 1 / exit 1" in result.stderr  # the table, for people, on stderr


def test_merge_of_passing_shards_exits_0(natlab, tmp_path):
    names = []
    for index in (1, 2):
        path = tmp_path / f"s{index}.json"
        path.write_text(json.dumps(_shard_report(index, 2, {})))
        names.append(str(path))
    assert natlab("matrix", "merge", *names).returncode == 0


def test_merge_refuses_a_file_that_is_not_json(natlab, tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"\xff\xfe not json")
    result = natlab("matrix", "merge", str(path))
    assert result.returncode == 2 and "not JSON" in result.stderr
