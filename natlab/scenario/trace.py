"""Traces: everything a scenario's lab did, merged in time order, one JSON object a line.

A trace is what `natlab explain` tells as a story, and what a red matrix
cell is judged by after its lab is gone. Records carry wall time `at` and a
`type`:

- `lab`: the topology as the story needs it (who sits behind which router,
  each router's WAN address and NAT, the STUN servers);
- `step` (phase start / end): each scenario step and, at its end, its checks;
- `nat`: one router event (core/events.py, as the daemon writes it), its
  router-clock time kept as `clock`;
- `stun`: a phone's (or a probe's) binding request through its router,
  seen as the mapping the router made towards a STUN server;
- `call`, `candidates`, `ice-check`, `rtp`: from both phones' CallReports
  (the caller's comes with the step, the callee's is asked for): each
  side's candidates, every ICE check with the state it reached, and each
  direction's RTP counts.

Router events carry the router's clock: the system's monotonic clock plus
the offset `clock advance` added. While a router's offset stays as it was
at the last read, its events go on the wall clock exactly (monotonic to
wall, as this process sees both), so events of different routers keep
their true order however late the reading comes. Events read across a
clock advance are placed by reading the router's clock right after them
instead; the recorder reads before every step and after it, so an advance
only ever shifts the events of its own step.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from natlab.endpoints.signalling import ask, format_endpoint
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.endpoints import control_path, stun_servers
from natlab.lab.naming import lab_dir
from natlab.scenario.capture import captured
from natlab.scenario.expectations import observed_media
from natlab.scenario.explain import LOST_COUNTS
from natlab.scenario.model import Scenario
from natlab.scenario.runner import Progress, ScenarioResult, StepResult, run_scenario
from natlab.scenario.trace_records import record_problem

TRACES = Path("natlab-traces")  # where failed runs keep their trace, below the current directory
CALLEE_REPORT_WAIT = 3.0  # the callee files its report just after the caller's bye is answered
POLL = 0.05
MAX_TRACE_BYTES = 64 << 20  # a matrix pair's trace is well under a megabyte
MAX_LINE_BYTES = 1 << 20  # a record is a line; the largest, the lab's, is a few kilobytes


def default_trace(name: str) -> Path:
    """What a failed run's kept trace is named after when no --trace was given (see keep_trace)."""
    return TRACES / f"{name}.jsonl"


def keep_trace(base: Path, records: Iterable[dict], now: float | None = None) -> Path:
    """Write a failed run's trace to a new file of its own next to `base`: NAME-YYYYmmdd-HHMMSS-PID.

    Created exclusively (O_EXCL), so runs side by side, even of the same
    scenario in the same second, never write over each other's.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    suffix = str(os.getpid())
    while True:
        path = base.with_name(f"{base.stem}-{stamp}-{suffix}{base.suffix}")
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
            continue
        with open(handle, "w") as file:
            file.write("".join(json.dumps(record) + "\n" for record in records))
        return path


def pair_trace(directory: Path, caller_type: str, callee_type: str) -> Path:
    """A matrix pair's trace in `directory`, named like its cell."""
    return directory / f"{caller_type}-x-{callee_type}.jsonl"


def write_trace(path: str | Path, records: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def read_trace(path: str | Path) -> list[dict]:
    """A trace's records, oldest first; anything else is a NatlabError naming file and line.

    Bounded: at most MAX_TRACE_BYTES in all and MAX_LINE_BYTES a record, each
    record of the shape its readers expect (trace_records.py).
    """
    path = Path(path)
    fix = "give a trace written by 'natlab run --trace FILE' or kept in natlab-traces/"
    try:
        with path.open("rb") as source:
            if os.fstat(source.fileno()).st_size > MAX_TRACE_BYTES:
                raise NatlabError(
                    f"not a trace: larger than {MAX_TRACE_BYTES >> 20} MiB", file=str(path), fix=fix
                )
            records = _records(source, str(path), fix)
    except FileNotFoundError:
        raise NatlabError("no such trace file", file=str(path), fix=fix) from None
    except OSError as error:
        raise NatlabError(
            f"cannot read the trace: {error.strerror or error}", file=str(path)
        ) from None
    if not records:
        raise NatlabError("not a trace: the file is empty", file=str(path), fix=fix)
    return records


def _records(source: IO[bytes], filename: str, fix: str) -> list[dict]:
    records: list[dict] = []
    routers: set[str] | None = None  # the lab record's, once read
    for number, raw in enumerate(iter(lambda: source.readline(MAX_LINE_BYTES + 1), b""), 1):
        if len(raw) > MAX_LINE_BYTES:
            raise NatlabError(
                f"not a trace: a line longer than {MAX_LINE_BYTES >> 10} KiB",
                file=filename,
                line=number,
                fix=fix,
            )
        try:
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            record = json.loads(line)
        except UnicodeDecodeError:
            raise NatlabError(
                "not a trace: not UTF-8 text (a binary file?)", file=filename, line=number, fix=fix
            ) from None
        except (ValueError, RecursionError) as error:  # JSONDecodeError, or nested too deep
            problem = (
                error.msg
                if isinstance(error, json.JSONDecodeError)
                else "nested too deep"
                if isinstance(error, RecursionError)
                else str(error)
            )
            raise NatlabError(
                f"not a trace: not JSON ({problem})", file=filename, line=number, fix=fix
            ) from None
        problem = record_problem(record, routers)
        if problem is not None:
            raise NatlabError(f"not a trace record: {problem}", file=filename, line=number, fix=fix)
        if routers is None:
            routers = set(record["routers"])
        records.append(record)
    return records


def lab_record(scenario: Scenario, lab: str, at: float) -> dict:
    """The topology, as the story names things: hosts with their router, routers with their NAT."""
    topology = scenario.topology
    gateways = {segment.name: segment.gateway for segment in topology.segments.values()}
    return {
        "type": "lab",
        "at": at,
        "scenario": scenario.name,
        "about": scenario.about,
        "source": scenario.source,
        "lab": lab,
        "routers": {
            name: {
                "wan": str(router.wan.address),
                "lans": [str(topology.segments[lan.segment].subnet) for lan in router.lans],
                "nat": router.behaviour.preset_name() or "custom",
                "mapping": router.behaviour.mapping.value,
                "filtering": router.behaviour.filtering.value,
            }
            for name, router in topology.routers.items()
        },
        "hosts": {
            name: {
                "address": str(host.interfaces[0].address),
                "role": host.role.value,
                "router": gateways.get(host.interfaces[0].segment),
            }
            for name, host in topology.hosts.items()
        },
        "stun_servers": [format_endpoint(server) for server in stun_servers(topology)],
    }


def call_records(report: dict, callee_report: dict | None) -> list[dict]:
    """A call's records from its phones' reports: candidates, checks, RTP each way."""
    call, caller, callee = report.get("call"), report.get("caller"), report.get("callee")
    start = report.get("started_at") or time.time()
    end = report.get("ended_at") or start
    records = [
        {
            "type": "call",
            "at": start,
            "call": call,
            "caller": caller,
            "callee": callee,
            "mode": report.get("mode"),
            "verdict": observed_media(report) if "verdict" in report else None,
            "ice": report.get("ice"),
            "error": report.get("error"),
            "selected_pair": report.get("selected_pair"),
        }
    ]
    sides = [(caller, report, callee_report)]
    if callee_report:
        sides.append((callee, callee_report, report))
    for phone, side, other in sides:
        records.append(
            {
                "type": "candidates",
                "at": start,
                "call": call,
                "phone": phone,
                "candidates": _candidates(side, other),
            }
        )
        selected = side.get("selected_pair") or {}
        chosen = ((selected.get("local") or {}).get("base"), (selected.get("remote") or {}))
        for check in side.get("checks") or []:
            records.append(
                {
                    "type": "ice-check",
                    "at": start,
                    "call": call,
                    "phone": phone,
                    **check,
                    "selected": chosen[1].get("address") == check["remote"]
                    and chosen[0] in (None, check["local"]),
                }
            )
    mine, peer = report.get("rtp") or {}, report.get("peer_rtp") or LOST_COUNTS
    for sender, receiver, sent, received in (
        (caller, callee, mine.get("sent", 0), peer.get("received", 0)),
        (callee, caller, peer.get("sent", 0), mine.get("received", 0)),
    ):
        records.append(
            {
                "type": "rtp",
                "at": end,
                "call": call,
                "sender": sender,
                "receiver": receiver,
                "sent": sent,
                "received": received,
            }
        )
    return records


def _candidates(report: dict, peer: dict | None) -> list[dict]:
    """A phone's candidates: its checks' local side, and what the peer's checks aimed at.

    aioice pairs a server-reflexive candidate on its host base, so the
    phone's own checks show only host addresses; its srflx and relay
    candidates are where the peer's checks went.
    """
    seen: dict[str, str] = {}
    for check in report.get("checks") or []:
        seen.setdefault(check["local"], check["local_type"])
    for check in (peer or {}).get("checks") or []:
        seen.setdefault(check["remote"], check["remote_type"])
    local = (report.get("selected_pair") or {}).get("local") or {}
    if local.get("address"):
        seen.setdefault(local["address"], local.get("type", "?"))
    return [{"address": address, "type": kind} for address, kind in seen.items()]


def stun_records(records: Iterable[dict], lab: dict) -> list[dict]:
    """A binding request to a STUN server, as the router that translated it saw it."""
    servers = set(lab["stun_servers"])
    by_address = {host["address"]: name for name, host in lab["hosts"].items()}
    return [
        {
            "type": "stun",
            "at": record["at"],
            "router": record["router"],
            "host": by_address.get(record["internal"].rsplit(":", 1)[0], "?"),
            "internal": record["internal"],
            "mapped": record["external"],
            "server": record["remote"],
        }
        for record in records
        if record["type"] == "nat"
        and record["kind"] == "mapping-created"
        and record.get("remote") in servers
    ]


def _program(step: StepResult) -> bool:
    return step.report is not None and "program" in step.report


def merged(records: Iterable[dict]) -> list[dict]:
    """In time order; the lab record first, ties kept in the order they were recorded."""
    return sorted(records, key=lambda record: (record["type"] != "lab", record["at"]))


@dataclass
class Recorder:
    """Collects a running scenario's trace through run_scenario's progress callback."""

    scenario: Scenario
    lab_name: str
    records: list[dict] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _offsets: dict[str, float] = field(default_factory=dict)  # router -> clock offset last read
    _next_step: int = 0

    def __post_init__(self) -> None:
        self.lab = Lab(self.scenario.topology, self.lab_name)
        self.records.append(lab_record(self.scenario, self.lab_name, time.time()))

    def progress(self, text: str, step: StepResult | None) -> None:
        """Before and after each step: the routers' new events, then the step itself."""
        steps = self.scenario.steps
        starting = (
            step is None
            and self._next_step < len(steps)
            and text == steps[self._next_step].describe()
        )
        if step is not None or starting:
            self.read_events()
        if starting:
            start = {"type": "step", "at": time.time(), "phase": "start", "text": text}
            self.records.append({**start, "index": self._next_step})
        elif step is not None:
            self._next_step = step.index + 1
            if step.report is not None and "call" in step.report:
                calls = call_records(step.report, self.callee_report(step.report))
                calls[0]["fault"] = step.fault  # then the media is no NAT result
                self.records += calls
            self.records.append(
                {
                    "type": "step",
                    "at": time.time(),
                    "phase": "end",
                    "index": step.index,
                    "text": step.text,
                    "verdict": step.verdict,
                    "passed": step.passed,
                    "error": step.error,
                    "fault": step.fault,
                    "checks": [vars(check) for check in step.checks],
                    # a program's state, output and the drops meanwhile (program_runs.py)
                    **({"explanation": step.explanation} if _program(step) else {}),
                }
            )

    def read_events(self) -> None:
        """Each router's events since the last read, placed on the wall clock."""
        for router in self.scenario.topology.routers:
            try:
                events = self.lab.nat_events(router)
                clock = self.lab.nat(router, {"op": "clock"})
            except (NatlabError, OSError):  # no daemon (a kernel lab) or it died: nothing to add
                continue
            wall = time.time()
            offset = clock["offset"]
            if self._offsets.get(router, 0.0) == offset:  # no advance: router clock - offset
                shift = wall - time.monotonic() - offset  # is monotonic time, to wall time
            else:
                shift = wall - clock["clock"]
            for event in events[self._seen.get(router, 0) :]:
                self.records.append(
                    {**event, "type": "nat", "clock": event["at"], "at": event["at"] + shift}
                )
            self._seen[router] = len(events)
            self._offsets[router] = offset

    def callee_report(self, report: dict) -> dict | None:
        """The callee's own report of the call (its checks and candidates), if it files one."""
        path = control_path(lab_dir(self.lab_name), report["callee"])
        deadline = time.monotonic() + CALLEE_REPORT_WAIT
        while True:
            try:
                reports = ask(path, {"op": "reports"})["reports"]
            except NatlabError:
                return None
            found = next((r for r in reports if r.get("call") == report["call"]), None)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(POLL)

    def trace(self) -> list[dict]:
        return merged([*self.records, *stun_records(self.records, self.records[0])])


def run_traced(
    scenario: Scenario,
    lab_name: str,
    trace: Path | None = None,
    keep_failed: Path | None = None,
    progress: Progress | None = None,
    pcap: Path | None = None,
) -> ScenarioResult:
    """run_scenario, recording its trace: written to `trace`; if the run did not pass, also kept
    in a file of its own named after `keep_failed` (keep_trace). The result says where.

    With `pcap`, every router interface is captured there too (capture.py).
    """
    recorder = Recorder(scenario, lab_name)

    def tell(text: str, step: StepResult | None) -> None:
        recorder.progress(text, step)
        if progress is not None:
            progress(text, step)

    around = partial(captured, directory=pcap) if pcap is not None else None
    result = run_scenario(scenario, lab_name, tell, around)
    if trace is not None:
        result.trace = str(write_trace(trace, recorder.trace()))
    if keep_failed is not None and not result.passed:
        result.trace = str(keep_trace(keep_failed, recorder.trace()))
    return result
