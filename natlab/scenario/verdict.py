"""What a step, a run or a matrix pair came to, and the exit code that says so.

- passed: every expectation held;
- failed: one did not (the NAT, or whatever the scenario asks about, did otherwise);
- error: a step could not run (a phone that does not answer, a lab that did not come up);
- fault: a process of the lab died while it ran: a router's NAT daemon, a phone, the PBX,
  a STUN or TURN server. Nothing observed after that is a NAT result, so a fault is never
  counted as the NAT behaving wrongly.

Exit codes: 0 passed; 1 failed or error; 3 a fault in one of natlab's own processes (natlab
failed); 2 a fault in a third-party process only (coturn: the environment failed). A fault
outranks an expectation that failed: the run did not finish what it set out to check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `natlab explain` reads verdicts without loading the lab and its endpoints
    from natlab.lab.processes import Death

PASSED, FAILED, ERROR, FAULT = "passed", "failed", "error", "fault"
_RANK = (PASSED, FAILED, ERROR, FAULT)  # the later outranks the earlier

# What the ledger calls each process (a unit test holds these to the names the lab uses).
LABELS = {
    "nat daemon": "NAT daemon",
    "pbx": "PBX",
    "phone": "phone",
    "stun server": "STUN server",
    "turn server": "TURN server (coturn)",
}
THIRD_PARTY = frozenset({"turn server"})  # not natlab's code: its death is the environment's
NOT_NAT = "what the phones and routers saw after that is not a NAT result"


def describe(death: Death) -> str:
    """ "branch1's NAT daemon died (signal SIGKILL)"."""
    text = f"{death.node}'s {LABELS.get(death.what, death.what)} died ({death.how})"
    return text if death.log is None else f"{text}; its log ends: {death.log}"


def fault_text(deaths: Iterable[Death]) -> str | None:
    """Every death in one line, or None when nothing died."""
    return "; ".join(describe(death) for death in deaths) or None


def step_verdict(error: str | None, checks: Iterable[bool], deaths: Iterable[Death]) -> str:
    """A step's verdict from whether it ran, its checks, and the lab processes found dead."""
    if any(True for _ in deaths):
        return FAULT
    if error is not None:
        return ERROR
    return PASSED if all(checks) else FAILED


def worst(verdicts: Iterable[str]) -> str:
    """The verdict of several (steps of a run, pairs of a matrix): the highest-ranked."""
    return max(verdicts, key=_RANK.index, default=PASSED)


def exit_code(verdict: str, deaths: Iterable[Death] = ()) -> int:
    if verdict == FAULT:
        whats = {death.what for death in deaths}
        return 2 if whats and whats <= THIRD_PARTY else 3
    return 0 if verdict == PASSED else 1
