"""The natlab command as a new user meets it: up, status, exec, down on main-branch.

Each test runs `natlab` as a subprocess and checks the result with `ip`, not
with natlab's own read-back.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from ipaddress import IPv4Interface, IPv4Network

import pytest
import yaml

pytestmark = pytest.mark.natlab


def wan_address(kernel, lab: str, router: str) -> str:
    """The router's address on the internet segment, as its kernel has it."""
    (address,) = kernel.addresses(f"natlab-{lab}-{router}")["internet"]
    return str(IPv4Interface(address).ip)


def test_up_status_ping_down_leaves_the_host_as_it_was(
    natlab, kernel, host_state, main_branch, main_branch_nodes
):
    before = host_state.now()
    lab = natlab.new_lab()

    up = natlab.run("up", str(main_branch), "--name", lab)
    assert up.returncode == 0, up.stderr
    assert "phone-a" in up.stdout  # the table of what was built

    status = natlab.run("status", lab, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    (described,) = json.loads(status.stdout)["labs"]
    assert described["name"] == lab
    assert described["state"] == "up"
    assert described["problems"] == []
    subnets = {
        name: IPv4Network(segment["subnet"])
        for name, segment in yaml.safe_load(main_branch.read_text())["segments"].items()
    }
    assert {node["name"] for node in described["nodes"]} == set(main_branch_nodes)
    for node in described["nodes"]:
        namespace = f"natlab-{lab}-{node['name']}"
        assert node["namespace"] == namespace
        in_kernel = kernel.addresses(namespace)
        # One interface per segment the YAML puts the node on, named after it...
        assert set(in_kernel) == main_branch_nodes[node["name"]]
        # ...each with addresses in that segment's subnet, and status says exactly that.
        for ifname, addresses in in_kernel.items():
            assert addresses, f"{node['name']}:{ifname} has no address"
            assert all(IPv4Interface(a).network == subnets[ifname] for a in addresses)
        assert {i["name"]: set(i["addresses"]) for i in node["interfaces"]} == in_kernel
    stun1 = kernel.addresses(f"natlab-{lab}-stun1")["internet"]
    assert len(stun1) == 2  # a STUN server needs two

    targets = [str(IPv4Interface(a).ip) for a in sorted(stun1)]
    targets += [wan_address(kernel, lab, "branch1"), wan_address(kernel, lab, "branch2")]
    for address in targets:
        ping = natlab.ping(lab, "phone-a", address)
        assert ping.returncode == 0, f"phone-a -> {address}: {ping.stdout}{ping.stderr}"
    for address in targets[:2]:
        ping = natlab.ping(lab, "phone-b", address)
        assert ping.returncode == 0, f"phone-b -> {address}: {ping.stdout}{ping.stderr}"

    down = natlab.run("down", lab)
    assert down.returncode == 0, down.stderr
    assert kernel.lab_namespaces(lab) == set()
    before.assert_same(host_state.now(), [lab])


@pytest.fixture
def lab_up(natlab, main_branch) -> str:
    """A main-branch lab brought up with the command; natlab's fixture takes it down."""
    lab = natlab.new_lab()
    up = natlab.run("up", str(main_branch), "--name", lab)
    assert up.returncode == 0, up.stderr
    return lab


def test_exec_passes_the_exit_status_through(natlab, lab_up):
    assert natlab.exec(lab_up, "pbx", "sh", "-c", "exit 7").returncode == 7
    assert natlab.exec(lab_up, "pbx", "true").returncode == 0


def test_exec_passes_stdin_and_stdout_through_byte_for_byte(natlab, lab_up):
    payload = bytes(range(256)) * 512  # every byte value, more than a pipe buffer
    echoed = natlab.exec(lab_up, "phone-c", "cat", input=payload, text=False)
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == payload


def test_exec_runs_inside_the_node(natlab, kernel, lab_up):
    inside = natlab.exec(lab_up, "phone-a", "ip", "-json", "addr")
    assert inside.returncode == 0, inside.stderr
    seen = {
        link["ifname"]: {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]}
        for link in json.loads(inside.stdout)
        if link["ifname"] != "lo"
    }
    assert seen == kernel.addresses(f"natlab-{lab_up}-phone-a")
    assert set(seen) == {"main-lan"}  # none of the host's interfaces


def test_exec_hands_over_the_terminal(natlab, lab_up):
    """`natlab exec NODE -- bash` is a shell only if the command gets the terminal itself."""
    controller, terminal = pty.openpty()
    try:
        with_tty = natlab.exec(
            lab_up,
            "phone-a",
            *("sh", "-c", "test -t 0 && test -t 1"),
            capture_output=False,
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    without_tty = natlab.exec(lab_up, "phone-a", "sh", "-c", "test -t 0", stdin=subprocess.DEVNULL)
    assert with_tty.returncode == 0, with_tty.stderr
    assert without_tty.returncode == 1


def test_exec_in_an_unknown_node_is_a_clear_error(natlab, lab_up):
    result = natlab.exec(lab_up, "phone-z", "true")
    assert result.returncode == 2
    assert "no node named 'phone-z'" in result.stderr
    assert "phone-a" in result.stderr  # the fix names the nodes there are
    assert "Traceback" not in result.stderr


def test_down_of_an_unknown_lab_is_a_clear_error(natlab, kernel, main_branch_nodes, lab_up):
    result = natlab.run("down", f"{lab_up}-nope")
    assert result.returncode == 2
    assert f"no lab named '{lab_up}-nope'" in result.stderr
    assert lab_up in result.stderr  # the fix names the labs that are up
    assert "Traceback" not in result.stderr
    assert len(kernel.lab_namespaces(lab_up)) == 1 + len(main_branch_nodes)


def test_up_of_a_lab_already_up_fails_and_leaves_it_alone(natlab, kernel, main_branch, lab_up):
    namespaces = kernel.lab_namespaces(lab_up)
    identity = {n: (kernel.inode(n), kernel.addresses(n)) for n in namespaces}

    again = natlab.run("up", str(main_branch), "--name", lab_up)

    assert again.returncode == 2
    assert f"a lab named '{lab_up}' is already up" in again.stderr
    assert "Traceback" not in again.stderr
    assert kernel.lab_namespaces(lab_up) == namespaces
    assert {n: (kernel.inode(n), kernel.addresses(n)) for n in namespaces} == identity
    status = natlab.run("status", lab_up, "--json")
    assert status.returncode == 0, status.stdout
    (stun1, _) = sorted(kernel.addresses(f"natlab-{lab_up}-stun1")["internet"])
    ping = natlab.ping(lab_up, "phone-a", str(IPv4Interface(stun1).ip))
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_one_lab_named_one_way_everywhere_and_json_on_stdout(
    natlab, kernel, main_branch, monkeypatch
):
    """--lab after NODE, $NATLAB_LAB, the older positional forms; --json is JSON on stdout."""
    lab = natlab.new_lab()
    up = natlab.run("up", str(main_branch), "--name", lab, "--json")
    assert up.returncode == 0, up.stderr
    document = json.loads(up.stdout)
    assert (document["schema"], document["lab"]["name"]) == ("natlab/up/1", lab)
    assert "phone-a" in up.stderr  # the table for people, beside the JSON
    after_node = natlab.run("exec", "phone-b", "--lab", lab, "--", "true")
    assert after_node.returncode == 0, after_node.stderr
    status = natlab.run("status", "--lab", lab, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["schema"] == "natlab/status/1"

    monkeypatch.setitem(natlab.env, "NATLAB_LAB", lab)
    by_env = natlab.run("exec", "phone-b", "--", "sh", "-c", "echo $NATLAB_LAB")
    assert (by_env.returncode, by_env.stdout) == (0, f"{lab}\n"), by_env.stderr
    shown = natlab.run("nat", "show", "branch1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.splitlines()[0])["schema"] == "natlab/nat-show/1"
    verified = natlab.run("verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdicts = json.loads(verified.stdout)
    assert (verdicts["schema"], verdicts["lab"], verdicts["as_declared"]) == (
        "natlab/verify/1",
        lab,
        True,
    )
    assert {r["router"] for r in verdicts["routers"]} == {"main", "branch1", "branch2"}
    monkeypatch.delitem(natlab.env, "NATLAB_LAB")
    moved = natlab.run("clock", "advance", "--lab", lab, "1s")
    assert moved.returncode == 0, moved.stderr
    assert "clock advanced 1 s" in moved.stdout
    assert natlab.run("clock", "advance", lab, "1s").returncode == 0  # the older form

    down = natlab.run("down", "--lab", lab)
    assert down.returncode == 0, down.stderr
    assert kernel.lab_namespaces(lab) == set()
