"""Program steps (start, exec, wait, stop) and a host's `run:`: what they become, and each
mistake's message with its field and line."""

from __future__ import annotations

import pytest

from natlab.errors import NatlabError
from natlab.scenario.model import parse_scenario
from natlab.scenario.program_steps import ExecProgram, StartProgram, StopProgram, WaitProgram
from natlab.topology import parse_topology
from natlab.topology.command import split_command

VALID = """\
name: programs
topology: main-branch
steps:
  - start: {node: phone-b, run: "agent --offer 'two words'", env: {DEBUG: 1, VERBOSE: true},
             peer: phone-c, role: a, timeout: 20s}
  - start: {node: phone-c, run: [agent, --answer]}
  - exec: {node: pbx, run: "curl -s http://203.0.113.9/", timeout: 2m}
    expect: {exit: 7, output: "hello|world"}
  - exec: {node: pbx, run: "true"}
  - wait: {node: phone-b, within: 10}
  - wait: {node: phone-c, exit: null}
  - stop: phone-c
"""


def test_the_steps_of_a_valid_scenario():
    scenario = parse_scenario(VALID, "programs.yaml")
    assert scenario.steps == (
        StartProgram(
            "phone-b",
            ("agent", "--offer", "two words"),
            (("DEBUG", "1"), ("VERBOSE", "1")),
            "phone-c",
            "a",
            20.0,
        ),
        StartProgram("phone-c", ("agent", "--answer")),
        ExecProgram("pbx", ("curl", "-s", "http://203.0.113.9/"), 120.0, (), 7, "hello|world"),
        ExecProgram("pbx", ("true",), 30.0, (), 0, None),
        WaitProgram("phone-b", 0, 10.0),
        WaitProgram("phone-c", None, 30.0),
        StopProgram("phone-c"),
    )
    assert scenario.lines == (4, 6, 7, 9, 10, 11, 12)
    assert [step.describe() for step in scenario.steps[:3]] == [
        "start \"agent --offer 'two words'\" in phone-b as a, peer phone-c",
        'start "agent --answer" in phone-c',
        'exec "curl -s http://203.0.113.9/" in pbx',
    ]


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "problem"),
    [
        (
            'node: pbx, run: "true"',
            'node: nobody, run: "true"',
            "steps[3].exec.node",
            9,
            "no node named 'nobody'",
        ),
        ('run: "true"', 'run: "echo \'unclosed"', "steps[3].exec.run", 9, "No closing quotation"),
        ('run: "true"', "run: []", "steps[3].exec.run", 9, "the command is empty"),
        (
            'output: "hello|world"',
            'output: "(unclosed"',
            "steps[2].expect.output",
            8,
            "not a regular expression",
        ),
        ("within: 10", "within: soon", "steps[4].wait.within", 10, "'soon' is not a duration"),
        (
            "peer: phone-c, role: a,",
            "peer: phone-c,",
            "steps[0].start.role",
            4,
            "names both its peer and its role",
        ),
        (
            "peer: phone-c, role: a,",
            "peer: phone-b, role: a,",
            "steps[0].start.peer",
            5,
            "cannot be its own peer",
        ),
        ("stop: phone-c", "stop: nobody", "steps[6].stop", 12, "no node named 'nobody'"),
        ("role: a,", "role: c,", "steps[0].start.role", 5, "input should be 'a' or 'b'"),
    ],
)
def test_each_mistake_names_its_field(old, new, field, line, problem):
    assert VALID.count(old) == 1
    with pytest.raises(NatlabError) as caught:
        parse_scenario(VALID.replace(old, new), "programs.yaml")
    error = caught.value
    assert (error.field, error.line) == (field, line), str(error)
    assert problem in str(error)


TOPOLOGY = (
    "name: t\nsegments: {lan: {subnet: 10.0.0.0/24}}\nhosts:\n  a: {segment: lan, run: RUN}\n"
)


@pytest.mark.parametrize(
    ("run", "argv"),
    [
        ("\"agent --name 'a b' -v\"", ("agent", "--name", "a b", "-v")),
        ("[agent, --name, a b]", ("agent", "--name", "a b")),
        ('"echo $HOME"', ("echo", "$HOME")),  # no shell: nothing is expanded
    ],
)
def test_a_hosts_run_becomes_its_argv(run, argv):
    assert parse_topology(TOPOLOGY.replace("RUN", run), "t.yaml").hosts["a"].run == argv


@pytest.mark.parametrize(
    ("run", "problem"),
    [('"agent \'a"', "No closing quotation"), ('""', "the command is empty"), ("[]", "empty")],
)
def test_a_bad_run_names_the_field(run, problem):
    with pytest.raises(NatlabError) as caught:
        parse_topology(TOPOLOGY.replace("RUN", run), "t.yaml")
    assert (caught.value.field, caught.value.line) == ("hosts.a.run", 4)
    assert problem in caught.value.problem


def test_split_command():
    assert split_command("a  'b c'\td") == ("a", "b c", "d")
    assert split_command(["a", ""]) == ("a", "")
    for bad in ("   ", [], [""], ["a\0b"]):
        with pytest.raises(ValueError):
            split_command(bad)
