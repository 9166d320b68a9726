"""A scenario's `call` step when a party is a baresip phone (`agent: baresip`).

natlab's own phones place a call and report it themselves; baresip does not,
so the step drives it through its control interface
(natlab.lab.baresip.BaresipPhone): a baresip caller dials the callee's SIP
user at its registrar, a baresip callee answers once the INVITE has reached
it. While the call is up its RTP counters are read. The result is the
caller's CallReport, its media verdict judged from both sides' counts as for
two natlab phones (endpoints.media.verdict): baresip's counters on its side,
natlab's phone's own report on the other.

A baresip caller's step has mode BARESIP_MODE (the scenario's loader sets
it: baresip sets its media up itself); a natlab caller keeps its mode.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

from natlab.endpoints.media import NO_PEER_COUNTS, verdict
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.baresip import BaresipPhone
from natlab.lab.clients import PhoneClient
from natlab.lab.endpoints import sip_account
from natlab.records import CallReport, RtpCounts
from natlab.scenario.model import BARESIP_MODE, Call

NOT_REACHED = "never got the invite"
SETUP_TIMEOUT = 10.0  # seconds for the INVITE to reach the callee and the answer to come back
REPORT_TIMEOUT = 10.0  # seconds for natlab's callee to file its report after the BYE
POLL = 0.1


def is_baresip(lab: Lab, host: str) -> bool:
    found = lab.topology.hosts.get(host)
    return found is not None and found.agent == "baresip"


def involves_baresip(lab: Lab, step: Call) -> bool:
    return is_baresip(lab, step.caller) or is_baresip(lab, step.callee)


def callee_reached(report: CallReport) -> bool:
    """Did the INVITE reach the callee (it rang, whatever came next)?"""
    return report.error != f"{report.callee} {NOT_REACHED}"


def baresip_call(lab: Lab, step: Call) -> CallReport:
    """Place the call, keep it up for step.seconds, hang up: the caller's report of it."""
    if not is_baresip(lab, step.caller):
        return _natlab_calls_baresip(lab, step)
    caller = lab.baresip(step.caller)
    report = CallReport(
        call=uuid.uuid4().hex,
        caller=step.caller,
        callee=step.callee,
        mode=BARESIP_MODE,
        role="caller",
    )
    if is_baresip(lab, step.callee):
        return _baresip_calls_baresip(lab, step, caller, report)
    return _baresip_calls_natlab(lab, step, caller, report)


def _user(lab: Lab, host: str) -> str:
    """The SIP user a host is called at."""
    return sip_account(lab.topology.hosts[host]).user


def _baresip_calls_baresip(
    lab: Lab, step: Call, caller: BaresipPhone, report: CallReport
) -> CallReport:
    callee = lab.baresip(step.callee)
    caller.dial(_user(lab, step.callee))
    try:
        try:
            callee.wait_for("INCOMING", SETUP_TIMEOUT)
        except NatlabError:
            report.error = f"{step.callee} {NOT_REACHED}"
            return _finished(report)
        callee.answer()
        caller.wait_for("ESTABLISHED", SETUP_TIMEOUT)
        time.sleep(step.seconds)
        report.rtp = _counts(caller)
        report.peer_rtp = _counts(callee)
        report.verdict = verdict(report.rtp, report.peer_rtp)
        return _finished(report)
    finally:
        _hang_up(caller, callee)


def _baresip_calls_natlab(
    lab: Lab, step: Call, caller: BaresipPhone, report: CallReport
) -> CallReport:
    """natlab's phone answers by itself; its report of the call (filed after the BYE)
    carries its counts."""
    callee = lab.phone(step.callee)
    known = {r.call for r in callee.reports()}
    caller.dial(_user(lab, step.callee))
    try:
        try:
            caller.wait_for("ESTABLISHED", SETUP_TIMEOUT)
        except NatlabError as error:
            report.error = error.problem
            return _finished(report)
        time.sleep(step.seconds)
        report.rtp = _counts(caller)
    finally:
        _hang_up(caller)
    theirs = _new_report(callee, known)
    if theirs is None:
        report.error = f"{step.callee} {NOT_REACHED}"
        return _finished(report)
    report.peer_rtp = theirs.rtp
    report.verdict = verdict(report.rtp, report.peer_rtp)
    return _finished(report)


def _natlab_calls_baresip(lab: Lab, step: Call) -> CallReport:
    """natlab's phone calls in its mode; baresip answers, and its counts are read for as
    long as the call is up (natlab's phone ends it)."""
    caller, callee = lab.phone(step.caller), lab.baresip(step.callee)
    placed: dict[str, CallReport | NatlabError] = {}

    def place() -> None:
        try:
            placed["report"] = caller.call(_user(lab, step.callee), step.seconds, step.mode)
        except NatlabError as error:
            placed["report"] = error

    thread = threading.Thread(target=place, daemon=True)
    thread.start()
    heard: RtpCounts | None = None
    try:
        callee.wait_for("INCOMING", SETUP_TIMEOUT)
        callee.answer()
        callee.wait_for("ESTABLISHED", SETUP_TIMEOUT)
        while callee.call_state() == "ESTABLISHED":
            now = _counts(callee)
            heard = now if heard is None or now.sent >= heard.sent else heard
            time.sleep(POLL)
    except NatlabError:
        pass  # never rang, or the call ended while it was read: the report below says
    thread.join()
    report = placed["report"]
    if isinstance(report, NatlabError):
        raise report
    if heard is None:
        report.error = f"{step.callee} {NOT_REACHED}"
        return report
    report.peer_rtp = heard
    if report.error == NO_PEER_COUNTS:  # they came, from baresip
        report.error = None
    report.verdict = verdict(report.rtp, heard)
    return report


def _new_report(callee: PhoneClient, known: set[str]) -> CallReport | None:
    """natlab's callee's report of the call just ended: one it did not have before."""
    deadline = time.monotonic() + REPORT_TIMEOUT
    while time.monotonic() < deadline:
        found = [r for r in callee.reports() if r.call not in known and r.role == "callee"]
        if found and found[-1].ended_at is not None:
            return found[-1]
        time.sleep(POLL)
    return None


def _counts(phone: BaresipPhone) -> RtpCounts:
    counts = phone.rtp()
    return RtpCounts(sent=counts.sent, received=counts.received)


def _finished(report: CallReport) -> CallReport:
    report.ended_at = time.time()
    return report


def _hang_up(*phones: BaresipPhone) -> None:
    """End the call on each (whichever still has it), and wait until each has let go."""
    for phone in phones:
        if phone.call_state() is not None:
            with contextlib.suppress(NatlabError):  # it ended by itself meanwhile
                phone.hang_up()
        phone.wait_for(None, SETUP_TIMEOUT)
