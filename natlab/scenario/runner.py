"""Run a scenario: bring its lab up, do each step, hold it to its expectations, take it down.

Each step ends in a StepResult: the checks it made (expected against
observed), the phones' or the probe's own report, and, for a call, the
explanation (explain.py) from the routers' events recorded while it ran.
A step that cannot run at all (a phone that does not answer) stops the
scenario: later steps would only fail for the same reason. After each step
the lab's processes are checked: one that died (a router's NAT daemon, a
phone, the PBX, a server) makes the step a fault (verdict.py), whatever
the phones reported, and stops the scenario too. The lab is always taken
down, also on Ctrl-C.

Whoever watches a run (the trace's Recorder) gets RunHooks: the one Lab
object of the run once it is up, then each step's start and end, as they
happen. The lab's processes are asked only through their clients
(lab/clients.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field

from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.processes import Death
from natlab.records import CallReport, Check, ProbeReport, RouterEvent
from natlab.scenario import probe as discovery
from natlab.scenario.baresip_calls import (
    baresip_call,
    callee_reached,
    involves_baresip,
    is_baresip,
)
from natlab.scenario.expectations import check_call, check_probe, lost_call
from natlab.scenario.explain import DropGroup, drop_groups, explain_call
from natlab.scenario.model import (
    AdvanceClock,
    Call,
    Probe,
    Register,
    Scenario,
    SetLink,
    SetNat,
    Step,
    WaitRegistered,
)
from natlab.scenario.program_runs import run_program_step
from natlab.scenario.program_steps import ProgramStep
from natlab.scenario.verdict import ERROR, FAULT, PASSED, exit_code, fault_text, step_verdict, worst
from natlab.topology.lab_name import unique_lab_name
from natlab.topology.model import Role

POLL = 0.05


@dataclass
class StepResult:
    index: int
    text: str  # the step as people read it
    line: int | None
    checks: list[Check] = field(default_factory=list)
    error: str | None = None  # the step could not run
    explanation: list[str] = field(default_factory=list)
    call_report: CallReport | None = None  # a call step's: the caller's report
    probe_report: ProbeReport | None = None  # a probe step's
    program: dict | None = None  # a program step's: records.ProgramState, node, output's tail
    drops: list[DropGroup] = field(default_factory=list)  # what routers dropped during a call
    media_relay: list[str] = field(default_factory=list)  # a call's: why the PBX relayed, or not
    seconds: float = 0.0
    deaths: list[Death] = field(default_factory=list)  # lab processes found dead after it

    @property
    def verdict(self) -> str:
        return step_verdict(self.error, (check.ok for check in self.checks), self.deaths)

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def fault(self) -> str | None:
        """What died, for people: "branch1's NAT daemon died (signal SIGKILL)"."""
        return fault_text(self.deaths)

    @property
    def report(self) -> dict | None:
        """The step's report as JSON: the caller's CallReport, the probe's, or the program's."""
        if self.program is not None:
            return {"program": self.program}
        found = self.call_report or self.probe_report
        return None if found is None else found.to_json()

    def as_json(self) -> dict:
        return {
            "index": self.index,
            "step": self.text,
            "line": self.line,
            "verdict": self.verdict,
            "passed": self.passed,
            "error": self.error,
            "fault": self.fault,
            "deaths": [asdict(death) for death in self.deaths],
            "checks": [check.to_json() for check in self.checks],
            "explanation": self.explanation,
            "report": self.report,
            "drops": [group.as_json() for group in self.drops],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ScenarioResult:
    name: str
    source: str
    lab: str
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None  # the lab did not come up
    seconds: float = 0.0
    trace: str | None = None  # where its trace was written, if it was

    @property
    def verdict(self) -> str:
        steps = worst(step.verdict for step in self.steps)
        return steps if steps == FAULT or self.error is None else ERROR

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def deaths(self) -> list[Death]:
        return [death for step in self.steps for death in step.deaths]

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict, self.deaths)

    def as_json(self) -> dict:
        return {
            "scenario": self.name,
            "file": self.source,
            "lab": self.lab,
            "verdict": self.verdict,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "error": self.error,
            "trace": self.trace,
            "seconds": round(self.seconds, 3),
            "steps": [step.as_json() for step in self.steps],
        }


Progress = Callable[[str, StepResult | None], None]


class RunHooks:
    """What a run tells whoever watches it, as it happens; these do nothing."""

    def lab_up(self, lab: Lab) -> None:
        """The run's lab is up: the one Lab object every step uses."""

    def step_started(self, index: int, step: Step) -> None:
        """Step `index` starts now."""

    def step_ended(self, result: StepResult) -> None:
        """The step has ended (run, failed to run, or found a process dead)."""


def run_scenario(
    scenario: Scenario,
    lab_name: str | None = None,
    progress: Progress | None = None,
    around: Callable[[Lab], AbstractContextManager] | None = None,
    hooks: RunHooks | None = None,
) -> ScenarioResult:
    """Every step in order, in a lab of its own that is always taken down.

    `around(lab)` wraps the steps, once the lab is up (a capture, say);
    `hooks` hear of the lab and of each step's start and end.
    """
    tell = progress or (lambda message, result: None)
    hooks = hooks or RunHooks()
    lab = Lab(scenario.topology, lab_name or unique_lab_name(scenario.name))
    result = ScenarioResult(scenario.name, scenario.source, lab.name)
    started = time.monotonic()
    tell(f"bringing lab {lab.name} up", None)
    try:
        lab.up()
    except NatlabError as error:
        result.error = f"the lab did not come up: {error}"
        result.seconds = time.monotonic() - started
        return result
    try:
        hooks.lab_up(lab)
        with around(lab) if around else nullcontext():
            runner = _Runner(lab)
            for index, step in enumerate(scenario.steps):
                line = scenario.lines[index] if index < len(scenario.lines) else None
                tell(step.describe(), None)
                hooks.step_started(index, step)
                done = runner.run(index, step, line)
                result.steps.append(done)
                hooks.step_ended(done)
                tell(step.describe(), done)
                if done.error is not None or done.deaths:
                    break
    finally:
        tell(f"taking lab {lab.name} down", None)
        lab.down()
    result.seconds = time.monotonic() - started
    return result


class _Runner:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def run(self, index: int, step: Step, line: int | None) -> StepResult:
        result = StepResult(index, step.describe(), line)
        started = time.monotonic()
        try:
            if isinstance(step, WaitRegistered):
                self.wait_registered(step, result)
            elif isinstance(step, Register):
                self.register(step, result)
            elif isinstance(step, Call):
                self.call(step, result)
            elif isinstance(step, AdvanceClock):
                self.lab.advance_clock(step.seconds)
            elif isinstance(step, SetNat):
                for router, behaviour in step.behaviours.items():
                    self.lab.router(router).set(behaviour)
            elif isinstance(step, SetLink):
                self.lab.router(step.router).link_set(step.iface, step.impairment)
            elif isinstance(step, ProgramStep):
                run_program_step(self.lab, step, result)
            elif isinstance(step, Probe):
                result.probe_report = discovery.discover(self.lab, step.node, step.server)
                result.checks = check_probe(step.expect, result.probe_report)
        except NatlabError as error:
            result.error = str(error)
        result.deaths = self.lab.deaths()
        result.seconds = time.monotonic() - started
        return result

    def wait_registered(self, step: WaitRegistered, result: StepResult) -> None:
        """Poll each phone's status until it says registered, or the step's timeout passes."""
        deadline = time.monotonic() + step.timeout
        pending = list(step.phones)
        seen: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for phone in list(pending):
                try:
                    client = (
                        self.lab.baresip(phone)
                        if is_baresip(self.lab, phone)
                        else self.lab.phone(phone)
                    )
                    status = client.status()
                except NatlabError as error:  # not listening yet
                    seen[phone] = f"no answer ({error.problem})"
                    continue
                if status.registered:
                    pending.remove(phone)
                else:
                    seen[phone] = f"not registered ({status.error or 'no reason given'})"
            if pending:
                time.sleep(POLL)
        result.checks = [
            Check(
                f"{phone} registration",
                f"registered within {step.timeout:g} s",
                seen.get(phone, "?") if phone in pending else "registered",
                phone not in pending,
            )
            for phone in step.phones
        ]

    def register(self, step: Register, result: StepResult) -> None:
        """Each phone registers anew; the phone answers once it knows how that went."""
        expected = "registered" if step.registered else "refused"
        for phone in step.phones:
            status = self.lab.phone(phone).register(
                step.transport, step.certificate, step.keepalive
            )
            if status.registered:
                observed = f"registered over {status.transport}"
            else:
                observed = f"refused ({status.error or 'no reason given'})"
            ok = status.registered == step.registered
            result.checks.append(Check(f"{phone} registration", expected, observed, ok))

    def call(self, step: Call, result: StepResult) -> None:
        routers = [self.lab.router(router) for router in self.lab.topology.routers]
        marks = {router.name: router.mark() for router in routers}
        try:
            if involves_baresip(self.lab, step):
                report = baresip_call(self.lab, step)
            else:
                report = self.lab.phone(step.caller).call(
                    step.callee,
                    step.seconds,
                    step.mode,
                    step.cancel_after,
                    step.ring,
                    step.answer,
                )
        except NatlabError as error:  # its report is lost: what the call did is not known
            result.checks = lost_call(step.media, step.pair, f"{step.caller}: {error.problem}")
            raise
        result.call_report = report
        events: dict[str, list[RouterEvent]] = {
            router.name: router.events(marks[router.name]).events for router in routers
        }
        result.drops = drop_groups(events)
        result.checks = check_call(step.media, step.pair, report)
        result.media_relay = self.pbx_media(report.call)
        result.explanation = explain_call(report, events) + result.media_relay
        if step.reached is not None:
            self.check_reached(step, report, result)
        if step.cancelled is not None:
            wanted = "cancelled before the answer" if step.cancelled else "not cancelled"
            seen = "cancelled before the answer" if report.cancelled else "not cancelled"
            ok = step.cancelled == report.cancelled
            result.checks.append(Check("cancelled", wanted, f"{seen} ({report.error})", ok))

    def check_reached(self, step: Call, report: CallReport, result: StepResult) -> None:
        """Did the invite reach the callee? Its own reports say; if not, where the PBX sent it."""
        baresip = involves_baresip(self.lab, step)
        if baresip:  # baresip_call looked for the callee's side: the caller's report says
            mine = report if callee_reached(report) else None
        else:
            mine = next(
                (r for r in self.lab.phone(step.callee).reports() if r.call == report.call), None
            )
        if mine is None:
            observed = f"{step.callee} never got the invite"
            if not baresip:  # baresip_call already looked for the callee
                result.explanation.append(f"{observed}; {self.registration_of(step.callee)}")
        else:
            observed = f"{step.callee} got the invite ({mine.verdict})"
        wanted = "gets the invite" if step.reached else "never gets the invite"
        result.checks.append(
            Check("callee reached", f"{step.callee} {wanted}", observed, step.reached == bool(mine))
        )

    def pbx_media(self, call: str) -> list[str]:
        """Why the PBX relayed the call's media, or under `relay: nat` why not; [] if no reason."""
        hosts = self.lab.topology.hosts.values()
        if not any(host.role is Role.PBX and not host.server for host in hosts):
            return []
        try:
            found = self.lab.pbx().calls().get(call, {})
        except NatlabError:
            return []
        media = found.get("media")
        return [media] if isinstance(media, str) and media else []

    def registration_of(self, phone: str) -> str:
        """The PBX's view of a phone's registration: where it sends that phone's invites."""
        try:
            pbx = self.lab.pbx()
        except NatlabError:
            return "the lab has no PBX"
        found = pbx.registrations().get(phone)
        if found is None:
            return f"the PBX holds no registration of {phone}"
        return f"the PBX still holds its registration {found.describe()}, and sent the invite there"
