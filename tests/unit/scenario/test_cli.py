"""`natlab run` and `natlab matrix` refuse bad input before building anything (no root needed).

Run as a user runs them: a separate process, its exit code and its output.
"""


def test_a_bad_scenario_exits_2_with_file_line_field_and_fix(natlab, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("topology: main-branch\nsteps:\n  - call: {from: phone-b, to: phone-z}\n")
    result = natlab("run", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"natlab: error: {path}:3: steps[0].call.to: no host named 'phone-z' in topology "
        "'main-branch'\n  fix: phones: phone-a, phone-b, phone-c\n"
    )


def test_a_missing_scenario_file_exits_2(natlab, tmp_path):
    result = natlab("run", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "no such scenario file" in result.stderr


def test_an_unknown_matrix_type_exits_2(natlab):
    result = natlab("matrix", "--types", "full-cone,cone")
    assert result.returncode == 2
    assert "--types: unknown NAT type 'cone'" in result.stderr
    assert "use some of: full-cone, restricted, port-restricted, symmetric, public" in (
        result.stderr
    )
