"""A caller that hangs up before the answer (RFC 3261 9): its CANCEL goes through the PBX
to the ringing callee, which ends the INVITE with 487; both reports say so. Phones and
PBX in-process on loopback (tests/unit/endpoints/test_sip_pbx.py's helpers)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.phone import Phone, PhoneConfig
from natlab.records import CallReport
from tests.unit.endpoints.test_sip_pbx import control, phone_config, run, running_pbx


async def _two_phones_call(
    tmp_path: Path, transport: str, cancel_after: float, ring: float
) -> tuple[CallReport, list[CallReport], dict]:
    async with running_pbx(tmp_path) as pbx:
        phones = [
            Phone(phone_config(tmp_path, pbx, name, transport=transport))
            for name in ("phone-a", "phone-b")
        ]
        try:
            for phone in phones:
                assert (await phone.registrar.register()).registered
            report = await phones[0].call("phone-b", 0.2, "host", cancel_after, ring)
            for _ in range(200):
                if phones[1].reports:
                    break
                await asyncio.sleep(0.01)
            calls = (await control(pbx, {"op": "calls"}))["calls"]
            return report, phones[1].reports, calls
        finally:
            for phone in phones:
                await phone.registrar.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_call_cancelled_while_ringing_ends_487_and_both_sides_say_so(
    tmp_path: Path, transport: str
) -> None:
    async def scenario() -> None:
        report, theirs, calls = await _two_phones_call(tmp_path, transport, 0.3, 3.0)
        assert report.cancelled, report
        assert report.error == "cancelled after 0.3 s, before the answer: 487 Request Terminated"
        assert report.verdict == "no media" and report.rtp.sent == 0
        seen = [(s.direction, s.summary) for s in report.signalling]
        assert ("received", "180 Ringing") in seen and ("sent", "CANCEL") in seen
        assert ("received", "487 Request Terminated") in seen
        assert seen[-1] == ("sent", "ACK")  # the 487's, hop by hop
        [callee] = theirs
        assert (callee.call, callee.error) == (report.call, "cancelled by the caller")
        assert not callee.cancelled  # the caller's report says it; the callee was cancelled
        assert calls[report.call]["ended"] and not calls[report.call]["answered"]

    run(scenario)


def test_a_call_answered_before_cancel_after_goes_on_uncancelled(tmp_path: Path) -> None:
    async def scenario() -> None:
        report, theirs, _ = await _two_phones_call(tmp_path, "udp", 3.0, 0.0)
        assert not report.cancelled
        assert (report.verdict, report.error) == ("two-way", None), report
        assert [r.error for r in theirs] == [None]

    run(scenario)


@pytest.mark.parametrize(
    ("value", "ring"),
    [("mode=host;seconds=2;ring=1.5", 1.5), ("mode=host;seconds=2", 0.0),
     ("mode=host;ring=60", 0.0), ("ring=soon", 0.0), ("ring=-1", 0.0)],
)  # fmt: skip
def test_the_ring_asked_of_a_natlab_callee_is_read_within_bounds(value: str, ring: float) -> None:
    invite = dialogs.request(
        "INVITE",
        "sip:b@127.0.0.1",
        via_value=dialogs.via("udp", "127.0.0.1", 5060),
        from_value="<sip:a@127.0.0.1>;tag=a",
        to_value="<sip:b@127.0.0.1>",
        call_id="c",
        cseq=1,
        headers=((dialogs.CALL_HEADER, value),),
    )
    assert dialogs.read_ring(invite) == ring
    assert dialogs.read_ring(dialogs.without(invite, dialogs.CALL_HEADER)) == 0.0


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [({"cancel_after": -1}, "cancel_after must be"), ({"cancel_after": 9}, "cancel_after must be"),
     ({"ring": 6}, "ring must be"), ({"ring": -0.5}, "ring must be")],
)  # fmt: skip
def test_a_call_request_with_a_bad_cancel_after_or_ring_is_refused(
    tmp_path: Path, extra: dict, complaint: str
) -> None:
    phone = Phone(PhoneConfig("phone-a", IPv4Address("127.0.0.1"), tmp_path / "a.sock"))
    request = {"op": "call", "to": "phone-b", "seconds": 1, "mode": "host", **extra}
    with pytest.raises(ValueError, match=complaint):
        asyncio.run(phone.control(request))
