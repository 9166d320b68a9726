"""The lab's DNS with real resolvers: dnsmasq serving, glibc's getent asking, inside nodes.

Split horizon (main-branch): pbx.example.test is the PBX's own address
inside the office and the main router's public address everywhere else;
stun.example.test has two addresses. Every answer comes from dnsmasq
through the node's /etc/netns resolv.conf, read by glibc (`getent`), and
a branch office's answers for public names are forwarded by its router's
resolver to the public server (its log says so).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import MAIN_BRANCH, NatlabCommand
from tests.lab.test_lifecycle import running

pytestmark = pytest.mark.natlab

ETC_NETNS = Path("/etc/netns")


def addresses(natlab: NatlabCommand, lab: str, node: str, *names: str) -> list[set[str]]:
    """The IPv4 addresses getent finds for each name inside node (glibc, the node's resolv.conf).

    One `natlab exec` per node, a shell asking for every name: each getent is a process of
    its own all the same.
    """
    script = 'for name in "$@"; do echo "== $name"; getent ahostsv4 "$name" || echo FAILED; done'
    found = natlab.exec(lab, node, "sh", "-c", script, "sh", *names)
    assert found.returncode == 0, (node, found.stdout, found.stderr)
    answers: list[set[str]] = []
    for line in found.stdout.splitlines():
        if line.startswith("== "):
            answers.append(set())
        else:
            assert line != "FAILED", (node, found.stdout)
            answers[-1].add(line.split()[0])
    return answers


def etc_left(lab: str) -> list[str]:
    if not ETC_NETNS.is_dir():
        return []
    return sorted(p.name for p in ETC_NETNS.iterdir() if p.name.startswith(f"natlab-{lab}-"))


@pytest.fixture
def main_branch_up(natlab: NatlabCommand) -> str:
    lab = natlab.new_lab()
    up = natlab.run("up", str(MAIN_BRANCH), "--name", lab)
    assert up.returncode == 0, up.stderr
    return lab


def test_split_horizon_and_multi_address_names(natlab, main_branch_up):
    lab = main_branch_up
    inside = {"10.0.0.2"}  # the PBX itself
    outside = {"203.0.113.1"}  # the main router, which forwards the PBX's ports
    stun = {"203.0.113.4", "203.0.113.5"}  # both addresses of stun1
    for node, pbx in [
        ("phone-a", inside),
        ("pbx", inside),
        ("main", inside),  # a router asks its own LAN's resolver
        ("phone-b", outside),
        ("phone-c", outside),
        ("stun1", outside),  # on the internet: the public server itself
    ]:
        # `stun` alone: resolv.conf says `search example.test`
        assert addresses(natlab, lab, node, "pbx.example.test", "stun") == [pbx, stun], node
    missing = natlab.exec(lab, "phone-b", "getent", "hosts", "nothing.example.test")
    assert missing.returncode == 2  # glibc: not found (NXDOMAIN from the public server)


def test_a_branch_resolver_forwards_public_names_to_the_public_server(natlab, main_branch_up):
    lab = main_branch_up
    assert addresses(natlab, lab, "phone-b", "stun.example.test")
    log = (natlab.run_dir / lab / "dns" / "branch1.branch1-lan.log").read_text()
    assert "forwarded stun.example.test to 203.0.113.6" in log  # dns1, the public server
    public = (natlab.run_dir / lab / "dns" / "dns1.log").read_text()
    assert "query[A] stun.example.test from 203.0.113.2" in public  # branch1's WAN address
    main = natlab.run("nat", "show", "branch1", "--lab", lab, "--json")
    assert main.returncode == 0, main.stderr
    counters = json.loads(main.stdout.splitlines()[0])["counters"]
    assert counters["left_to_kernel"] >= 2  # the query in, the public server's answer back


def ask_over_tcp(natlab: NatlabCommand, lab: str, node: str, name: str, server: str) -> set[str]:
    """The addresses `server` answers for name over TCP, asked from inside node (dnspython)."""
    ask = (
        "import sys, dns.message, dns.query; "
        "q = dns.message.make_query(sys.argv[1], 'A'); "
        "print(*(r for a in dns.query.tcp(q, sys.argv[2], timeout=3).answer for r in a))"
    )
    asked = natlab.exec(lab, node, sys.executable, "-c", ask, name, server)
    assert asked.returncode == 0, asked.stderr
    return set(asked.stdout.split())


def test_a_lan_resolver_answers_over_tcp_its_overrides_and_forwarded_names(natlab, main_branch_up):
    lab = main_branch_up
    assert ask_over_tcp(natlab, lab, "phone-a", "pbx.example.test", "10.0.0.1") == {"10.0.0.2"}
    # branch1's resolver has no override: it asks the public server over TCP, from its WAN
    stun = ask_over_tcp(natlab, lab, "phone-b", "stun.example.test", "10.1.0.1")
    assert stun == {"203.0.113.4", "203.0.113.5"}
    public = (natlab.run_dir / lab / "dns" / "dns1.log").read_text()
    assert "query[A] stun.example.test from 203.0.113.2" in public  # branch1's WAN address


def test_resolv_conf_is_visible_inside_and_gone_after_down(natlab, main_branch_up):
    lab = main_branch_up
    inside = natlab.exec(lab, "phone-b", "cat", "/etc/resolv.conf")
    assert "nameserver 10.1.0.1" in inside.stdout  # branch1's LAN address
    host = Path("/etc/resolv.conf").read_text()
    assert "10.1.0.1" not in host  # the host's own stays as it was
    assert len(etc_left(lab)) == 10 - 1  # every node's (the switch namespace has none)
    ledger = json.loads((natlab.run_dir / lab / "ledger.json").read_text())
    servers = [p["pid"] for p in ledger["processes"] if p["what"] == "dns server"]
    assert len(servers) == 4  # dns1, and one resolver per router LAN

    down = natlab.run("down", lab)

    assert down.returncode == 0, down.stderr
    assert etc_left(lab) == []
    assert not [pid for pid in servers if running(pid)]


def test_the_kernel_dataplane_serves_the_same_names(natlab):
    lab = natlab.new_lab()
    up = natlab.run("up", str(MAIN_BRANCH), "--name", lab, "--dataplane", "kernel")
    assert up.returncode == 0, up.stderr
    assert addresses(natlab, lab, "phone-a", "pbx.example.test") == [{"10.0.0.2"}]
    assert addresses(natlab, lab, "phone-c", "pbx.example.test") == [{"203.0.113.1"}]


def test_a_dns_server_that_fails_to_start_leaves_nothing(natlab, tmp_path: Path, monkeypatch):
    fake = tmp_path / "dnsmasq"
    fake.write_text("#!/bin/sh\necho 'dnsmasq: failed to create listening socket' >&2\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    lab = natlab.new_lab()
    monkeypatch.setattr(natlab, "env", {**natlab.env, "PATH": f"{tmp_path}:{os.environ['PATH']}"})

    up = natlab.run("up", str(MAIN_BRANCH), "--name", lab)

    assert up.returncode == 2, up.stderr
    assert "the public DNS server (dnsmasq) in node 'dns1' did not start" in up.stderr
    assert "failed to create listening socket" in up.stderr
    assert "Traceback" not in up.stderr
    assert etc_left(lab) == []
    assert not (natlab.run_dir / lab).exists()


def test_without_dnsmasq_up_refuses_before_building(natlab, tmp_path: Path, monkeypatch):
    lab = natlab.new_lab()
    monkeypatch.setattr(natlab, "env", {**natlab.env, "PATH": str(tmp_path)})  # nothing there

    up = natlab.run("up", str(MAIN_BRANCH), "--name", lab)

    assert up.returncode == 2, up.stderr
    assert "needs dnsmasq, which is not installed" in up.stderr
    assert etc_left(lab) == []


def test_a_record_outside_the_lab_is_refused_with_its_field(natlab, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MAIN_BRANCH.read_text().replace("stun: stun1", "stun: [stun1, 8.8.8.8]"))

    checked = natlab.run("validate", str(bad))

    assert checked.returncode == 2
    assert "dns.records.stun[1]" in checked.stderr
    assert "8.8.8.8 lies outside every segment of this lab" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_phones_register_with_the_pbx_by_name(natlab, main_branch_up):
    lab = main_branch_up
    phones = ("phone-a", "phone-b", "phone-c")
    deadline = time.monotonic() + 10
    while True:
        status = natlab.run("status", "--lab", lab, "--json")
        nodes = {n["name"]: n for n in json.loads(status.stdout)["labs"][0]["nodes"]}
        found = {phone: nodes[phone].get("registration") or {} for phone in phones}
        if all(r.get("registered") for r in found.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for registration in found.values():
        assert registration.get("registered"), registration
        assert registration.get("pbx") == "pbx.example.test:5060", registration


STUN_ONE_DOWN = (
    Path(__file__).resolve().parents[2] / "scenarios" / "topologies" / "stun-one-down.yaml"
)


def test_a_phone_asks_every_address_of_its_stun_name_and_calls_with_one_down(natlab_lab):
    """stun.example.test: 203.0.113.99 (nothing answers there) and stun1's 203.0.113.10."""
    lab = natlab_lab(STUN_ONE_DOWN)
    phone = lab.phone("phone-a")
    deadline = time.monotonic() + 10  # both registered: the callee too, however busy the machine
    while not all(lab.phone(p).status().registered for p in ("phone-a", "phone-b")):
        assert time.monotonic() < deadline, "the phones did not register"
        time.sleep(0.1)

    report = phone.call("phone-b", 1, "ice")

    assert report.verdict == "two-way", (report.verdict, report.error, report.selected_pair)
    assert report.selected_pair is not None and report.selected_pair.local.type == "srflx"
    assert report.gathering is not None  # how long it took is reported
    _, mappings = lab.router("home-a").show()
    asked = {p for m in mappings if m.proto == "udp" for p in m.permissions}
    assert {"203.0.113.99:3478", "203.0.113.10:3478"} <= asked  # both, from one socket
