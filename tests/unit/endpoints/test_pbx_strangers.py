"""What the PBX answers over UDP to datagrams nobody registered: never an error, rarely a stranger.

One forged datagram whose source was the router's own address made the PBX
answer "not registered" to itself through the router's hairpin, and its
answer to that answer, for ever. These tests run the PBX in-process on
127.0.0.1 and play strangers with plain UDP sockets. Nothing waits for a
silence: the PBX takes datagrams in order, so the first answer after a
datagram that must go unanswered is the answer to the next one sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from natlab.endpoints import pbx as pbx_module
from natlab.endpoints.signalling import DatagramInbox

from .test_udp_registration import TIMEOUT, UdpPhone, control, run, running_pbx


async def answers(phone: UdpPhone, count: int) -> list[str | None]:
    """The "call" field of the next `count` answers (the tests tag each datagram with one)."""
    got = []
    for _ in range(count):
        message = await phone.receive()
        assert message["type"] == "error", message
        got.append(message.get("call"))
    return got


async def processed(pbx: pbx_module.Pbx, count: int) -> None:
    """Let the loop run until the PBX has taken `count` datagrams (the clock is the test's)."""
    while pbx.counters["datagrams"] < count:
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "error",
    [
        b'{"type": "error", "reason": "not registered"}',  # the PBX's own answer, come back
        b'{"type": "error", "reason": "not registered", "call": "c1"}',
        b'{"type": "error"}',  # an error without its reason is still an error
        b'{"type": "error", "reason": 7}',
    ],
)
def test_an_error_from_a_stranger_is_never_answered(tmp_path: Path, error: bytes) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            stranger = await UdpPhone.open(pbx)
            stranger.transport.sendto(error)
            stranger.send({"type": "keepalive", "call": "after"})
            assert await answers(stranger, 1) == ["after"]  # nothing came for the error
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert counters == {
                "datagrams": 2,
                "errors_sent": 1,
                "unanswered_errors": 1,
                "unanswered_throttled": 0,
            }

    run(scenario)


def test_an_error_from_a_registered_phone_about_no_call_is_not_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            phone = await UdpPhone.open(pbx)
            await phone.register("phone-b")
            phone.send({"type": "error", "reason": "no such call", "call": "gone"})
            phone.send({"type": "keepalive"})
            assert await phone.receive() == {"type": "keepalive"}

    run(scenario)


def test_the_pbx_answering_its_own_hairpinned_error_stops_at_once(tmp_path: Path) -> None:
    """A mirror plays the router's hairpin: whatever the PBX sends it, the PBX gets back."""

    class Mirror(DatagramInbox):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            super().datagram_received(data, addr)
            assert self.transport is not None
            self.transport.sendto(data, addr)

    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            transport, mirror = await asyncio.get_running_loop().create_datagram_endpoint(
                Mirror, local_addr=("127.0.0.1", 0), remote_addr=pbx.udp_address
            )
            try:
                transport.sendto(b'{"type": "keepalive"}')  # the forged datagram
                message, _ = await asyncio.wait_for(mirror.queue.get(), TIMEOUT)
                assert message == {"type": "error", "reason": "not registered"}
                # The mirrored error reached the PBX, unanswered: a probe shows it is past it.
                probe = await UdpPhone.open(pbx)
                probe.send({"type": "keepalive", "call": "probe"})
                assert await answers(probe, 1) == ["probe"]
                # loopback queues a datagram at once: the mirror's copy came before the probe
                assert pbx.counters["unanswered_errors"] == 1
                assert pbx.counters["errors_sent"] == 2  # the forged datagram's and the probe's
                assert mirror.queue.empty()
            finally:
                transport.close()

    run(scenario)


def test_a_stranger_gets_a_burst_of_errors_then_one_a_second(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            now = [1000.0]
            pbx.clock = lambda: now[0]
            stranger = await UdpPhone.open(pbx)
            for n in range(12):
                stranger.send({"type": "keepalive", "call": f"n{n}"})
            await processed(pbx, 12)
            now[0] += 1.0  # one token back, and only one
            stranger.send({"type": "keepalive", "call": "later"})
            stranger.send({"type": "keepalive", "call": "too soon"})
            stranger.transport.sendto(b"{not json")  # garbage counts against the same bucket
            await processed(pbx, 15)
            now[0] += 3.0
            stranger.send({"type": "keepalive", "call": "last"})
            burst = pbx_module.STRANGER_BURST
            assert await answers(stranger, burst + 2) == [
                *(f"n{n}" for n in range(burst)),
                "later",
                "last",
            ]
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert counters["datagrams"] == 16
            assert counters["errors_sent"] == burst + 2
            assert counters["unanswered_throttled"] == 16 - burst - 2

    run(scenario)


def test_a_stranger_is_limited_but_a_registered_phone_at_the_same_address_not(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            now = [1000.0]
            pbx.clock = lambda: now[0]
            phone = await UdpPhone.open(pbx)
            await phone.register("phone-b")
            flooder = await UdpPhone.open(pbx)  # 127.0.0.1 too, from another port
            burst = pbx_module.STRANGER_BURST
            for n in range(burst * 2):
                flooder.send({"type": "keepalive", "call": f"f{n}"})
                phone.transport.sendto(b"{not json")  # a phone's mistakes are always answered
            for _ in range(burst * 2):
                assert "not JSON" in (await phone.receive())["reason"]
            await processed(pbx, 1 + burst * 4)  # the REGISTER, the flood and the garbage
            now[0] += 1.0
            flooder.send({"type": "keepalive", "call": "sentinel"})
            assert await answers(flooder, burst + 1) == [
                *(f"f{n}" for n in range(burst)),
                "sentinel",
            ]

    run(scenario)
