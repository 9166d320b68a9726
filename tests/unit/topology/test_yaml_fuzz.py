"""Generated YAML through the topology and scenario loaders: a NatlabError or a result, quickly.

The generator writes what breaks loaders: anchors and aliases (nested, chained
into bombs, naming what contains them), merge keys, tags, keys YAML reads as
booleans or numbers, deep nesting, and fragments spliced into a valid
topology so validation runs deep. Any other exception fails the test, and so
does an example slower than the deadline (generous: a loader answers in ms).
"""

import contextlib
import json
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.errors import NatlabError
from natlab.scenario.model import parse_scenario
from natlab.topology import parse_topology

VALID = (Path(__file__).resolve().parents[3] / "topologies" / "main-branch.yaml").read_text()
ANCHORS = ["a", "b", "c"]

ODD_SCALARS = [
    "yes", "no", "on", "off", "~", "null", "1", "-0", "0x1F", "0o17", "1_000", "1:30", "1.5e3",
    ".inf", ".nan", "2024-01-01", "2024-13-45", "2024-01-01T25:00:00", "=", "<<", "''", '"\\x01"',
    "!foo x", "!!binary aGk=", "!!python/object:os.system x", "!!int abc", "!!str 5",
    "!!float x", "!!timestamp 2024-99-99", "!!null x", "!!bool maybe", "! x", "'9" + "9" * 40 + "'",
    "9" * 5000, "10.0.0.0/24", "203.0.113.1", "full-cone", "symmetric", "phone-b", "main-lan",
    "true", "tcp", "5060",
]  # fmt: skip
FIELDS = [
    "name", "segments", "routers", "hosts", "subnet", "segment", "wan", "lan", "lans", "nat",
    "stun", "forwards", "proto", "port", "to", "address", "addresses", "role", "preset",
    "topology", "steps", "call", "from", "expect", "media", "advance", "probe", "register",
    "<<", "yes", "1", "~", "? [a]", "&a k", "*a",
]  # fmt: skip

scalars = st.sampled_from(ODD_SCALARS) | st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6
).map(json.dumps)  # JSON's escapes are YAML's
aliases = st.sampled_from([f"*{name}" for name in ANCHORS])


def collections(children):
    keys = st.sampled_from(FIELDS)
    mapping = st.lists(st.tuples(keys, children), max_size=4).map(
        lambda pairs: "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
    )
    sequence = st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    anchored = st.tuples(st.sampled_from(ANCHORS), children).map(lambda a: f"&{a[0]} {a[1]}")
    merged = st.tuples(aliases, mapping).map(lambda m: "{<<: " + m[0] + ", " + m[1][1:])
    tagged = st.tuples(st.sampled_from(["!x", "!!map", "!!seq", "!!set", "!!omap"]), children)
    return mapping | sequence | anchored | merged | tagged.map(" ".join)


values = st.recursive(scalars | aliases, collections, max_leaves=25)


@st.composite
def alias_bombs(draw) -> str:
    """Levels of lists, each of `width` aliases of the level before."""
    width, levels = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = ["l0: &l0 [x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


deep = st.tuples(st.integers(0, 6000), st.sampled_from(["[", "{a: ", "- "])).map(
    lambda nest: nest[1] * nest[0] + "x" + {"[": "]", "{a: ": "}", "- ": ""}[nest[1]] * nest[0]
)


@st.composite
def spliced(draw) -> str:
    """main-branch.yaml with one value replaced by a generated one."""
    lines = VALID.splitlines()
    index = draw(st.integers(0, len(lines) - 1))
    line = lines[index]
    if ":" in line:
        line = line[: line.index(":") + 1] + " " + draw(values)
    else:
        line = line + " " + draw(values)
    return "\n".join([*lines[:index], line, *lines[index + 1 :]]) + "\n"


documents = (
    values
    | st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=6).map(
        lambda pairs: "".join(f"{key}: {value}\n" for key, value in pairs)
    )
    | alias_bombs()
    | deep
    | spliced()
    | st.text(max_size=200)
)

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(documents)
def test_the_topology_loader_answers_any_yaml_with_a_topology_or_a_natlab_error(text):
    with contextlib.suppress(NatlabError):
        parse_topology(text, "fuzz.yaml")


@FUZZ
@given(documents | documents.map(lambda text: "topology: main-branch\n" + text))
def test_the_scenario_loader_answers_any_yaml_with_a_scenario_or_a_natlab_error(text):
    with contextlib.suppress(NatlabError):
        parse_scenario(text, "fuzz.yaml")
