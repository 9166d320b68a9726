"""--shard K/N slices the cells deterministically; merging the shards' reports gives the whole."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.errors import NatlabError
from natlab.scenario.expectations import TYPES
from natlab.scenario.shards import merge_reports, parse_shard, shard_cells, slow_first


@pytest.mark.parametrize(("text", "shard"), [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3 / 3 ", (3, 3))])
def test_a_shard_is_k_of_n(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2", "1/1001"])
def test_anything_else_is_refused_naming_the_option(text):
    with pytest.raises(NatlabError, match="is not a shard") as caught:
        parse_shard(text)
    assert caught.value.field == "--shard"


@given(cells=st.lists(st.integers(), max_size=60, unique=True), count=st.integers(1, 12))
def test_shards_partition_the_cells_in_order(cells, count):
    shards = [shard_cells(cells, index, count) for index in range(1, count + 1)]
    assert sorted(c for shard in shards for c in shard) == sorted(cells)
    for shard in shards:  # each keeps table order
        assert shard == [c for c in cells if c in shard]
    assert [len(s) for s in shards] == sorted((len(s) for s in shards), reverse=True)


def _pair(a: str, b: str, verdict: str = "passed") -> dict:
    observed = "no media" if {a, b} == {"symmetric"} else "two-way"
    return {
        "caller": {"phone": "phone-b", "router": "branch1", "type": a},
        "callee": {"phone": "phone-c", "router": "branch2", "type": b},
        "expected": observed,
        "observed": observed,
        "verdict": verdict,
        "passed": verdict == "passed",
        "fault": None,
        "explanation": [],
        "scenario": {"seconds": 1.5},
    }


def _report(types, shard=None, verdicts=None, exit_code=0) -> dict:
    cells = [(a, b) for a in types for b in types]
    if shard is not None:
        cells = shard_cells(cells, *shard)
    verdicts = verdicts or {}
    pairs = [_pair(a, b, verdicts.get((a, b), "passed")) for a, b in cells]
    return {
        "schema": "natlab/matrix/1",
        "topology": "main-branch.yaml",
        "types": list(types),
        "relay": False,
        "jobs": 2,
        "verdict": "passed",
        "passed": True,
        "exit_code": exit_code,
        "seconds": 10.0,
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "pairs": pairs,
    }


@pytest.mark.parametrize("count", [1, 2, 3, 7, 30])
def test_merged_shards_equal_the_unsharded_report(count):
    whole = _report(TYPES)
    shards = [(f"s{k}.json", _report(TYPES, (k, count))) for k in range(1, count + 1)]
    merged = merge_reports(list(reversed(shards)))  # in any order
    assert merged["pairs"] == whole["pairs"]
    for key in ("topology", "types", "relay", "verdict", "passed", "exit_code"):
        assert merged[key] == whole[key], key
    assert merged["merged"] == count and merged["shard"] is None


def test_a_failure_or_fault_in_one_shard_is_the_merged_verdict_and_exit_code():
    verdicts = {("symmetric", "symmetric"): "failed", ("public", "restricted"): "fault"}
    shards = []
    for index in (1, 2):
        report = _report(TYPES, (index, 2), verdicts)
        mine = {p["verdict"] for p in report["pairs"]}
        report["exit_code"] = 3 if "fault" in mine else 1 if "failed" in mine else 0
        shards.append((f"{index}.json", report))
    assert {shards[0][1]["exit_code"], shards[1][1]["exit_code"]} == {1, 3}  # one each
    merged = merge_reports(shards)
    assert merged["verdict"] == "fault" and merged["exit_code"] == 3 and not merged["passed"]


def test_a_missing_shard_is_named():
    with pytest.raises(NatlabError, match=r"shard 2/3 missing"):
        merge_reports([("a", _report(TYPES, (1, 3))), ("c", _report(TYPES, (3, 3)))])


def test_a_shard_given_twice_is_refused():
    one = _report(TYPES, (1, 2))
    with pytest.raises(NatlabError, match="both shard 1/2"):
        merge_reports([("a", one), ("b", copy.deepcopy(one)), ("c", _report(TYPES, (2, 2)))])


def test_shards_of_different_matrices_are_refused_naming_what_differs():
    other = _report(TYPES, (2, 2))
    other["relay"] = True
    with pytest.raises(NatlabError, match="relay differ"):
        merge_reports([("a", _report(TYPES, (1, 2))), ("b", other)])


def test_shards_of_different_splits_are_refused():
    with pytest.raises(NatlabError, match="shard 2/3"):
        merge_reports([("a", _report(TYPES, (1, 2))), ("b", _report(TYPES, (2, 3)))])


def test_a_whole_report_is_not_a_shard():
    with pytest.raises(NatlabError, match="whole matrix, not of a shard"):
        merge_reports([("a", _report(TYPES))])


@pytest.mark.parametrize(
    "garbage", [[], "text", {"schema": "natlab/run/1"}, {"schema": "natlab/matrix/1", "shard": {}}]
)
def test_garbage_is_refused_naming_the_file(garbage):
    with pytest.raises(NatlabError, match=r"g\.json"):
        merge_reports([("g.json", garbage)])


def test_a_cell_missing_from_its_shard_is_found():
    broken = _report(TYPES, (1, 2))
    broken["pairs"].pop()
    with pytest.raises(NatlabError, match="do not add up"):
        merge_reports([("a", broken), ("b", _report(TYPES, (2, 2)))])


def test_slow_cells_start_first_and_the_rest_keep_table_order():
    cells = [(a, b) for a in TYPES for b in TYPES]
    slow = {("symmetric", "symmetric"), ("port-restricted", "symmetric")}
    order = slow_first(cells, lambda cell: cell in slow)
    assert order[:2] == [("port-restricted", "symmetric"), ("symmetric", "symmetric")]
    assert order[2:] == [cell for cell in cells if cell not in slow]
