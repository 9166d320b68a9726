"""Hostile or odd YAML: each is refused quickly with a message, never a traceback.

The bounds (file size, nesting depth, values once aliases are expanded) and
YAML's own features a user may reach for (anchors, merge keys, tags, keys
YAML reads as booleans) as `natlab validate` meets them, and as the scenario
loader, which reads YAML with the same code, meets them.
"""

import pytest

from natlab.errors import NatlabError
from natlab.scenario.model import parse_scenario
from natlab.topology import parse_topology
from natlab.topology.yaml_source import MAX_DEPTH, MAX_VALUES

SEGMENTS = """\
segments:
  internet: {subnet: 203.0.113.0/24}
  lan1: {subnet: 10.0.1.0/24}
  lan2: {subnet: 10.0.2.0/24}
"""

# nine lists of nine aliases of the list before: 9**9 strings once expanded (~350 bytes)
ALIAS_BOMB = "name: bomb\n" + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
ALIAS_BOMB += "".join(
    f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def refused(natlab, tmp_path, text: str, command: str = "validate"):
    path = tmp_path / "input.yaml"
    path.write_text(text)
    result = natlab(command, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"natlab: error: {path}:")
    return result.stderr


def test_an_alias_bomb_is_refused_naming_the_alias_and_its_line(natlab, tmp_path):
    assert len(ALIAS_BOMB) < 450
    message = refused(natlab, tmp_path, ALIAS_BOMB)
    # e's list is the first to pass the bound: 9 * 7381 values, line 6
    assert f":6: alias *d expands the file to more than {MAX_VALUES} values" in message


def test_5000_levels_of_nesting_are_refused(natlab, tmp_path):
    message = refused(natlab, tmp_path, "name: deep\nsegments: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f":2: nested deeper than {MAX_DEPTH} levels" in message


def test_aliases_that_nest_past_the_depth_bound_are_refused():
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 40))
    with pytest.raises(NatlabError) as raised:
        parse_topology(chain, "chain.yaml")
    # a29 is 31 levels deep, and a30's list puts it two levels down
    assert raised.value.line == 31
    assert raised.value.problem == f"alias *a29 nests values deeper than {MAX_DEPTH} levels"


def test_a_recursive_anchor_is_refused(natlab, tmp_path):
    message = refused(natlab, tmp_path, "name: t\nsegments: &s\n  lan: *s\n")
    assert ":3: alias *s refers to the mapping or list that contains it" in message


def test_a_custom_tag_is_refused_with_where_and_fix(natlab, tmp_path):
    text = f"name: t\n{SEGMENTS}hosts:\n  pc: !host {{segment: lan1}}\n"
    message = refused(natlab, tmp_path, text)
    assert ":7: hosts.pc: tag !host is not something natlab reads" in message
    assert "fix: remove the tag" in message


def test_yaml_s_own_python_tags_are_refused_too():
    with pytest.raises(NatlabError, match=r"tag !!python/object/apply:os\.system is not"):
        parse_topology("name: !!python/object/apply:os.system [echo]\n", "t.yaml")


def test_a_key_yaml_reads_as_a_boolean_is_reported_as_written(natlab, tmp_path):
    message = refused(natlab, tmp_path, f"name: t\n{SEGMENTS}hosts:\n  yes: {{segment: lan1}}\n")
    assert ":7: hosts.yes: name 'yes' is not text: YAML reads it as a boolean" in message
    assert "fix: quote it: 'yes'" in message


ROUTERS = """\
routers:
  r1: &router
    wan: {segment: internet}
    lan: {segment: lan1}
    nat: symmetric
  r2:
    <<: *router
    lan: {segment: lan2}
"""


def test_a_merge_key_gives_a_router_the_anchored_fields_and_written_ones_win():
    topology = parse_topology(f"name: t\n{SEGMENTS}{ROUTERS}", "t.yaml")
    r1, r2 = topology.routers["r1"], topology.routers["r2"]
    assert [lan.segment for lan in r2.lans] == ["lan2"]
    assert r2.wan.segment == "internet" and r2.behaviour == r1.behaviour
    assert r2.behaviour.preset_name() == "symmetric"


def test_merged_fields_are_checked_like_written_ones_and_reported_where_written():
    shared_lan = "name: t\n" + SEGMENTS + ROUTERS.replace("    lan: {segment: lan2}\n", "")
    with pytest.raises(NatlabError) as raised:
        parse_topology(shared_lan, "t.yaml")
    assert (raised.value.field, raised.value.line) == ("routers.r2.lan.segment", 9)
    assert raised.value.problem == "segment 'lan1' is already the LAN of router 'r1'"
    settings = ROUTERS.replace("nat: symmetric", "nat: &nat {preset: symmetric, udp_timeout: 30}")
    settings += "    nat: {<<: *nat, udp_timeout: -1}\n"
    with pytest.raises(NatlabError) as raised:
        parse_topology(f"name: t\n{SEGMENTS}{settings}", "t.yaml")
    assert (raised.value.field, raised.value.line) == ("routers.r2.nat.udp_timeout", 14)


def test_a_merge_of_something_other_than_a_mapping_is_refused():
    with pytest.raises(NatlabError, match="a merge key '<<' takes a mapping"):
        parse_topology("a: &a [1]\nname: t\nsegments: {<<: *a}\n", "t.yaml")


def test_a_lab_name_up_refuses_is_refused_by_validate_with_up_s_message(natlab, tmp_path):
    text = f"name: MainBranch\n{SEGMENTS}"
    validate = refused(natlab, tmp_path, text)
    up = refused(natlab, tmp_path, text, "up")
    assert validate == up
    assert ":1: name: 'MainBranch' cannot name a lab\n  fix: use up to 40 lower-case" in validate
    path = tmp_path / "valid.yaml"
    path.write_text(f"name: t\n{SEGMENTS}")
    named = natlab("up", str(path), "--name", "MainBranch")  # refused before anything is built
    assert named.returncode == 2
    same = "'MainBranch' cannot name a lab"
    assert named.stderr[named.stderr.index(same) :] == validate[validate.index(same) :]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (ALIAS_BOMB, f"alias *d expands the file to more than {MAX_VALUES} values"),
        ("name: s\nsteps: &s [*s]\n", "alias *s refers to the mapping or list that contains it"),
        ("steps: " + "{a: " * 3000 + "}" * 3000, f"nested deeper than {MAX_DEPTH} levels"),
        ("topology: main-branch\nsteps: [!call x]\n", "tag !call is not something natlab reads"),
        ("topology: main-branch\nnat: {1: symmetric}\n", "name '1' is not text"),
    ],
    ids=["alias-bomb", "recursive-anchor", "deep", "tag", "number-key"],
)
def test_the_scenario_loader_is_bounded_the_same_way(text, problem):
    with pytest.raises(NatlabError) as raised:
        parse_scenario(text, "s.yaml")
    assert problem in raised.value.problem


def test_a_scenario_step_can_be_merged_from_an_anchor():
    text = """\
topology: main-branch
steps:
  - call: &call {from: phone-b, to: phone-c, seconds: 1}
  - call: {<<: *call, mode: relay}
"""
    steps = parse_scenario(text, "s.yaml").steps
    assert (steps[1].caller, steps[1].seconds, steps[1].mode) == ("phone-b", 1, "relay")


def test_a_file_too_large_to_be_a_topology_is_refused_before_it_is_parsed(natlab, tmp_path):
    message = refused(natlab, tmp_path, "name: t\n" + "# padding\n" * 30_000)
    assert "the file is larger than 256 KiB" in message
