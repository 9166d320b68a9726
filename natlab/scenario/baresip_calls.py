"""A scenario's `call` step between two baresip phones (`agent: baresip`).

natlab's own phones place a call and report it themselves; baresip does not,
so the step drives both through their control interfaces
(natlab.lab.baresip.BaresipPhone): the caller dials the callee's SIP user at
its registrar, the callee answers once the INVITE has reached it, both keep the
call up for the step's seconds, then each one's RTP counters are read and the
caller hangs up. The report is the caller's CallReport, its media verdict
judged from both sides' counts as for natlab's phones (endpoints.media.verdict).

baresip chooses its media path itself (STUN, from its configuration): the
step's mode is BARESIP_MODE (the scenario's loader sets it, and refuses a
`mode:` or `pair` for such a call, or a call between a baresip and natlab's
own phone).
"""

from __future__ import annotations

import contextlib
import time
import uuid

from natlab.endpoints.media import verdict
from natlab.errors import NatlabError
from natlab.lab import Lab
from natlab.lab.baresip import BaresipPhone
from natlab.lab.endpoints import sip_account
from natlab.records import CallReport, RtpCounts
from natlab.scenario.model import BARESIP_MODE, Call

NOT_REACHED = "never got the invite"
SETUP_TIMEOUT = 10.0  # seconds for the INVITE to reach the callee and the answer to come back


def is_baresip(lab: Lab, host: str) -> bool:
    found = lab.topology.hosts.get(host)
    return found is not None and found.agent == "baresip"


def baresip_call(lab: Lab, step: Call) -> CallReport:
    """Place the call, keep it up for step.seconds, hang up: the caller's report of it."""
    caller, callee = lab.baresip(step.caller), lab.baresip(step.callee)
    report = CallReport(
        call=uuid.uuid4().hex,
        caller=step.caller,
        callee=step.callee,
        mode=BARESIP_MODE,
        role="caller",
    )
    caller.dial(sip_account(lab.topology.hosts[step.callee]).user)  # at the caller's registrar
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


def callee_reached(report: CallReport) -> bool:
    """Did the INVITE reach the callee (it rang, whatever came next)?"""
    return report.error != f"{report.callee} {NOT_REACHED}"


def _counts(phone: BaresipPhone) -> RtpCounts:
    counts = phone.rtp()
    return RtpCounts(sent=counts.sent, received=counts.received)


def _finished(report: CallReport) -> CallReport:
    report.ended_at = time.time()
    return report


def _hang_up(caller: BaresipPhone, callee: BaresipPhone) -> None:
    """End the call on both sides (whichever still has it), and wait until both have let go."""
    for phone in (caller, callee):
        if phone.call_state() is not None:
            with contextlib.suppress(NatlabError):  # it ended by itself meanwhile
                phone.hang_up()
        phone.wait_for(None, SETUP_TIMEOUT)
