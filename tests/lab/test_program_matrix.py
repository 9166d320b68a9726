"""`natlab matrix --run`: the example ICE agent (examples/ice-agent) through real labs.

The agent is a program natlab knows nothing of: it gets its role, STUN and
TURN servers from NATLAB_* and meets its peer through NATLAB_SHARED. natlab
judges each cell by the agent's exit status and by what the two routers
delivered (direct, or through the relay). Every cell's lab must be gone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from natlab.scenario.expectations import TYPES

pytestmark = pytest.mark.natlab

EXAMPLE = Path(__file__).parents[2] / "examples" / "ice-agent"
AGENT = f"{sys.executable} {EXAMPLE / 'agent.py'}"
FAILS = {("symmetric", "port-restricted"), ("port-restricted", "symmetric"), ("symmetric",) * 2}


def assert_gone(kernel, run_dir: Path, labs: list[str]) -> None:
    for lab in labs:
        assert not kernel.lab_namespaces(lab), f"lab {lab} left namespaces"
        assert not (run_dir / lab).exists(), f"lab {lab} left its state"


def cells(report: dict) -> dict[tuple[str, str], dict]:
    return {(p["caller"]["type"], p["callee"]["type"]): p for p in report["pairs"]}


def test_the_agent_through_all_25_cells_gives_the_fields_table(private_natlab, kernel, tmp_path):
    report = tmp_path / "m.json"
    run = private_natlab.run(
        "matrix",
        "--run",
        AGENT,
        "--jobs",
        "2",
        "--timeout",
        "20",
        "--json-file",
        str(report),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert_gone(kernel, private_natlab.run_dir, [p["lab"] for p in data["pairs"]])
    seen = {cell: p["observed"] for cell, p in cells(data).items()}
    assert seen == {(a, b): "failed" if (a, b) in FAILS else "direct" for a in TYPES for b in TYPES}
    for cell, pair in cells(data).items():
        if cell in FAILS:  # both agents gave up, and the routers say why: their drops
            assert pair["programs"] == {"phone-b": "exit 1", "phone-c": "exit 1"}, pair
            assert sum(sum(r.values()) for r in pair["drops"].values()) > 0, pair
        else:  # the pair natlab saw goes between the two routers' public sides
            assert pair["selected_pair"] and " <-> " in pair["selected_pair"], pair


def test_with_turn_the_symmetric_pairs_connect_through_the_relay(private_natlab, kernel, tmp_path):
    """The example's matrix file, with this interpreter: the failing pairs go via TURN."""
    spec = yaml.safe_load((EXAMPLE / "matrix.yaml").read_text())
    spec.update(topology=str(EXAMPLE / spec["topology"]), run=AGENT)
    spec["types"] = ["port-restricted", "symmetric"]
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(yaml.safe_dump(spec))
    report = tmp_path / "m.json"
    run = private_natlab.run("matrix", str(matrix_file), "--json-file", str(report), timeout=200)
    assert run.returncode == 0, run.stderr
    data = json.loads(report.read_text())
    assert_gone(kernel, private_natlab.run_dir, [p["lab"] for p in data["pairs"]])
    seen = {cell: p["observed"] for cell, p in cells(data).items()}
    assert seen == {
        ("port-restricted", "port-restricted"): "direct",
        ("port-restricted", "symmetric"): "relayed",
        ("symmetric", "port-restricted"): "relayed",
        ("symmetric", "symmetric"): "relayed",
    }
    relayed = cells(data)[("symmetric", "symmetric")]
    assert "relay 203.0.113." in relayed["selected_pair"] and relayed["shown"] == (
        "connected via relay"
    )


def test_shards_run_apart_and_merged_equal_the_unsharded_matrix(private_natlab, tmp_path):
    """What CI does with --shard: 1/2 and 2/2 on two machines, then merge."""
    common = ["matrix", "--run", AGENT, "--types", "full-cone,symmetric", "--timeout", "20"]
    reports = {}
    for name, extra in (("whole", []), ("1", ["--shard", "1/2"]), ("2", ["--shard", "2/2"])):
        reports[name] = tmp_path / f"{name}.json"
        run = private_natlab.run(*common, *extra, "--json-file", str(reports[name]), timeout=200)
        assert run.returncode == 0, run.stderr
    merged_file = tmp_path / "merged.json"
    merge = private_natlab.run(
        "matrix", "merge", str(reports["1"]), str(reports["2"]), "--json-file", str(merged_file)
    )
    assert merge.returncode == 0, merge.stderr
    whole = json.loads(reports["whole"].read_text())
    merged = json.loads(merged_file.read_text())
    shard_one = json.loads(reports["1"].read_text())
    assert len(shard_one["pairs"]) == 2 and shard_one["shard"] == {"index": 1, "count": 2}

    def outcome(report: dict) -> list[tuple]:
        return [
            (p["caller"]["type"], p["callee"]["type"], p["expected"], p["observed"], p["verdict"])
            for p in report["pairs"]
        ]

    assert outcome(merged) == outcome(whole)
    for key in ("types", "verdict", "exit_code", "passed", "run_a", "routers", "nodes"):
        assert merged[key] == whole[key], key


def _alive(marker: str) -> list[str]:
    """Command lines of processes still running that carry marker."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if marker in line and "pytest" not in line:
            found.append(line)
    return found


def test_a_missing_program_is_an_error_and_a_hanging_one_is_stopped(
    private_natlab, kernel, tmp_path
):
    """No such command: the cell's error. One that ignores SIGTERM and leaves a child behind:
    `failed: timeout`, and its whole process group is gone afterwards."""
    missing = tmp_path / "missing.json"
    run = private_natlab.run(
        "matrix",
        "--run",
        "/nonexistent/program",
        "--types",
        "full-cone",
        "--json-file",
        str(missing),
    )
    assert run.returncode == 1, run.stderr
    (cell,) = json.loads(missing.read_text())["pairs"]
    assert cell["verdict"] == "error" and "cannot start /nonexistent/program" in cell["error"]
    marker = f"natlab-hang-{tmp_path.name}"
    stubborn = (
        f"bash -c 'trap \"\" TERM; (exec -a {marker}-child sleep 300) & exec -a {marker} sleep 300'"
    )
    hung = tmp_path / "hung.json"
    run = private_natlab.run(
        "matrix",
        "--run",
        stubborn,
        "--types",
        "full-cone",
        "--timeout",
        "1",
        "--json-file",
        str(hung),
    )
    assert run.returncode == 1, run.stderr
    (cell,) = json.loads(hung.read_text())["pairs"]
    assert cell["shown"] == "failed: timeout / timeout" and cell["verdict"] == "failed"
    assert not _alive(marker)  # the program, and the child it left, both ignoring SIGTERM
    assert_gone(kernel, private_natlab.run_dir, [cell["lab"]])
