"""Traces: everything a scenario's lab did, merged in time order, one JSON object a line.

A trace is what `natlab explain` tells as a story, and what a red matrix
cell is judged by after its lab is gone. Records carry wall time `at` and a
`type`; each is a record of natlab.records, whose `from_json` checks its
shape as a trace is read, and the lab record carries the trace's version
(`v`):

- `lab`: the topology as the story needs it (who sits behind which router,
  each router's WAN address and NAT, the STUN servers);
- `step` (phase start / end): each scenario step and, at its end, its checks;
- `nat`: one router event (core/events.py, as the daemon writes it), its
  router-clock time kept as `clock`;
- `stun`: a phone's (or a probe's) binding request through its router,
  seen as the mapping the router made towards a STUN server;
- `call`, `candidates`, `ice-check`, `rtp`, `sip`: from both phones'
  CallReports (the caller's comes with the step, the callee's is asked
  for): each side's candidates, every ICE check with the state it reached,
  each direction's RTP counts, and every SIP message each phone sent or
  received for the call, at its time (method or status, top Via, Contact,
  the SDP's address).

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
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import IO

from natlab.endpoints.sip_transport import format_endpoint
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.clients import EventPosition
from natlab.lab.endpoints import stun_servers
from natlab.records import (
    CallRecord,
    CallReport,
    Candidate,
    CandidatesRecord,
    HostInfo,
    IceCheckRecord,
    LabRecord,
    NatRecord,
    OtherRecord,
    RouterInfo,
    RtpRecord,
    SipRecord,
    StepEnded,
    StepStarted,
    StunRecord,
    TraceRecord,
    trace_record,
)
from natlab.scenario.capture import captured
from natlab.scenario.expectations import observed_media
from natlab.scenario.model import Scenario, Step
from natlab.scenario.runner import Progress, RunHooks, ScenarioResult, StepResult, run_scenario

Record = TraceRecord | OtherRecord
TRACES = Path("natlab-traces")  # where failed runs keep their trace, below the current directory
CALLEE_REPORT_WAIT = 3.0  # the callee files its report just after the caller's bye is answered
POLL = 0.05
MAX_TRACE_BYTES = 64 << 20  # a matrix pair's trace is well under a megabyte
MAX_LINE_BYTES = 1 << 20  # a record is a line; the largest, the lab's, is a few kilobytes


def default_trace(name: str) -> Path:
    """What a failed run's kept trace is named after when no --trace was given (see keep_trace)."""
    return TRACES / f"{name}.jsonl"


def _lines(records: Iterable[Record]) -> str:
    return "".join(json.dumps(record.to_json()) + "\n" for record in records)


def keep_trace(base: Path, records: Iterable[Record], now: float | None = None) -> Path:
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
            file.write(_lines(records))
        return path


def pair_trace(directory: Path, caller_type: str, callee_type: str) -> Path:
    """A matrix pair's trace in `directory`, named like its cell."""
    return directory / f"{caller_type}-x-{callee_type}.jsonl"


def write_trace(path: str | Path, records: Iterable[Record]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_lines(records))
    return path


def read_trace(path: str | Path) -> list[Record]:
    """A trace's records, oldest first; anything else is a NatlabError naming file and line.

    Bounded: at most MAX_TRACE_BYTES in all and MAX_LINE_BYTES a record, each
    record of the shape its readers expect (records.py).
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


def _records(source: IO[bytes], filename: str, fix: str) -> list[Record]:
    records: list[Record] = []
    lab: LabRecord | None = None
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
            data = json.loads(line)
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
        try:
            record = _record(data, lab)
        except NatlabError as error:
            raise NatlabError(
                f"not a trace record: {error.problem}",
                file=filename,
                line=number,
                fix=error.fix or fix,
            ) from None
        if isinstance(record, LabRecord):
            lab = record
        records.append(record)
    return records


def _record(data: object, lab: LabRecord | None) -> Record:
    """One line's record, in the context of the lab record (None: this is the first line)."""
    if lab is None and not (isinstance(data, dict) and data.get("type") == LabRecord.type):
        if not isinstance(data, dict):
            raise NatlabError(f"a record is a JSON object, not {type(data).__name__}")
        raise NatlabError("the first record of a trace describes its lab ('type': 'lab')")
    record = trace_record(data)
    if isinstance(record, NatRecord | StunRecord) and record.router not in lab.routers:  # type: ignore[union-attr]
        raise NatlabError(f"router '{record.router}' is not one of the trace's lab routers")
    return record


def lab_record(scenario: Scenario, lab: str, at: float) -> LabRecord:
    """The topology, as the story names things: hosts with their router, routers with their NAT."""
    topology = scenario.topology
    gateways = {segment.name: segment.gateway for segment in topology.segments.values()}
    return LabRecord(
        at=at,
        scenario=scenario.name,
        about=scenario.about,
        source=scenario.source,
        lab=lab,
        routers={
            name: RouterInfo(
                wan=str(router.wan.address),
                lans=[str(topology.segments[lan.segment].subnet) for lan in router.lans],
                nat=router.behaviour.preset_name() or "custom",
                mapping=router.behaviour.mapping.value,
                filtering=router.behaviour.filtering.value,
            )
            for name, router in topology.routers.items()
        },
        hosts={
            name: HostInfo(
                address=str(host.interfaces[0].address),
                role=host.role.value,
                router=gateways.get(host.interfaces[0].segment),
            )
            for name, host in topology.hosts.items()
        },
        stun_servers=[format_endpoint(server) for server in stun_servers(topology)],
    )


def call_records(
    report: CallReport, callee_report: CallReport | None, fault: str | None = None
) -> list[TraceRecord]:
    """A call's records from its phones' reports: candidates, checks, RTP each way.

    `fault`: what died while the call ran (then its media is no NAT result).
    """
    call, caller, callee = report.call, report.caller, report.callee
    start = report.started_at
    end = report.ended_at or start
    records: list[TraceRecord] = [
        CallRecord(
            at=start,
            call=call,
            caller=caller,
            callee=callee,
            mode=report.mode,
            verdict=observed_media(report),
            ice=report.ice,
            error=report.error,
            selected_pair=report.selected_pair,
            fault=fault,
        )
    ]
    sides = [(caller, report, callee_report)]
    if callee_report:
        sides.append((callee, callee_report, report))
    for phone, side, other in sides:
        records.append(
            CandidatesRecord(at=start, call=call, phone=phone, candidates=_candidates(side, other))
        )
        selected = side.selected_pair
        for check in side.checks:
            chosen = selected is not None and (
                selected.remote.address == check.remote
                and selected.local.base in (None, check.local)
            )
            records.append(
                IceCheckRecord(
                    at=start,
                    call=call,
                    phone=phone,
                    local=check.local,
                    remote=check.remote,
                    local_type=check.local_type,
                    remote_type=check.remote_type,
                    state=check.state,
                    selected=chosen,
                )
            )
    for phone, side in ((caller, report), (callee, callee_report)):
        for seen in side.signalling if side is not None else []:
            records.append(SipRecord(call=call, phone=phone, **asdict(seen)))
    mine, peer = report.rtp, report.peer_rtp
    for sender, receiver, sent, counts in (
        (caller, callee, mine.sent, peer),
        (callee, caller, None if peer is None else peer.sent, mine),
    ):
        measured = {}  # the receiver's RFC 3550 figures, when its counts came back
        if counts is not None and counts.received:
            measured = {"lost": counts.lost, "late": counts.late, "jitter_ms": counts.jitter_ms}
        records.append(
            RtpRecord(
                at=end,
                call=call,
                sender=sender,
                receiver=receiver,
                sent=sent,
                received=None if counts is None else counts.received,
                **measured,
            )
        )
    return records


def _candidates(report: CallReport, peer: CallReport | None) -> list[Candidate]:
    """A phone's candidates: its checks' local side, and what the peer's checks aimed at.

    aioice pairs a server-reflexive candidate on its host base, so the
    phone's own checks show only host addresses; its srflx and relay
    candidates are where the peer's checks went.
    """
    seen: dict[str, str] = {}
    for check in report.checks:
        seen.setdefault(check.local, check.local_type)
    for check in peer.checks if peer else []:
        seen.setdefault(check.remote, check.remote_type)
    if report.selected_pair is not None:
        local = report.selected_pair.local
        seen.setdefault(local.address, local.type)
    return [Candidate(address, kind) for address, kind in seen.items()]


def stun_records(records: Iterable[Record], lab: LabRecord) -> list[StunRecord]:
    """A binding request to a STUN server, as the router that translated it saw it."""
    servers = set(lab.stun_servers)
    by_address = {host.address: name for name, host in lab.hosts.items()}
    return [
        StunRecord(
            at=record.at,
            router=record.router,
            host=by_address.get((record.internal or "").rsplit(":", 1)[0], "?"),
            internal=record.internal or "",
            mapped=record.external or "",
            server=record.remote or "",
        )
        for record in records
        if isinstance(record, NatRecord)
        and record.kind == "mapping-created"
        and record.remote in servers
    ]


def merged(records: Iterable[Record]) -> list[Record]:
    """In time order; the lab record first, ties kept in the order they were recorded."""
    return sorted(records, key=lambda record: (not isinstance(record, LabRecord), record.at))


class Recorder(RunHooks):
    """Collects a running scenario's trace, told by run_scenario's hooks.

    It reads each router's events on from where it last stopped (RouterClient
    positions), before each step starts and after it ends.
    """

    def __init__(self, scenario: Scenario, lab_name: str) -> None:
        self.scenario = scenario
        self.lab: Lab | None = None  # the run's, once it is up
        self.records: list[Record] = [lab_record(scenario, lab_name, time.time())]
        self._positions: dict[str, EventPosition] = {}
        self._offsets: dict[str, float] = {}  # router -> clock offset last read

    def lab_up(self, lab: Lab) -> None:
        self.lab = lab

    def step_started(self, index: int, step: Step) -> None:
        self.read_events()
        self.records.append(StepStarted(at=time.time(), index=index, text=step.describe()))

    def step_ended(self, result: StepResult) -> None:
        """The routers' new events, then the call's records (both phones' reports), the end."""
        self.read_events()
        if result.call_report is not None:
            report = result.call_report
            self.records += call_records(report, self.callee_report(report), result.fault)
        self.records.append(
            StepEnded(
                at=time.time(),
                index=result.index,
                text=result.text,
                verdict=result.verdict,
                passed=result.passed,
                error=result.error,
                fault=result.fault,
                checks=list(result.checks),
                # a program's state, output and the drops meanwhile (program_runs.py)
                explanation=list(result.explanation) if result.program else [],
            )
        )

    def read_events(self) -> None:
        """Each router's events since the last read, placed on the wall clock."""
        if self.lab is None:
            return
        for name in self.scenario.topology.routers:
            try:
                router = self.lab.router(name)
                batch = router.events(self._positions.get(name))
                clock = router.clock()
            except (NatlabError, OSError):  # no daemon (a kernel lab) or it died: nothing to add
                continue
            wall = time.time()
            if self._offsets.get(name, 0.0) == clock.offset:  # no advance: router clock - offset
                shift = wall - time.monotonic() - clock.offset  # is monotonic time, to wall time
            else:
                shift = wall - clock.clock
            self.records += [NatRecord.placed(event, event.at + shift) for event in batch.events]
            self._positions[name] = batch.position
            self._offsets[name] = clock.offset

    def callee_report(self, report: CallReport) -> CallReport | None:
        """The callee's own report of the call (its checks and candidates), if it files one."""
        assert self.lab is not None
        deadline = time.monotonic() + CALLEE_REPORT_WAIT
        while True:
            try:
                reports = self.lab.phone(report.callee).reports()
            except NatlabError:
                return None
            found = next((r for r in reports if r.call == report.call), None)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(POLL)

    def trace(self) -> list[Record]:
        lab = self.records[0]
        assert isinstance(lab, LabRecord)
        return merged([*self.records, *stun_records(self.records, lab)])


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
    around = partial(captured, directory=pcap) if pcap is not None else None
    result = run_scenario(scenario, lab_name, progress, around, recorder)
    if trace is not None:
        result.trace = str(write_trace(trace, recorder.trace()))
    if keep_failed is not None and not result.passed:
        result.trace = str(keep_trace(keep_failed, recorder.trace()))
    return result
