"""A topology made real, and everything needed to take it away again.

`Lab.up()` records, then builds; any failure or interrupt half-way tears down
what was made before the error surfaces. `Lab.down()` works from the ledger
alone, so it also cleans up after a creator that was SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from natlab.core.behaviour import Behaviour
from natlab.errors import NatlabError
from natlab.lab import dns, programs, sip_software
from natlab.lab import status as lab_status
from natlab.lab.baresip import BaresipPhone
from natlab.lab.build import build, planned_namespaces
from natlab.lab.clients import PbxClient, PhoneClient, RouterClient
from natlab.lab.endpoints import control_path, start_endpoints, wait_ready
from natlab.lab.ledger import Ledger, lab_names, locked
from natlab.lab.naming import lab_dir, node_namespace, state_error, writing_state
from natlab.lab.processes import PROGRAM, TRANSIENT, Death, ProcessRecord, death, record, terminate
from natlab.lab.routers import DATAPLANES, Dataplane, NatDataplane
from natlab.plumbing import namespaces
from natlab.router.files import config_path, events_path, socket_path
from natlab.topology import Topology, load_topology, parse_topology
from natlab.topology.lab_name import check_lab_name
from natlab.topology.model import Role

TOPOLOGY_COPY = "topology.yaml"
BEHAVIOURS = "behaviours.json"  # each router's, as the lab runs it: a scenario's `nat:` wins


def keep_topology(topology: Topology, directory: Path) -> None:
    """Keep the topology in the lab's state directory: its file, and what each router runs."""
    (directory / TOPOLOGY_COPY).write_text(topology.text)
    behaviours = {name: router.behaviour.as_json() for name, router in topology.routers.items()}
    (directory / BEHAVIOURS).write_text(json.dumps(behaviours, indent=2))


def kept_topology(directory: Path, source: str) -> Topology:
    """The topology keep_topology kept, as the lab runs it (source names its file).

    A lab brought up by a natlab that kept no behaviours runs its file's.
    """
    topology = parse_topology((directory / TOPOLOGY_COPY).read_text(), source)
    try:
        behaviours = json.loads((directory / BEHAVIOURS).read_text())
    except FileNotFoundError:
        return topology
    return topology.with_behaviours({name: Behaviour(**b) for name, b in behaviours.items()})


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise NatlabError(
            f"{action} needs root: it creates and enters network namespaces",
            fix="run it as root, e.g. with sudo",
        )


@dataclass
class Lab:
    """One running (or about to run) copy of a topology, named `name`."""

    topology: Topology
    name: str = ""
    dataplane: Dataplane = field(default_factory=NatDataplane)

    def __post_init__(self) -> None:
        self.name = check_lab_name(self.name or self.topology.name)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, dataplane: str = "natlab") -> Lab:
        return cls(load_topology(path), name or "", _dataplane(dataplane))

    @classmethod
    def attach(cls, name: str | None = None) -> Lab:
        """The running lab called name; with no name, the only one running."""
        ledger = _ledger(name)
        topology = kept_topology(lab_dir(ledger.lab), ledger.topology)
        return cls(topology, ledger.lab, _dataplane(ledger.dataplane))

    # -- lifecycle -----------------------------------------------------------

    def _record(self) -> Ledger:
        """Check that the lab's name and namespaces are free, and write its ledger."""
        with locked():
            if Ledger.load(self.name) is not None:
                raise NatlabError(
                    f"a lab named '{self.name}' is already up",
                    fix=f"take it down with 'natlab down {self.name}', "
                    "or start another copy with --name",
                )
            wanted = planned_namespaces(self.topology, self.name)
            taken = [n for n in wanted if namespaces.exists(n)]
            if taken:
                raise NatlabError(
                    f"namespace {taken[0]} exists already and is not part of a lab "
                    f"named '{self.name}'",
                    fix="start this lab under another name with --name",
                )
            ledger = Ledger(
                lab=self.name,
                topology=self.topology.source,
                creator=record(os.getpid(), "", "natlab up"),
                namespaces=wanted,
                dataplane=self.dataplane.name,
            )
            try:
                ledger.save()
                keep_topology(self.topology, ledger.directory)
            except BaseException as error:
                ledger.forget()  # nothing was built yet: no half-written lab stays behind
                if isinstance(error, OSError) and writing_state(error):
                    raise state_error(error) from None
                raise
        return ledger

    def up(self) -> Lab:
        require_root("natlab up")
        programs.check_commands(self.topology, os.environ.get("PATH"))
        dns.check_host(self.topology, os.environ.get("PATH"))
        sip_software.check_binaries(self.topology, os.environ.get("PATH"))
        # Ctrl-C and SIGTERM wait until the lab is recorded and inside the `try` that undoes it:
        # one landing in between would leave a ledger behind.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            ledger = self._record()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            raise
        builder = os.getpid()
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            # The daemons' spawner imports while the lab is built and dnsmasq starts.
            spawner = self.dataplane.prepare(self.topology, ledger.directory, self.adopt)
            build(self.topology, ledger, self.dataplane)
            dns.write_resolv_confs(self.topology, self.namespace)  # before anything runs
            resolvers = dns.start(self.topology, ledger.directory, self._launch)
            daemons = self.dataplane.start(self.topology, self.name, ledger.directory, spawner)
            # Endpoints start once every router forwards and every name resolves: a phone's
            # first SYN to the PBX sent into a router not yet reading would wait out TCP's
            # 1 s retransmission.
            self.dataplane.wait_ready(daemons)
            dns.wait_ready(resolvers, self.namespace)
            sip_software.start_servers(
                self.topology, self.name, ledger.directory, self._launch, self.keep
            )
            servers = start_endpoints(
                self.topology, ledger.directory, self._launch, self.dataplane.translates
            )
            wait_ready(servers, self.namespace)
            sip_software.start_agents(
                self.topology,
                self.name,
                ledger.directory,
                self._launch,
                self.keep,
                self.dataplane.translates,
            )
            programs.start_all(self.topology, self.name, ledger.directory, self._launch, self.keep)
            with locked():
                ledger = _ledger(self.name)  # re-read: starting daemons recorded them
                ledger.state = "up"
                ledger.save()
        except BaseException as error:
            if os.getpid() != builder:
                os._exit(1)  # a forked helper unwinding our stack must not tear down
            self.down()
            if isinstance(error, OSError) and writing_state(error):  # a full or read-only disk
                raise state_error(error) from None
            raise
        return self

    def down(self) -> None:
        require_root("natlab down")
        teardown(self.name)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _launch(self, node: str, run: Callable[[], object], log: Path, what: str) -> int:
        """Fork a lab process into node's namespace, logging to log, recorded for teardown.

        A fork, not a new interpreter: it starts with natlab already imported,
        which keeps `up` fast. `run` may exec one instead (the NAT daemon does,
        to hold only what it imports).
        """
        namespace = self.namespace(node)
        sys.stdout.flush()
        sys.stderr.flush()
        # Ctrl-C and SIGTERM wait until the child is recorded: one landing during
        # the fork is lost (its handler runs in the at-fork hooks, which swallow
        # exceptions), one landing before adopt() leaves the child running.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        pid = os.fork()
        if pid == 0:  # the child: never return into the caller's stack
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            code = 1
            try:
                os.setsid()  # Ctrl-C in the terminal is for natlab, not for it
                # Nothing the parent had open may live on in a long-lived child: a
                # copy of natlab's lock (another thread may hold it) would keep
                # every lab operation waiting for as long as the child runs.
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(output, 1)
                os.dup2(output, 2)
                # Whatever sys.stdout was in the parent (pytest swaps it), print to the log.
                sys.stdout = sys.stderr = open(output, "w", buffering=1, closefd=False)  # noqa: SIM115
                namespaces.enter(namespace)
                result = run()
                code = result if isinstance(result, int) else 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        try:
            self.adopt(pid, node, what)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # not recorded, so `down` would never stop it
            os.waitpid(pid, 0)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return pid

    # -- routers -----------------------------------------------------------------

    def router(self, name: str) -> RouterClient:
        """The client of router `name`'s NAT daemon; a NatlabError if the lab has none."""
        if name not in self.topology.routers:
            routers = ", ".join(self.topology.routers) or "(none)"
            raise NatlabError(
                f"no router named '{name}' in lab '{self.name}'", fix=f"routers: {routers}"
            )
        if not isinstance(self.dataplane, NatDataplane):
            raise NatlabError(
                f"lab '{self.name}' runs with the {self.dataplane.name} dataplane: no NAT daemon",
                fix="bring the lab up without --dataplane kernel",
            )
        config = config_path(lab_dir(self.name), name)
        return RouterClient(name, socket_path(config), events_path(config))

    def phone(self, name: str) -> PhoneClient:
        """The client of phone `name`."""
        return PhoneClient(name, control_path(lab_dir(self.name), self._host(name, Role.PHONE)))

    def pbx(self, name: str | None = None) -> PbxClient:
        """The client of the PBX `name`, by default the lab's PBX."""
        if name is None:
            pbxs = [h.name for h in self.topology.hosts.values() if h.role is Role.PBX]
            if not pbxs:
                raise NatlabError(f"lab '{self.name}' has no PBX")
            name = pbxs[0]
        return PbxClient(name, control_path(lab_dir(self.name), self._host(name, Role.PBX)))

    def baresip(self, name: str) -> BaresipPhone:
        """The control of phone `name`, a baresip (`agent: baresip`)."""
        if self.topology.hosts[self._host(name, Role.PHONE)].agent != "baresip":
            raise NatlabError(
                f"phone '{name}' of lab '{self.name}' is not a baresip",
                fix="give it agent: baresip in the topology",
            )
        return BaresipPhone(name, self.namespace(name))

    def _host(self, name: str, role: Role) -> str:
        host = self.topology.hosts.get(name)
        if host is None or host.role is not role:
            found = [h.name for h in self.topology.hosts.values() if h.role is role]
            raise NatlabError(
                f"no {role.value} named '{name}' in lab '{self.name}'",
                fix=f"{role.value}s: {', '.join(found) or '(none)'}",
            )
        return name

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move every router's clock forward, as if that much time had passed."""
        return {
            router: self.router(router).advance(seconds).clock for router in self.topology.routers
        }

    # -- inside nodes ----------------------------------------------------------

    def namespace(self, node: str) -> str:
        self.topology.node(node)  # a clear error for an unknown node
        return node_namespace(self.name, node)

    def exec(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """Run argv inside node and wait for it (subprocess.run's keyword arguments)."""
        return subprocess.run(list(argv), preexec_fn=self._entering(node), **kwargs)

    def popen(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start argv inside node in the background; the caller waits for it."""
        return subprocess.Popen(list(argv), preexec_fn=self._entering(node), **kwargs)

    def _entering(self, node: str) -> Callable[[], None]:
        namespace = self.namespace(node)
        return lambda: namespaces.enter(namespace)

    def adopt(self, pid: int, node: str, what: str) -> None:
        """Record a process living inside node so that `down` stops it.

        One that has ended already (a quick `exec` step) leaves nothing to stop.
        """
        try:
            process = record(pid, node, what)
        except ProcessLookupError:
            return
        self.keep(process)

    def keep(self, process: ProcessRecord) -> None:
        """Record a process in the ledger.

        Finished `exec` sessions, captures and programs are forgotten here; a
        finished daemon stays recorded, so `status` can say it died.
        """
        with locked():
            ledger = _ledger(self.name)
            ledger.processes = [
                p for p in ledger.processes if p.what not in TRANSIENT or p.alive()
            ] + [process]
            ledger.save()

    def start_program(
        self,
        node: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        pair: programs.Pair | None = None,
    ) -> dict:
        """Start argv in node as a topology's `run:` is started (lab/programs.py); its state."""
        self.namespace(node)  # a clear error for an unknown node
        error = programs.command_error(argv, os.environ.get("PATH"))
        if error is not None:
            raise error
        lab_env = programs.program_env(self.topology, self.name, node, pair)
        full = {**os.environ, **lab_env, **(env or {})}
        return programs.start(self._launch, self.keep, lab_dir(self.name), node, argv, full)

    def program_state(self, node: str) -> dict | None:
        """What node's program is doing (running, exited N, ...); None if it never had one."""
        return programs.current_state(lab_dir(self.name), node, _ledger(self.name).processes)

    def end_program(self, node: str, grace: float = programs.GRACE) -> None:
        """End node's program and whatever it started: SIGTERM, then SIGKILL after grace."""
        ledger = _ledger(self.name)
        mine = [p for p in ledger.processes if p.node == node and p.what == PROGRAM]
        programs.end_programs(self.name, mine, grace)

    def status(self) -> dict:
        return lab_status.describe(self.topology, _ledger(self.name))

    def deaths(self) -> list[Death]:
        """The lab's daemons and endpoints that are no longer running, and how each ended."""
        ledger = Ledger.load(self.name)
        processes = ledger.processes if ledger is not None else []
        found = (death(p) for p in processes if p.what not in TRANSIENT)
        lost = sip_software.deaths(self.topology, lab_dir(self.name), processes)
        return [d for d in found if d is not None] + lost


def _dataplane(name: str) -> Dataplane:
    try:
        return DATAPLANES[name]()
    except KeyError:
        raise NatlabError(
            f"unknown dataplane '{name}'",
            field="--dataplane",
            fix=f"use one of {', '.join(DATAPLANES)}",
        ) from None


def _ledger(name: str | None) -> Ledger:
    if name is None:
        running = lab_names()
        if len(running) != 1:
            raise NatlabError(
                "no lab is up"
                if not running
                else f"{len(running)} labs are up: " + ", ".join(running),
                fix="start one with 'natlab up FILE'"
                if not running
                else "name the lab you mean with --lab",
            )
        name = running[0]
    ledger = Ledger.load(name)
    if ledger is None:
        running = lab_names()
        raise NatlabError(
            f"no lab named '{name}' is up",
            fix=f"labs up: {', '.join(running)}" if running else "start one with 'natlab up FILE'",
        )
    return ledger


def down(name: str | None) -> str:
    """Take down the lab called name (the only one up, if None); its name.

    Works from the ledger alone, so a lab whose creator died before it even
    kept a copy of its topology still goes.
    """
    require_root("natlab down")
    ledger = _ledger(name)
    teardown(ledger.lab)
    return ledger.lab


def teardown(name: str) -> list[str]:
    """Stop a lab's processes and remove its namespaces and state; what was removed.

    Ctrl-C and SIGTERM wait until it is done: a teardown cut short leaves debris.
    """
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        return _remove(name)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _remove(name: str) -> list[str]:
    with locked():
        ledger = Ledger.load(name)
        if ledger is None:
            return []
        programs.end_programs(name, ledger.processes)
        terminate([p for p in ledger.processes if p.what != PROGRAM])
        removed = [n for n in reversed(ledger.namespaces) if namespaces.remove(n)]
        for namespace in ledger.namespaces:
            namespaces.remove_etc(namespace)  # its resolv.conf, if the lab had names
        ledger.forget()
    return removed


def down_all() -> tuple[list[str], list[str]]:
    """Tear down every lab natlab recorded; (labs removed, labs skipped while being built)."""
    require_root("natlab down --all")
    removed, skipped = [], []
    for name in lab_names():
        ledger = Ledger.load(name)
        if ledger is not None and ledger.building_elsewhere():
            skipped.append(name)
            continue
        teardown(name)
        removed.append(name)
    return removed, skipped


def running_labs() -> list[str]:
    return lab_names()
