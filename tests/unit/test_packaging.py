"""What an installed natlab carries: its built-in files by name, their schemas and docs.

After `pip install natlab` the repository's paths do not exist; everything
the README names must be found inside the package, and a file format's
reference must name every field the schema has.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

import natlab
from natlab import catalog
from natlab.errors import NatlabError
from natlab.file_formats import FORMATS, json_schema
from natlab.scenario.model import load_scenario
from natlab.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DOCS = {
    "topology": REPO / "docs" / "topology.md",
    "scenario": REPO / "docs" / "scenarios.md",
    "matrix": REPO / "docs" / "matrix.md",
}


def test_every_built_in_file_is_package_data():
    """The wheel holds what setuptools' package-data globs match: every shipped YAML must."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["natlab"]
    package = REPO / "natlab"
    shipped = [
        path.relative_to(package).as_posix()
        for folder in ("topologies", "scenarios")
        for path in (package / folder).rglob("*.yaml")
    ]
    assert any(p.startswith("scenarios/topologies/") for p in shipped)
    missing = [p for p in shipped if not any(fnmatch.fnmatch(p, g) for g in patterns)]
    assert not missing, f"not in the wheel: {missing}"
    assert "py.typed" in patterns and (package / "py.typed").is_file()


@pytest.mark.parametrize("name", catalog.names("topology"))
def test_a_built_in_topology_loads_by_name_from_anywhere(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_topology(name).name == name
    assert load_topology(f"{name}.yaml").name == name


@pytest.mark.parametrize("name", catalog.names("scenario"))
def test_a_built_in_scenario_and_its_topology_load_by_name_from_anywhere(
    name, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert load_scenario(name).steps


def test_the_repository_folders_are_the_packages():
    assert (REPO / "topologies").resolve() == catalog.FOLDERS["topology"]
    assert (REPO / "scenarios").resolve() == catalog.FOLDERS["scenario"]


def test_an_existing_path_wins_over_a_built_in_name(tmp_path, monkeypatch):
    mine = (catalog.FOLDERS["topology"] / "main-branch.yaml").read_text()
    (tmp_path / "main-branch").write_text(mine.replace("name: main-branch", "name: mine"))
    monkeypatch.chdir(tmp_path)
    assert load_topology("main-branch").name == "mine"


def test_an_unknown_name_lists_the_built_in_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NatlabError) as error:
        load_scenario("symetric-fails")
    assert "no such scenario file" in str(error.value)
    for name in catalog.names("scenario"):
        assert name in error.value.fix


def test_a_path_with_a_folder_is_never_taken_for_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NatlabError, match="no such topology file"):
        load_topology("topologies/main-branch.yaml")


def test_every_built_in_file_has_a_description():
    for kind in ("topology", "scenario"):
        for entry in catalog.entries(kind):
            assert entry.about, f"{entry.path} says nothing about itself"


def test_listings_for_scripts_carry_a_schema_version(natlab):
    for kind, plural in catalog.PLURALS.items():
        result = natlab(plural, "--json")
        assert result.returncode == 0, result.stderr
        listing = json.loads(result.stdout)
        assert listing["schema"] == f"natlab/{plural}/1"
        assert [row["name"] for row in listing[plural]] == catalog.names(kind)
        assert all(Path(row["path"]).is_file() and row["about"] for row in listing[plural])


@pytest.mark.parametrize("kind", FORMATS)
def test_the_schema_accepts_every_built_in_file(kind, natlab):
    result = natlab("schema", kind)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema == json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [entry.path for entry in catalog.entries(kind)] if kind != "matrix" else []
    if kind == "matrix":  # no built-in matrix files: the example's
        files += [REPO / "examples" / "ice-agent" / "matrix.yaml"]
    if kind == "scenario":
        files += sorted((REPO / "natlab" / "scenario" / "demos").glob("*.yaml"))
    for path in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{path}: {errors}"


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("topology", lambda d: d["routers"]["main"].update(nat="cone")),
        ("topology", lambda d: d["routers"]["main"].update(nat={"udp_timout": 30})),
        ("topology", lambda d: d["hosts"]["pbx"].update(rol="pbx")),
        ("scenario", lambda d: d["steps"].append({"cal": {"from": "a", "to": "b"}})),
        ("scenario", lambda d: d["steps"][0].update(expect={"media": "loud"})),
        ("matrix", lambda d: d.update(types=["cone"])),
        ("matrix", lambda d: d.update(expect={"symmetric x cone": "failed"})),
        ("matrix", lambda d: d.update(expect={"symmetric x symmetric": "works"})),
        ("matrix", lambda d: d.update(rnu="x")),
    ],
)
def test_the_schema_rejects_what_natlab_rejects(kind, change):
    if kind == "matrix":
        data = yaml.safe_load((REPO / "examples" / "ice-agent" / "matrix.yaml").read_text())
    else:
        name = {"topology": "main-branch", "scenario": "symmetric-fails"}[kind]
        data = yaml.safe_load((catalog.FOLDERS[kind] / f"{name}.yaml").read_text())
    change(data)
    validator = jsonschema.Draft202012Validator(json_schema(kind))
    assert list(validator.iter_errors(data))


def _fields(schema: object) -> set[str]:
    if isinstance(schema, list):
        return set().union(*map(_fields, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = set(schema.get("properties", {}))
    return found.union(*map(_fields, schema.values()))


@pytest.mark.parametrize("kind", FORMATS)
def test_the_reference_doc_names_every_field_of_the_schema(kind):
    doc = DOCS[kind].read_text()
    named = set(re.findall(r"`([\w-]+)`", doc))
    missing = sorted(_fields(json_schema(kind)) - named)
    assert not missing, f"{DOCS[kind].name} does not explain: {missing}"


def test_the_readme_links_the_docs():
    readme = (REPO / "README.md").read_text()
    for doc in ("docs/design.md", "docs/topology.md", "docs/scenarios.md"):
        assert f"({doc})" in readme


def test_every_design_reference_is_the_repositorys_own():
    """Outside docs/ (whose pages link each other), the design notes are cited as docs/..."""
    stray = []
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if parts[0] in (".git", ".venv", "docs") or parts[0].endswith(".egg-info"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):  # folders, binary files
            continue
        stray += [
            f"{path.relative_to(REPO)}: {m[0]}"
            for m in re.finditer(r"\S*(?<!docs/)design\.md", text)
        ]
    assert not stray, stray


def test_version_and_lab_are_importable_and_import_natlab_stays_light():
    from natlab import Lab

    assert Lab.__name__ == "Lab"
    assert re.match(r"\d+\.\d+", natlab.__version__)
    code = (
        "import sys, natlab; heavy = [m for m in ('pyroute2', 'natlab.lab', 'pydantic', "
        "'importlib.metadata') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
