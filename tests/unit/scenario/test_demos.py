"""The demos shipped in the package: each loads and teaches what its name says; the CLI lists them.

No lab here: the files are checked as `natlab demo` would load them, and
the command is run as a user runs it (a separate process, exit code and
output) for what it does before anything is built.
"""

import fnmatch
import tomllib
from pathlib import Path

import pytest

from natlab.core.behaviour import Hairpin, Mapping
from natlab.errors import NatlabError
from natlab.scenario.demos import DEMOS, DEMOS_DIR, demo_lines, demo_scenario
from natlab.scenario.model import AdvanceClock, Call, Register, SetNat
from natlab.topology.model import Role

ROOT = Path(__file__).resolve().parents[3]


def calls(name: str) -> list[Call]:
    return [step for step in demo_scenario(name).steps if isinstance(step, Call)]


@pytest.mark.parametrize("name", DEMOS)
def test_every_demo_loads_and_expects_a_call_outcome(name):
    scenario = demo_scenario(name)
    assert scenario.name == name
    assert scenario.about
    assert calls(name) and all(call.media for call in calls(name))


def test_the_demo_folder_holds_the_demos_and_nothing_else():
    assert sorted(p.stem for p in DEMOS_DIR.glob("*.yaml")) == sorted(DEMOS)


def test_the_package_ships_every_demo_file():
    """setuptools' package-data for natlab.scenario must match each file natlab demo reads."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["natlab.scenario"]
    files = [p.relative_to(DEMOS_DIR.parent).as_posix() for p in DEMOS_DIR.rglob("*.yaml")]
    assert len(files) > len(DEMOS)  # the hairpin office topology too
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


def test_symmetric_fails_and_full_cone_fixes_differ_only_in_branch1():
    fails, fixes = (
        demo_scenario(n).topology.routers for n in ("symmetric-fails", "full-cone-fixes")
    )
    assert (fails["branch1"].behaviour.preset_name(), fails["branch2"].behaviour.preset_name()) == (
        "port-restricted",
        "symmetric",
    )
    assert fixes["branch1"].behaviour.preset_name() == "full-cone"
    assert fixes["branch2"].behaviour == fails["branch2"].behaviour
    assert [(c.caller, c.callee, c.mode, c.media) for c in calls("symmetric-fails")] == [
        ("phone-b", "phone-c", "ice", "none")
    ]
    assert [(c.caller, c.callee, c.media) for c in calls("full-cone-fixes")] == [
        ("phone-b", "phone-c", "two-way")
    ]


def test_relay_is_symmetric_against_symmetric_through_the_pbx():
    routers = demo_scenario("relay").topology.routers
    assert routers["branch1"].behaviour.mapping is Mapping.ADDRESS_AND_PORT_DEPENDENT
    assert routers["branch2"].behaviour.mapping is Mapping.ADDRESS_AND_PORT_DEPENDENT
    assert [(c.mode, c.media) for c in calls("relay")] == [("relay", "two-way")]


def test_keepalive_jumps_stay_under_the_udp_timeout_and_add_up_past_it():
    """One jump past udp_timeout would expire the kept mapping too: keepalives need real time."""
    scenario = demo_scenario("keepalive")
    timeout = scenario.topology.routers["branch1"].behaviour.udp_timeout
    assert scenario.topology.routers["branch2"].behaviour.udp_timeout == timeout
    jumps = [step.seconds for step in scenario.steps if isinstance(step, AdvanceClock)]
    assert all(jump < timeout for jump in jumps) and sum(jumps) > timeout
    registers = {
        s.phones: (s.transport, s.keepalive) for s in scenario.steps if isinstance(s, Register)
    }
    assert registers[("phone-b",)] == ("udp", 0)
    assert registers[("phone-c",)][0] == "udp" and registers[("phone-c",)][1] > 0
    last = {c.callee: (c.media, c.reached) for c in calls("keepalive")}
    assert last == {"phone-b": ("none", False), "phone-c": ("two-way", True)}


def test_hairpin_has_two_phones_behind_one_router_and_switches_hairpinning_off():
    scenario = demo_scenario("hairpin")
    topology = scenario.topology
    gateways = {s.name: s.gateway for s in topology.segments.values()}
    phones = [h for h in topology.hosts.values() if h.role is Role.PHONE]
    assert len({gateways[h.interfaces[0].segment] for h in phones}) == 1 and len(phones) == 2
    assert next(iter(topology.routers.values())).behaviour.hairpin is Hairpin.ON
    kinds = [type(step).__name__ for step in scenario.steps]
    assert kinds == ["WaitRegistered", "Call", "SetNat", "Call"]
    off = next(step for step in scenario.steps if isinstance(step, SetNat))
    assert [b.hairpin for b in off.behaviours.values()] == [Hairpin.OFF]
    assert [(c.mode, c.media) for c in calls("hairpin")] == [
        ("srflx", "two-way"),
        ("srflx", "none"),
    ]


def test_no_name_and_list_print_one_line_per_demo_in_order(natlab):
    for args in ((), ("--list",)):
        result = natlab("demo", *args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert [line.split()[0] for line in lines] == list(DEMOS)
        assert lines == demo_lines()


def test_an_unknown_demo_exits_2_with_the_list(natlab):
    result = natlab("demo", "full-cone")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no demo named 'full-cone'" in result.stderr
    for line in demo_lines():
        assert line in result.stderr


def test_an_unknown_demo_is_a_natlab_error():
    with pytest.raises(NatlabError, match="no demo named 'hairpins'"):
        demo_scenario("hairpins")
