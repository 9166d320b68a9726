"""Scenario files: what a valid one becomes, and one clear message for each mistake.

Like a topology error, a scenario error names the file, the line, the field
path and the fix: `natlab run` prints it and nothing else.
"""

from pathlib import Path

import pytest
import yaml

from natlab.core.behaviour import PRESETS
from natlab.core.durations import FORMS as DURATION_FORMS
from natlab.errors import NatlabError
from natlab.lab.lab import keep_topology, kept_topology
from natlab.scenario import model
from natlab.scenario.model import (
    TOPOLOGIES,
    AdvanceClock,
    Call,
    PairExpectation,
    Probe,
    Register,
    SetNat,
    WaitRegistered,
    parse_scenario,
)
from natlab.topology import parse_topology

VALID = """\
name: valid
topology: main-branch
nat: {branch1: full-cone, branch2: {preset: symmetric, udp_timeout: 30}}
steps:
  - wait-registered: [phone-b, phone-c]
  - call: {from: phone-b, to: phone-c, seconds: 1.5}
    expect: {media: two-way, pair: srflx}
  - advance: 2m
  - nat: {branch1: restricted}
  - probe: {node: phone-b, server: stun1}
    expect: {nat: restricted}
"""


def broken(old: str, new: str) -> str:
    """VALID with one place changed; line numbers stay those of VALID."""
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def test_a_valid_scenario_becomes_steps_over_the_overridden_topology():
    scenario = parse_scenario(VALID, "valid.yaml")
    assert scenario.name == "valid"
    assert scenario.lines == (5, 6, 8, 9, 10)
    assert scenario.steps == (
        WaitRegistered(("phone-b", "phone-c")),
        Call("phone-b", "phone-c", 1.5, "ice", "two-way", PairExpectation(kind="srflx")),
        AdvanceClock(120.0),
        SetNat({"branch1": PRESETS["restricted"]}),
        Probe("phone-b", "stun1", {"nat": "restricted"}),
    )
    routers = scenario.topology.routers
    assert routers["branch1"].behaviour == PRESETS["full-cone"]
    assert routers["branch2"].behaviour.preset_name() == "symmetric"
    assert routers["branch2"].behaviour.udp_timeout == 30
    assert routers["main"].behaviour == PRESETS["full-cone"]  # as main-branch.yaml says


def test_the_topology_kept_with_the_lab_carries_the_overrides(tmp_path):
    """A lab keeps its topology and `natlab nat show` reads it back: it must say what runs."""
    scenario = parse_scenario(VALID, "valid.yaml")
    keep_topology(scenario.topology, tmp_path)
    reread = kept_topology(tmp_path, "copy")
    assert reread.routers == scenario.topology.routers
    assert reread.routers != parse_topology(scenario.topology.text, "file").routers


def test_without_overrides_the_topology_is_the_file():
    text = "topology: main-branch.yaml\nsteps:\n  - register: phone-a\n"
    scenario = parse_scenario(text, "plain.yaml")
    assert scenario.name == "plain"
    assert scenario.topology.routers["branch2"].behaviour == PRESETS["symmetric"]
    assert scenario.steps == (Register(("phone-a",)),)


def test_a_topology_next_to_the_scenario_comes_first(tmp_path):
    topology = yaml.safe_load((TOPOLOGIES / "main-branch.yaml").read_text())
    topology["name"] = "local-copy"
    (tmp_path / "main-branch.yaml").write_text(yaml.safe_dump(topology))
    scenario = parse_scenario(VALID, str(tmp_path / "s.yaml"))
    assert scenario.topology.name == "local-copy"
    assert parse_scenario(VALID, "elsewhere/s.yaml").topology.name == "main-branch"


def test_register_forms():
    text = broken(
        "  - advance: 2m",
        "  - register: phone-b\n"
        "  - register: {phones: [phone-b, phone-c], transport: tls, certificate: phone-a}\n"
        "    expect: {registered: false}\n"
        "  - wait-registered: {phones: [phone-a], timeout: 3}",
    )
    steps = parse_scenario(text, "s.yaml").steps
    assert steps[2:5] == (
        Register(("phone-b",)),
        Register(("phone-b", "phone-c"), "tls", "phone-a", registered=False),
        WaitRegistered(("phone-a",), 3.0),
    )
    assert steps[3].describe() == "register phone-b, phone-c over tls with phone-a's certificate"


def test_register_over_udp_with_and_without_keepalives():
    text = broken(
        "  - advance: 2m",
        "  - register: {phones: [phone-b], transport: udp, keepalive: 0}\n"
        "  - register: {phones: [phone-c], keepalive: 0.25}",
    )
    udp, tcp = parse_scenario(text, "s.yaml").steps[2:4]
    assert udp == Register(("phone-b",), "udp", keepalive=0.0)
    assert udp.describe() == "register phone-b over udp without keepalives"
    assert tcp == Register(("phone-c",), None, keepalive=0.25)
    assert tcp.describe() == "register phone-c with a keepalive every 0.25 s"


def test_call_defaults_and_a_pair_by_ends():
    text = broken(
        "  - call: {from: phone-b, to: phone-c, seconds: 1.5}\n"
        "    expect: {media: two-way, pair: srflx}\n",
        "  - call: {from: phone-b, to: phone-c}\n    expect: {pair: {remote: prflx}}\n",
    )
    call = parse_scenario(text, "s.yaml").steps[1]
    assert call == Call("phone-b", "phone-c", 2.0, "ice", None, PairExpectation(remote="prflx"))


@pytest.mark.parametrize("reached", [True, False])
def test_a_call_can_expect_whether_it_reaches_the_callee(reached):
    text = broken(
        "expect: {media: two-way, pair: srflx}",
        f"expect: {{reached: {str(reached).lower()}, media: none}}",
    )
    call = parse_scenario(text, "s.yaml").steps[1]
    assert (call.reached, call.media, call.pair) == (reached, "none", None)
    assert parse_scenario(VALID, "s.yaml").steps[1].reached is None  # not said: not checked


def test_a_call_can_be_cancelled_while_it_rings_and_expect_so():
    text = broken(
        "  - call: {from: phone-b, to: phone-c, seconds: 1.5}\n"
        "    expect: {media: two-way, pair: srflx}\n",
        "  - call: {from: phone-b, to: phone-c, mode: host, cancel_after: 1s, ring: 2.5}\n"
        "    expect: {cancelled: true, media: none}\n",
    )
    call = parse_scenario(text, "s.yaml").steps[1]
    assert (call.cancel_after, call.ring, call.cancelled, call.media) == (1.0, 2.5, True, "none")
    assert call.describe() == (
        "call phone-b -> phone-c, 2 s (host), ringing 2.5 s, cancelled after 1 s unless answered"
    )
    plain = parse_scenario(VALID, "s.yaml").steps[1]
    assert (plain.cancel_after, plain.ring, plain.cancelled) == (None, None, None)


def test_a_call_can_ask_natlabs_callee_to_answer_in_another_mode():
    text = broken("seconds: 1.5}", "seconds: 1.5, answer: host}")
    call = parse_scenario(text, "s.yaml").steps[1]
    assert (call.mode, call.answer) == ("ice", "host")
    assert call.describe() == "call phone-b -> phone-c, 1.5 s (ice), answered host"
    assert parse_scenario(VALID, "s.yaml").steps[1].answer is None


CASES = [
    pytest.param(
        broken("seconds: 1.5}", "seconds: 1.5, mode: icy}"),
        "steps[1].call.mode",
        6,
        "input should be 'ice', 'turn', 'host', 'srflx' or 'relay' (got 'icy')",
        "use 'ice', 'turn', 'host', 'srflx' or 'relay'",
        id="bad-mode",
    ),
    pytest.param(
        broken("media: two-way", "media: twoway"),
        "steps[1].expect.media",
        7,
        "input should be 'two-way', 'one-way', 'one-way (caller hears nothing)', "
        "'one-way (callee hears nothing)' or 'none' (got 'twoway')",
        "use 'two-way', 'one-way', 'one-way (caller hears nothing)', "
        "'one-way (callee hears nothing)' or 'none'",
        id="bad-media",
    ),
    pytest.param(
        broken("seconds: 1.5}", "seconds: 1.5, colour: red}"),
        "steps[1].call.colour",
        6,
        "unknown field 'colour'",
        "fields allowed here: from, to, seconds, mode, cancel_after, ring, answer",
        id="unknown-call-field",
    ),
    pytest.param(
        broken("seconds: 1.5}", "seconds: 1.5, cancel_after: 10s}"),
        "steps[1].call.cancel_after",
        6,
        "10 s is out of range",
        "give 0 to 5 s",
        id="cancel-after-too-long",
    ),
    pytest.param(
        broken("seconds: 1.5}", "seconds: 1.5, ring: soon}"),
        "steps[1].call.ring",
        6,
        "'soon' is not a duration from 0 to 30 days",
        DURATION_FORMS,
        id="ring-not-a-duration",
    ),
    pytest.param(
        broken("seconds: 1.5}", "seconds: 0}"),
        "steps[1].call.seconds",
        6,
        "input should be greater than 0 (got 0)",
        "use a number greater than 0",
        id="zero-seconds",
    ),
    pytest.param(
        broken("{from: phone-b, to: phone-c, seconds: 1.5}", "{to: phone-c}"),
        "steps[1].call.from",
        6,
        "missing required field 'from'",
        "add 'from:' under steps[1].call",
        id="call-without-caller",
    ),
    pytest.param(
        broken("to: phone-c,", "to: stun1,"),
        "steps[1].call.to",
        6,
        "'stun1' is not a phone (its role is stun-server)",
        "phones: phone-a, phone-b, phone-c",
        id="call-a-stun-server",
    ),
    pytest.param(
        broken("to: phone-c,", "to: phone-b,"),
        "steps[1].call.to",
        6,
        "a phone cannot call itself",
        "call another phone",
        id="call-itself",
    ),
    pytest.param(
        broken("wait-registered: [phone-b, phone-c]", "wait-registered: [phone-b, phone-x]"),
        "steps[0].wait-registered[1]",
        5,
        "no host named 'phone-x' in topology 'main-branch'",
        "phones: phone-a, phone-b, phone-c",
        id="register-unknown-phone",
    ),
    pytest.param(
        broken(
            "wait-registered: [phone-b, phone-c]", "wait-registered: {phones: [pbx], timeout: 5}"
        ),
        "steps[0].wait-registered.phones[0]",
        5,
        "'pbx' is not a phone (its role is pbx)",
        "phones: phone-a, phone-b, phone-c",
        id="register-the-pbx",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - register: {phones: [phone-b], certificate: phone-a}"),
        "steps[2].register.certificate",
        8,
        "a certificate is presented over TLS only",
        "add transport: tls",
        id="certificate-over-tcp",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - register: {phones: [phone-b], transport: sctp}"),
        "steps[2].register.transport",
        8,
        "input should be 'tcp', 'tls' or 'udp' (got 'sctp')",
        "use 'tcp', 'tls' or 'udp'",
        id="register-over-sctp",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - register: {phones: [phone-b], keepalive: -1}"),
        "steps[2].register.keepalive",
        8,
        "input should be greater than or equal to 0 (got -1)",
        "use a number of at least 0",
        id="negative-keepalive",
    ),
    pytest.param(
        broken("expect: {media: two-way, pair: srflx}", "expect: {reached: nobody}"),
        "steps[1].expect.reached",
        7,
        "input should be a valid boolean, unable to interpret input (got 'nobody')",
        "use true or false",
        id="reached-not-a-boolean",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - register: phone-b\n    expect: {registered: maybe}"),
        "steps[2].expect.registered",
        9,
        "input should be a valid boolean, unable to interpret input (got 'maybe')",
        "use true or false",
        id="registered-not-a-boolean",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - advanc: 2m"),
        "steps[2].advanc",
        8,
        "unknown step 'advanc'",
        "a step is one of: wait-registered, register, call, advance, nat, probe, link, "
        "start, exec, wait, stop",
        id="unknown-step",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - advance: 2m\n    nat: {branch1: full-cone}"),
        "steps[2]",
        8,
        "a step does one thing; this one has advance and nat",
        "split it into one step for each",
        id="two-actions",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - expect: {media: none}"),
        "steps[2]",
        8,
        "a step with no action",
        "a step is one of: wait-registered, register, call, advance, nat, probe, link, "
        "start, exec, wait, stop",
        id="expect-alone",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - advance: 2 minutes"),
        "steps[2].advance",
        8,
        "'2 minutes' is not a duration from 0 to 30 days",
        "write seconds (130) or 130s, 2m, 1h, 80ms, up to 30 days",
        id="bad-duration",
    ),
    pytest.param(
        broken("  - advance: 2m", "  - advance 2m"),
        "steps[2]",
        8,
        "input should be a valid dictionary (got 'advance 2m')",
        "write a mapping: one 'key: value' per line, or {key: value}",
        id="step-not-a-mapping",
    ),
    pytest.param(
        broken("branch1: full-cone,", "branch9: full-cone,"),
        "nat.branch9",
        3,
        "no router named 'branch9' in topology 'main-branch'",
        "routers: main, branch1, branch2",
        id="override-unknown-router",
    ),
    pytest.param(
        broken("branch1: full-cone,", "branch1: fullcone,"),
        "nat.branch1",
        3,
        "unknown NAT preset 'fullcone'",
        "use one of full-cone, restricted, port-restricted, symmetric, none, "
        "or give the axes (mapping, filtering, ...)",
        id="override-unknown-preset",
    ),
    pytest.param(
        broken("udp_timeout: 30", "udp_timeout: -3"),
        "nat.branch2.udp_timeout",
        3,
        "bad value -3 for NAT setting 'udp_timeout'",
        "use a number greater than 0",
        id="override-bad-axis",
    ),
    pytest.param(
        broken("udp_timeout: 30", "udp_timout: 30"),
        "nat.branch2.udp_timout",
        3,
        "unknown NAT setting 'udp_timout'",
        None,  # the fix lists every setting; checked below to start as it should
        id="override-unknown-axis",
    ),
    pytest.param(
        broken("  - nat: {branch1: restricted}", "  - nat: {branch1: none}"),
        "steps[3].nat.branch1",
        9,
        "a running router cannot switch between NAT and plain routing (none)",
        "set nat: {branch1: ...} at the top of the scenario instead",
        id="nat-step-to-none",
    ),
    pytest.param(
        broken("  - nat: {branch1: restricted}", "  - nat: {}"),
        "steps[3].nat",
        9,
        "expected routers and their NAT (got {})",
        "map each router to a preset or settings, "
        "e.g. {branch1: symmetric, branch2: {preset: full-cone, udp_timeout: 30}}",
        id="nat-step-empty",
    ),
    pytest.param(
        broken(
            "nat: {branch1: full-cone, branch2: {preset: symmetric, udp_timeout: 30}}",
            "nat: symmetric",
        ),
        "nat",
        3,
        "expected routers and their NAT (got 'symmetric')",
        "map each router to a preset or settings, "
        "e.g. {branch1: symmetric, branch2: {preset: full-cone, udp_timeout: 30}}",
        id="override-not-per-router",
    ),
    pytest.param(
        broken("branch1: full-cone,", "branch1: [full-cone],"),
        "nat.branch1",
        3,
        "input should be a valid string (got ['full-cone'])",
        "use a preset (full-cone, restricted, port-restricted, symmetric, none) or settings, "
        "e.g. {preset: symmetric, udp_timeout: 30}",
        id="override-a-list",
    ),
    pytest.param(
        broken("{node: phone-b, server: stun1}", "{node: branch1}"),
        "steps[4].probe.node",
        10,
        "no host named 'branch1' in topology 'main-branch'",
        "probe from a host: pbx, phone-a, phone-b, phone-c, stun1, dns1",
        id="probe-from-a-router",
    ),
    pytest.param(
        broken("expect: {nat: restricted}", "expect: {mapping: endpoint}"),
        "steps[4].expect.mapping",
        11,
        "input should be 'endpoint-independent', 'address-dependent' or "
        "'address-and-port-dependent' (got 'endpoint')",
        "use 'endpoint-independent', 'address-dependent' or 'address-and-port-dependent'",
        id="probe-bad-axis",
    ),
    pytest.param(
        broken("topology: main-branch", "topology: nowhere"),
        "topology",
        2,
        "no topology file 'nowhere' next to the scenario or in topologies/",
        "give a path relative to the scenario file, or one of: cgnat.yaml, main-branch.yaml, "
        "pbx-public-access.yaml, port-control.yaml",
        id="unknown-topology",
    ),
    pytest.param(
        broken("topology: main-branch\n", ""),
        "topology",
        1,
        "missing required field 'topology'",
        "add 'topology:' at the top level",
        id="no-topology",
    ),
    pytest.param(
        broken("name: valid", "name: two words"),
        "name",
        1,
        "'two words' is not a valid name",
        "use letters, digits, '-', '_' and '.', starting with a letter or digit",
        id="bad-name",
    ),
    pytest.param(
        broken("name: valid", "nmae: valid"),
        "nmae",
        1,
        "unknown field 'nmae'",
        "fields allowed here: name, about, topology, nat, steps",
        id="unknown-top-field",
    ),
    pytest.param(
        "topology: main-branch\nsteps: []\n",
        "steps",
        2,
        "list should have at least 1 item after validation, not 0 (got [])",
        None,
        id="no-steps",
    ),
]


@pytest.mark.parametrize(("text", "field", "line", "problem", "fix"), CASES)
def test_each_mistake_has_its_message(text, field, line, problem, fix):
    with pytest.raises(NatlabError) as caught:
        parse_scenario(text, "s.yaml")
    error = caught.value
    assert (error.file, error.field, error.line, error.problem) == ("s.yaml", field, line, problem)
    if fix is not None:
        assert error.fix == fix
    else:
        assert error.fix is None or error.fix.startswith("settings are: preset, translate")


def test_not_a_mapping():
    with pytest.raises(NatlabError) as caught:
        parse_scenario("- call\n", "s.yaml")
    assert caught.value.problem == "a scenario is a YAML mapping with topology and steps"
    assert caught.value.line == 1


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(NatlabError) as caught:
        parse_scenario("topology: main-branch\nsteps:\n  - call: {from: a\n", "s.yaml")
    assert caught.value.file == "s.yaml"
    assert caught.value.line == 4
    assert caught.value.problem.startswith("not valid YAML")


def test_the_documented_examples_parse():
    """scenarios/README.md and the model's docstring show the format: they must stay valid."""
    readme = (Path(__file__).resolve().parents[3] / "scenarios" / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert len(parse_scenario(block, "scenarios/example.yaml").steps) == 6
    docstring = model.__doc__.split("should be:\n\n", 1)[1].split("\n\n", 1)[0]
    example = "\n".join(line.removeprefix("    ") for line in docstring.splitlines())
    assert len(parse_scenario(example, "scenarios/example.yaml").steps) == 6
