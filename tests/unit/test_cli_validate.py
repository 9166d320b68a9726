"""`natlab validate` as a user runs it: a separate process, its exit code and output.

The console script is natlab.cli:main; running that in a fresh interpreter is
what `natlab` does, so what is asserted here is what a user sees. Validation
builds nothing, so none of this needs root.
"""

from pathlib import Path

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"

BAD = """\
name: bad
segments:
  internet: {subnet: 8.8.8.0/24}
"""


def test_a_valid_file_prints_its_plan_and_exits_0(natlab):
    path = TOPOLOGIES / "pbx-public-access.yaml"
    result = natlab("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: topology 'pbx-public-access' is valid" in result.stdout
    assert "203.0.113.1/24" in result.stdout  # the main router's WAN, as written
    assert result.stderr == ""


def test_a_bad_file_names_file_line_field_and_fix_without_a_traceback(natlab, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = natlab("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"natlab: error: {path}:3: segments.internet.subnet: "
        "subnet 8.8.8.0/24 is outside the ranges a lab may use\n  fix: use a private range"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""


def test_a_missing_file_is_a_user_error_too(natlab, tmp_path):
    path = tmp_path / "nowhere.yaml"
    result = natlab("validate", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"natlab: error: {path}: no such topology file, and no built-in topology of that name\n"
        "  fix: give the path of a YAML file, or one of the built-in topologies: "
        "cgnat, main-branch, pbx-public-access, port-control\n"
    )
    assert "Traceback" not in result.stdout


def test_every_file_before_the_bad_one_is_reported_valid(natlab, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    good = TOPOLOGIES / "main-branch.yaml"
    result = natlab("validate", str(good), str(bad))
    assert result.returncode == 2
    assert "topology 'main-branch' is valid" in result.stdout
    assert f"{bad}:3: segments.internet.subnet" in result.stderr
    assert "Traceback" not in result.stderr
